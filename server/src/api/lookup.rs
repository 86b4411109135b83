use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use runboard_model::LookupResult;
use serde::Deserialize;

use crate::error::{ApiError, bad_request};
use crate::http::ServerState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    text: String,
}

/// `POST /api/v1/lookup`: the IDs in a pasted text, matched across all services.
pub async fn lookup(
    State(state): State<ServerState>,
    body: Result<Json<LookupRequest>, JsonRejection>,
) -> Result<Json<LookupResult>, ApiError> {
    let Json(request) = body.map_err(|e| {
        bad_request(format!(
            "send a JSON body like {{\"text\": \"…\"}}: {}",
            e.body_text()
        ))
    })?;
    runboard_core::lookup::lookup(&state.app.fleet, &request.text)
        .await
        .map(Json)
        .map_err(bad_request)
}
