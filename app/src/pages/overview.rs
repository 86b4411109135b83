use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use runboard_model::{DiscoveryNote, Money, ServiceOverview, ServiceSource};

use crate::components::local_time::LocalTime;
use crate::components::refresh::{Freshness, auto_refresh};
use crate::components::service_alerts::{ServiceAlerts, Shown};
use crate::components::table_wrap::TableWrap;
use crate::format::{ago, amount, query_string, thousands, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::read_overview::{Overview as Rows, read_overview};

/// One row per service with its latest numbers. The filter lives in the URL (`?q=`) so
/// that a filtered view can be pasted into an incident channel.
#[component]
pub fn Overview() -> impl IntoView {
    let rows = Resource::new(|| (), |_| read_overview());
    // Seconds since the rows were read, ticking in the browser; 0 while rendering on the server.
    let elapsed = auto_refresh(move || rows.refetch());

    let query = use_query_map();
    let filter = Memo::new(move |_| query.read().get("q").unwrap_or_default());
    let navigate = use_navigate();
    let set_filter = move |value: String| {
        let href = if value.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}", query_string([("q", Some(value.as_str()))]))
        };
        navigate(
            &href,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };

    view! {
        <Title text="Overview" />
        <div class="page-head">
            <div>
                <h1>"Services"</h1>
                <Freshness elapsed />
            </div>
            <label class="filter">
                <span>"Filter by service or team"</span>
                <input
                    type="search"
                    name="q"
                    autocomplete="off"
                    prop:value=move || filter.get()
                    on:input=move |ev| set_filter(event_target_value(&ev))
                />
            </label>
        </div>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading services…"</p> }>
            {move || Suspend::new(async move {
                let rows = rows.await?;
                Ok::<_, ScreenError>(view! { <ServiceTable rows filter elapsed /> })
            })}
        </Transition>
    }
}

