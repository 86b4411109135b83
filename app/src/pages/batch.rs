use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use runboard_model::Role;

use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::layout::MyRoles;
use crate::components::local_time::LocalTime;
use crate::components::progress_bar::ProgressBar;
use crate::components::refresh::{Freshness, auto_refresh};
use crate::components::relative_time::RelativeTime;
use crate::components::table_wrap::TableWrap;
use crate::format::{percent, query_string, thousands, until, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::batch_detail::{BatchDetail, read_batch};

/// One batch: how far it is, how fast it goes, when it will be through, and what failed.
#[component]
pub fn Batch() -> impl IntoView {
    let params = use_params_map();
    let key = Memo::new(move |_| {
        let p = params.read();
        (
            p.get("service").unwrap_or_default(),
            p.get("batch").unwrap_or_default(),
        )
    });
    let detail = Resource::new(
        move || key.get(),
        |(service, batch)| read_batch(service, batch),
    );
    let elapsed = auto_refresh(move || detail.refetch());
    let me = expect_context::<MyRoles>();
    view! {
        <p class="crumbs"><A href="/batches">"Batches"</A>" / "{move || key.get().0}</p>
        <Freshness elapsed />
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the batch…"</p> }>
            {move || Suspend::new(async move {
                let detail = detail.await?;
                let can_act = me.holds(Role::Operator).await;
                let (service, batch) = key.get_untracked();
                Ok::<_, ScreenError>(view! { <BatchView detail service batch_id=batch can_act /> })
            })}
        </Transition>
    }
}

#[component]
fn BatchView(
    detail: BatchDetail,
    service: String,
    batch_id: String,
    /// Operators may ask to re-run the failed items; others only look.
    can_act: bool,
) -> impl IntoView {
    let rerun = format!(
        "/actions/new{}",
        query_string([
            ("service", Some(service.as_str())),
            ("batch", Some(batch_id.as_str()))
        ])
    );
    // Every failed item, not the first few shown: what business users send on.
    let failed_csv = csv_href(
        &format!(
            "/api/v1/services/{}/batches/{}/items",
            url_encode(&service),
            url_encode(&batch_id)
        ),
        [("status", Some("failed"))],
    );
    let BatchDetail {
        read_at,
        batch,
        pace,
        errors,
        failed_items,
        reruns,
    } = detail;
    let total = batch.done + batch.failed + batch.pending;
    let chart = format!(
        "/charts/services/{}/batches/{}/progress.svg",
        url_encode(&service),
        url_encode(&batch_id)
    );
    let outlook = match (batch.finished_at, pace.eta) {
        (Some(at), _) => view! { "Finished " <LocalTime at /> "." }.into_any(),
        (None, Some(eta)) => view! {
            "About "{format!("{:.0}", pace.items_per_minute)}" items a minute; expected to be through "
            {until(eta, read_at)}" (" <LocalTime at=eta /> ")."
        }
        .into_any(),
        (None, None) if batch.pending == 0 => view! { "Every item has been tried." }.into_any(),
        (None, None) => view! { "No item finished in the last 10 minutes, so there is no estimate." }.into_any(),
    };
    let alt = format!(
        "Chart of {} over time: {} done and {} failed of {} items so far.",
        batch.name, batch.done, batch.failed, total
    );
    view! {
        <Title text=batch.name.clone() />
        <h1>{batch.name.clone()}</h1>
        <p class="muted">"Started " <RelativeTime at=batch.started_at now=read_at /> " · service " {service.clone()}</p>
        <dl class="figures">
            <div><dt>"Done"</dt><dd>{thousands(batch.done)}<small>" "{percent(batch.done, total)}</small></dd></div>
            <div><dt>"Failed"</dt><dd class:has-failures={batch.failed > 0}>{thousands(batch.failed)}<small>" "{percent(batch.failed, total)}</small></dd></div>
            <div><dt>"Waiting"</dt><dd>{thousands(batch.pending)}<small>" "{percent(batch.pending, total)}</small></dd></div>
            <div><dt>"All items"</dt><dd>{thousands(total)}</dd></div>
        </dl>
        <ProgressBar batch=batch.clone() />
        <p class="outlook">{outlook}</p>
        {reruns.into_iter().map(|action| {
            let rate = action.progress.execution.as_ref().and_then(|e| e.entities_per_second);
            view! {
                <p class="outlook" data-testid="rerun">
                    <A href=format!("/actions/{}", action.id)>"A re-run of "{thousands(action.preview.entities)}" failed items"</A>
                    {format!(
                        " is running: {} of them done{}",
                        thousands(action.progress.succeeded + action.progress.failed),
                        rate.map(|r| format!(", {:.0} a second", r)).unwrap_or_default()
                    )}
                    {action.progress.eta.map(|eta| view! { "; through " {until(eta, read_at)}" (" <LocalTime at=eta /> ")" })}
                    "."
                </p>
            }
        }).collect_view()}
        <figure class="chart">
            <img src=chart alt=alt width="720" height="320" />
        </figure>

        <section aria-labelledby="failed-heading">
            <h2 id="failed-heading">"Failed items by error"</h2>
            {if errors.is_empty() {
                view! { <p class="muted">"No item failed."</p> }.into_any()
            } else {
                view! {
                    {can_act.then(|| view! {
                        <p><a class="button" href=rerun.clone()>"Re-run the failed items…"</a></p>
                    })}
                    <TableWrap>
                        <table class="batch-errors">
                            <thead><tr><th scope="col">"Error"</th><th scope="col" class="num">"Items"</th></tr></thead>
                            <tbody>
                                {errors.into_iter().map(|(error, count)| view! {
                                    <tr><th scope="row" class="error-message">{error}</th><td class="num">{thousands(count)}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </TableWrap>
                    <div class="list-head">
                        <h3>"The first failed items"</h3>
                        <DownloadCsv href=failed_csv.clone() what="every failed item" />
                    </div>
                    <TableWrap>
                        <table class="failed-items">
                            <thead><tr><th scope="col">"Item"</th><th scope="col">"Error"</th><th scope="col">"Failed"</th></tr></thead>
                            <tbody>
                                {failed_items.into_iter().map(|item| view! {
                                    <tr>
                                        <th scope="row" class="mono">{item.item_id}</th>
                                        <td class="error-message">{item.error.unwrap_or_default()}</td>
                                        <td><RelativeTime at=item.updated_at now=read_at /></td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </TableWrap>
                }
                .into_any()
            }}
        </section>
    }
}
