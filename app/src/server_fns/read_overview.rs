use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{DiscoveryNote, ServiceOverview};
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// The overview's rows, and the server's clock when they were read, so that "N s ago"
/// renders the same on the server and in the hydrating browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub read_at: DateTime<Utc>,
    pub services: Vec<ServiceOverview>,
    /// What discovery in the cluster has to say: Services left out and why.
    pub discovery: Vec<DiscoveryNote>,
}

/// Every service with the numbers of its latest poll, or why the poll failed.
#[server(prefix = "/rpc", endpoint = "overview")]
pub async fn read_overview() -> Result<Overview, ScreenError> {
    let app = super::app_for::<ReadOverview>()?;
    let snapshots = app
        .screens
        .snapshots(&app.store)
        .await
        .map_err(|e| ScreenError::internal("reading the service snapshots", e))?;
    Ok(Overview {
        read_at: Utc::now(),
        services: snapshots.value.clone(),
        discovery: app.fleet.discovery_notes(),
    })
}
