use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use runboard_model::BatchProgress;

use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::local_time::LocalTime;
use crate::components::progress_bar::ProgressBar;
use crate::components::refresh::{Freshness, auto_refresh};
use crate::format::{percent, thousands, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::all_batches::{ServiceBatches, all_batches};

/// Every batch of every service, newest first, written for people who follow a payout
/// rather than fix one.
#[component]
pub fn Batches() -> impl IntoView {
    let services = Resource::new(|| (), |_| all_batches());
    let elapsed = auto_refresh(move || services.refetch());
    view! {
        <Title text="Batches" />
        <h1>"Batches"</h1>
        <Freshness elapsed />
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading batches…"</p> }>
            {move || Suspend::new(async move {
                let services = services.await?;
                Ok::<_, ScreenError>(services.into_iter().map(|s| view! { <ServiceSection batches=s /> }).collect_view())
            })}
        </Transition>
    }
}

#[component]
fn ServiceSection(batches: ServiceBatches) -> impl IntoView {
    let ServiceBatches { service, batches } = batches;
    let csv = csv_href(
        &format!("/api/v1/services/{}/batches", url_encode(&service)),
        [],
    );
    let body = match batches {
        Err(error) => view! { <p class="panel panel-error" role="alert">"⚠ Could not read the batches: "{error}</p> }.into_any(),
        Ok(list) if list.is_empty() => view! { <p class="muted">"No batches."</p> }.into_any(),
        Ok(list) => view! {
            <ul class="batch-list">
                {list.into_iter().map(|batch| view! { <BatchCard service=service.clone() batch /> }).collect_view()}
            </ul>
        }
        .into_any(),
    };
    view! {
        <section class="service-batches">
            <div class="list-head">
                <h2>{service.clone()}</h2>
                <DownloadCsv href=csv what="this service's batches" />
            </div>
            {body}
        </section>
    }
}

#[component]
fn BatchCard(service: String, batch: BatchProgress) -> impl IntoView {
    let total = batch.done + batch.failed + batch.pending;
    let href = format!(
        "/services/{}/batches/{}",
        url_encode(&service),
        url_encode(&batch.batch_id)
    );
    let state = match batch.finished_at {
        Some(at) => view! { "Finished " <LocalTime at /> }.into_any(),
        None => view! { "Running since " <LocalTime at=batch.started_at /> }.into_any(),
    };
    let name = batch.name.clone();
    view! {
        <li class="batch-card">
            <h3><A href=href>{name}</A></h3>
            <p class="muted">{state}</p>
            <ProgressBar batch=batch.clone() />
            <p class="batch-numbers">
                <strong>{thousands(batch.done)}" of "{thousands(total)}" done"</strong>
                " ("{percent(batch.done, total)}") · "
                <span class:has-failures={batch.failed > 0}>{thousands(batch.failed)}" failed"</span>
                " · "{thousands(batch.pending)}" waiting"
            </p>
        </li>
    }
}