#[component]
fn ServiceTable(rows: Rows, filter: Memo<String>, elapsed: RwSignal<i64>) -> impl IntoView {
    let Rows {
        read_at,
        services,
        discovery,
    } = rows;
    let notes = (!discovery.is_empty()).then(|| view! { <DiscoveryNotes notes=discovery /> });
    if services.is_empty() {
        return view! {
            {notes}
            <section class="panel empty">
                <h2>"No services registered"</h2>
                <p>"Add a " <code>"[[services]]"</code> " entry to the config file and restart Runboard."</p>
            </section>
        }
        .into_any();
    }
    let total = services.len();
    let visible = Memo::new(move |_| {
        let needle = filter.get().to_lowercase();
        services
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || s.name.as_str().contains(&needle)
                    || s.team.to_lowercase().contains(&needle)
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    let now = move || read_at + chrono::Duration::seconds(elapsed.get());
    view! {
        {notes}
        <p class="count" role="status" aria-live="polite">
            {move || {
                let shown = visible.read().len();
                if shown == total {
                    format!("{total} services")
                } else {
                    format!("{shown} of {total} services match")
                }
            }}
        </p>
        <TableWrap>
            <table class="services">
                <caption class="visually-hidden">"Sagas, batches and withheld funds per service, from the latest poll"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Service"</th>
                        <th scope="col">"Team"</th>
                        <th scope="col" class="num">"Running"</th>
                        <th scope="col" class="num">"Stuck"</th>
                        <th scope="col" class="num">"Failed"</th>
                        <th scope="col" class="num">"Failed batches"</th>
                        <th scope="col" class="num">"Withheld"</th>
                        <th scope="col">"Updated"</th>
                        <th scope="col">"Alerts"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || visible.get() key=|s| (s.name.clone(), s.polled_at) let:service>
                        <ServiceRow service now />
                    </For>
                </tbody>
            </table>
        </TableWrap>
        <section class="trends" aria-labelledby="trends-heading">
            <h2 id="trends-heading">"Stuck and failed sagas, last 24 hours"</h2>
            <div class="trend-grid">
                <For each=move || visible.get() key=|s| (s.name.clone(), s.polled_at) let:service>
                    <figure class="chart">
                        <img
                            src=format!("/charts/services/{}/trend.svg", url_encode(service.name.as_str()))
                            alt=trend_alt(&service)
                            width="400"
                            height="200"
                            loading="lazy"
                        />
                    </figure>
                </For>
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn ServiceRow(
    service: ServiceOverview,
    now: impl Fn() -> DateTime<Utc> + Send + Sync + Copy + 'static,
) -> impl IntoView {
    let count = |n: Option<u64>| n.map_or_else(|| "–".to_owned(), thousands);
    let sagas = service.sagas;
    let problem = match (&service.polled_at, &service.error) {
        (None, _) => Some(("pending", "Not polled yet".to_owned())),
        (Some(_), Some(error)) => Some(("error", format!("Unreachable: {error}"))),
        _ => None,
    };
    view! {
        <tr class:row-error=service.error.is_some()>
            <th scope="row">
                <a href=format!("/services/{}", service.name)>{service.name.to_string()}</a>
            </th>
            // Where the service came from, under its team: the row header stays its name.
            <td>
                {service.team.clone()}
                <span class="source">
                    {match &service.source {
                        ServiceSource::Config => "config file".to_owned(),
                        ServiceSource::Cluster { namespace, name } => format!("cluster {namespace}/{name}"),
                    }}
                </span>
            </td>
            {match problem {
                Some((kind, text)) => view! {
                    <td colspan="5" class=format!("badge-cell badge-{kind}")>
                        <span class="badge">{if kind == "error" { "⚠ " } else { "… " }}{text}</span>
                    </td>
                }
                .into_any(),
                None => view! {
                    <td class="num">{count(sagas.map(|s| s.running))}</td>
                    <td class="num">{count(sagas.map(|s| s.stuck))}</td>
                    <td class="num">{count(sagas.map(|s| s.failed))}</td>
                    <td class="num">{count(service.failed_batches)}</td>
                    <td class="num"><Funds funds=service.withheld_funds.clone() /></td>
                }
                .into_any(),
            }}
            <td>
                {service.polled_at.map(|at| view! {
                    <span class="ago">{move || ago(at, now())}</span>
                    " "
                    <LocalTime at />
                })}
            </td>
            <td><ServiceAlerts service=service.name.to_string() shown=Shown::Badges /></td>
        </tr>
    }
}

/// What discovery in the cluster has to say, above the services: a Service left out
/// (which annotation is wrong, and what was expected) or one the config file wins over.
#[component]
fn DiscoveryNotes(notes: Vec<DiscoveryNote>) -> impl IntoView {
    let left_out = notes.iter().filter(|n| n.left_out).count();
    view! {
        <section class="panel discovery" aria-labelledby="discovery-heading">
            <h2 id="discovery-heading">
                {if left_out == 0 {
                    "Cluster discovery".to_owned()
                } else {
                    format!("Cluster discovery: {left_out} Service(s) left out")
                }}
            </h2>
            <ul>
                {notes
                    .into_iter()
                    .map(|note| view! {
                        <li class:left-out=note.left_out>
                            {(!note.origin.is_empty()).then(|| view! { <strong>{note.origin}</strong> " " })}
                            {note.message}
                        </li>
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

/// The trend chart's text alternative: what it shows, and the latest numbers in words.
fn trend_alt(service: &ServiceOverview) -> String {
    match service.sagas {
        Some(sagas) => format!(
            "Chart of {}'s stuck and failed sagas over the last 24 hours; now {} stuck and {} failed.",
            service.name, sagas.stuck, sagas.failed
        ),
        None => format!(
            "Chart of {}'s stuck and failed sagas over the last 24 hours; no current numbers.",
            service.name
        ),
    }
}

#[component]
fn Funds(funds: Vec<Money>) -> impl IntoView {
    if funds.is_empty() {
        return view! { <span class="muted">"none"</span> }.into_any();
    }
    view! {
        <ul class="funds">
            {funds
                .into_iter()
                .map(|m| view! { <li>{amount(&m.amount)} " " {m.currency}</li> })
                .collect_view()}
        </ul>
    }
    .into_any()
}
