//! Lookup: IDs pasted as they come, matched across the fleet.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use runboard_model::LookupResult;
use serde::Deserialize;

use super::export::{self, Format, LookupRow};
use super::extract::{BodyExample, JsonBody, Listed, NoQuery};
use crate::error::ApiError;
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
/// As CSV, a row per saga and batch item found, per ID found nowhere and per service that
/// could not be searched.
pub async fn lookup(
    State(state): State<ServerState>,
    listed: Listed<NoQuery>,
    JsonBody(request): JsonBody<LookupRequest>,
) -> Result<Response, ApiError> {
    let result: LookupResult =
        runboard_core::lookup::lookup(&state.app.fleet, &request.text).await?;
    Ok(match listed.format {
        Format::Json => Json(result).into_response(),
        Format::Csv => export::file(
            &export::file_name("runboard", "lookup"),
            &LookupRow::of(result),
        ),
    })
}
