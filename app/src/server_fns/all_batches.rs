use leptos::prelude::*;
use runboard_model::BatchProgress;
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// One service's batches, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceBatches {
    pub service: String,
    pub batches: Result<Vec<BatchProgress>, String>,
}

/// Every service's batches, newest first, as read for everyone watching within the poll
/// interval; a service that cannot be read says why in its place.
#[server(prefix = "/rpc", endpoint = "all_batches")]
pub async fn all_batches() -> Result<Vec<ServiceBatches>, ScreenError> {
    use runboard_core::screens::Freshness;

    let app = super::app_for::<AllBatches>()?;
    let app = &app;
    let reads = app
        .fleet
        .services()
        .into_iter()
        .map(|connector| async move {
            ServiceBatches {
                service: connector.name().to_string(),
                batches: app
                    .screens
                    .batches(&connector, Freshness::Shared)
                    .await
                    .map(|figures| figures.value.clone())
                    .map_err(|e| e.to_string()),
            }
        });
    Ok(futures_util::future::join_all(reads).await)
}
