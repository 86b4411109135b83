use axum::Json;
use axum::extract::State;
use runboard_model::RegisteredService;
use serde::Serialize;

use crate::error::{ApiError, internal};
use crate::http::ServerState;

#[derive(Serialize)]
pub struct ServiceList {
    services: Vec<RegisteredService>,
}

/// `GET /api/v1/services`: the registered services.
// Identity arrives with the identity issue; until then every caller may read this list.
pub async fn list(State(state): State<ServerState>) -> Result<Json<ServiceList>, ApiError> {
    let services = state
        .app
        .store
        .registered_services()
        .await
        .map_err(|e| internal("reading the service registry", e))?;
    Ok(Json(ServiceList { services }))
}
