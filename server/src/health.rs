//! Liveness, readiness and metrics, for Kubernetes probes, load balancers and Prometheus.

use std::sync::atomic::Ordering;
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

/// Ready to serve users: not shutting down, and the store answers.
pub async fn readyz(State(state): State<ServerState>) -> Result<Json<Value>, ApiError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(unavailable(
            "shutting_down",
            "this Runboard is shutting down and finishing its requests; the other replicas answer",
        ));
    }
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

/// Counts each request in `/metrics` by the route that matched, its method and status,
/// with the time to its response's head and the requests in flight. Per route (the
/// router's layer), around the identity and limit checks, so refusals count too.
pub async fn measure_request(
    State(state): State<ServerState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("fallback", |path| path.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let metrics = &state.app.metrics;
    let _in_flight = metrics.request_started();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.record_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
