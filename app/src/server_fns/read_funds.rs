use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Money, ServiceFunds};
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// The sagas behind one service's withheld funds, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagasBehind {
    pub service: String,
    /// `(saga_id, money)`, the largest 50, or why they could not be read.
    pub sagas: Result<Vec<(String, Money)>, String>,
    /// How many sagas hold money in all.
    pub total: usize,
    /// When the service was read for them: by the poller, or live when asked for.
    pub read_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundsView {
    /// The server's clock when it answered, for "read 12 s ago".
    pub read_at: DateTime<Utc>,
    /// Per service and currency, from the latest snapshots.
    pub services: Vec<ServiceFunds>,
    /// For each service that holds money, the sagas holding it.
    pub behind: Vec<SagasBehind>,
}

/// Withheld funds per service and currency, and the sagas behind them: as the latest poll
/// read them, or (`live`) read from each service now.
#[server(prefix = "/rpc", endpoint = "funds")]
pub async fn read_funds(#[server(default)] live: bool) -> Result<FundsView, ScreenError> {
    use runboard_core::screens::Freshness;

    let app = super::app_for::<ReadFunds>()?;
    let snapshots = app
        .screens
        .snapshots(&app.store)
        .await
        .map_err(|e| ScreenError::internal("reading the service snapshots", e))?;
    let services = runboard_core::snapshots::funds_of(&snapshots.value);
    let freshness = Freshness::live_if(live);
    let app = &app;
    let reads = app
        .fleet
        .services()
        .into_iter()
        .map(|connector| async move {
            let service = connector.name().to_string();
            match app.screens.funds(&connector, freshness).await {
                Err(e) => Some(SagasBehind {
                    service,
                    sagas: Err(e.problem.to_string()),
                    total: 0,
                    read_at: Utc::now(),
                }),
                Ok(figures) => figures.value.as_ref().map(|holding| SagasBehind {
                    service,
                    sagas: Ok(holding.largest.clone()),
                    total: holding.total,
                    read_at: figures.read_at,
                }),
            }
        });
    let behind = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(FundsView {
        read_at: Utc::now(),
        services,
        behind,
    })
}
