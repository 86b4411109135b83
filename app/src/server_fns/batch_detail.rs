use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Action, BatchItem, BatchPace, BatchProgress};
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// A batch as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchDetail {
    /// When the service was read for it: pace and ETA are as of then.
    pub read_at: DateTime<Utc>,
    pub batch: BatchProgress,
    pub pace: BatchPace,
    /// Failed items grouped by error, largest group first.
    pub errors: Vec<(String, u64)>,
    /// The first failed items.
    pub failed_items: Vec<BatchItem>,
    /// Re-runs of its failed items executing now, with their rate and ETA.
    pub reruns: Vec<Action>,
}

/// One batch: its progress, pace, and failed items by error, as read for everyone watching
/// within the poll interval.
#[server(prefix = "/rpc", endpoint = "batch")]
pub async fn read_batch(service: String, batch: String) -> Result<BatchDetail, ScreenError> {
    use runboard_core::screens::Freshness;

    let app = super::app_for::<ReadBatch>()?;
    let connector = super::connector(&app, &service)?;
    let figures = app
        .screens
        .batch(&connector, &batch, Freshness::Shared)
        .await?;
    let reading = &figures.value;
    let progress = reading.progress.clone().ok_or_else(|| {
        ScreenError::refused(
            http::StatusCode::NOT_FOUND,
            format!("service {service} has no batch {batch:?}"),
        )
    })?;
    // An action on this batch's items names it among its variables (`batchId`).
    let executing = app
        .actions(
            runboard_core::actions::ActionFilter::InState(runboard_model::ActionState::Executing),
            50,
        )
        .await?;
    let reruns = executing
        .into_iter()
        .filter(|a| {
            a.service.as_str() == service
                && a.preview
                    .variables
                    .as_object()
                    .is_some_and(|v| v.values().any(|v| v.as_str() == Some(batch.as_str())))
        })
        .collect();
    Ok(BatchDetail {
        reruns,
        read_at: figures.read_at,
        pace: BatchPace::measure(&reading.finished, progress.pending, figures.read_at),
        batch: progress,
        errors: reading.errors.clone(),
        failed_items: reading.failed_items.clone(),
    })
}
