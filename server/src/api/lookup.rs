use axum::Json;
use axum::extract::State;
use runboard_model::LookupResult;
use serde::Deserialize;

use super::extract::{BodyExample, JsonBody};
use crate::error::{ApiError, bad_request};
use crate::http::ServerState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    text: String,
}

impl BodyExample for LookupRequest {
    const EXAMPLE: &'static str = r#"{"text": "log lines or IDs, pasted as they are"}"#;
}

/// `POST /api/v1/lookup`: the IDs in a pasted text, matched across all services.
pub async fn lookup(
    State(state): State<ServerState>,
    JsonBody(request): JsonBody<LookupRequest>,
) -> Result<Json<LookupResult>, ApiError> {
    runboard_core::lookup::lookup(&state.app.fleet, &request.text)
        .await
        .map(Json)
        .map_err(bad_request)
}
