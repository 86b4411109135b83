//! Liveness, readiness and metrics, for Kubernetes probes, load balancers and Prometheus.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::header;
use serde_json::{Value, json};

use crate::error::{ApiError, unavailable};
use crate::http::ServerState;

/// How long readiness waits for the store: a probe must answer before its own timeout.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP; says nothing about its dependencies.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve users: the store answers.
pub async fn readyz(State(state): State<ServerState>) -> Result<Json<Value>, ApiError> {
    state
        .app
        .store
        .check(STORE_CHECK_TIMEOUT)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness: store unreachable");
            unavailable(
                "store_unreachable",
                format!("Runboard's store is unreachable: {e}"),
            )
        })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus metrics in the OpenMetrics text format.
pub async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    // A store that cannot say leaves the alerts as the last scrape found them: the other
    // figures still answer.
    match state.app.store.alert_board(chrono::Utc::now()).await {
        Ok(board) => state.app.metrics.set_alerts_firing(&board),
        Err(error) => tracing::warn!(%error, "the alerts firing could not be read for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.encode(),
    )
}
