use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{BatchItem, BatchPace, BatchProgress};
use serde::{Deserialize, Serialize};

/// A batch as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchDetail {
    pub read_at: DateTime<Utc>,
    pub batch: BatchProgress,
    pub pace: BatchPace,
    /// Failed items grouped by error, largest group first.
    pub errors: Vec<(String, u64)>,
    /// The first failed items.
    pub failed_items: Vec<BatchItem>,
}

/// One batch: its progress, pace, and failed items by error.
#[server(prefix = "/rpc", endpoint = "batch")]
pub async fn read_batch(service: String, batch: String) -> Result<BatchDetail, ServerFnError> {
    use runboard_model::BatchItemStatus;

    let app = super::app_for(super::Access::Read)?;
    let connector = super::connector(&app, &service)?;
    let read_at = Utc::now();
    let progress = connector
        .batches(Some(&batch))
        .await
        .map_err(super::read_failed)?
        .into_iter()
        .next()
        .ok_or_else(|| ServerFnError::new(format!("service {service} has no batch {batch:?}")))?;
    let (finished, errors, failed) = futures_util::join!(
        connector.finished_items(&batch),
        connector.batch_errors(&batch),
        connector.batch_items(&batch, Some(BatchItemStatus::Failed), None, 50),
    );
    let finished: Vec<_> = finished
        .map_err(super::read_failed)?
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    Ok(BatchDetail {
        read_at,
        pace: BatchPace::measure(&finished, progress.pending, read_at),
        batch: progress,
        errors: errors.map_err(super::read_failed)?,
        failed_items: failed.map_err(super::read_failed)?.items,
    })
}
