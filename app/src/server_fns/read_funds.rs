use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Money, ServiceFunds};
use serde::{Deserialize, Serialize};

/// The sagas behind one service's withheld funds, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagasBehind {
    pub service: String,
    /// `(saga_id, money)`, the largest 50, or why they could not be read.
    pub sagas: Result<Vec<(String, Money)>, String>,
    /// How many sagas hold money in all.
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundsView {
    pub read_at: DateTime<Utc>,
    /// Per service and currency, from the latest snapshots.
    pub services: Vec<ServiceFunds>,
    /// For each service that holds money, the sagas holding it, read live.
    pub behind: Vec<SagasBehind>,
}

/// Withheld funds per service and currency, and the sagas behind them.
#[server(prefix = "/rpc", endpoint = "funds")]
pub async fn read_funds() -> Result<FundsView, ServerFnError> {
    /// Sagas listed per service: the largest sums are the ones to look at first.
    const SAGAS_SHOWN: usize = 50;

    let app = super::app_for(super::Access::Read)?;
    let read_at = Utc::now();
    let services = app
        .store
        .funds()
        .await
        .map_err(|e| super::internal("reading the service snapshots", e))?;
    let reads = app.fleet.services().map(|connector| async move {
        match connector.withheld_by_saga().await {
            Ok(None) => None,
            Err(e) => Some(SagasBehind {
                service: connector.name().to_string(),
                sagas: Err(e.problem.to_string()),
                total: 0,
            }),
            Ok(Some(mut sagas)) => {
                sagas.sort_by_key(|(_, money)| std::cmp::Reverse(money.amount));
                let total = sagas.len();
                sagas.truncate(SAGAS_SHOWN);
                Some(SagasBehind {
                    service: connector.name().to_string(),
                    sagas: Ok(sagas),
                    total,
                })
            }
        }
    });
    let behind = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(FundsView {
        read_at,
        services,
        behind,
    })
}
