//! The watches' alerts: the board, acknowledging one, and silencing for a while.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use runboard_core::watches::SilenceRequest;
use runboard_model::{Alert, AlertBoard, Silence};
use serde::Deserialize;

use super::export::{self, Format};
use super::extract::{BodyExample, JsonBody, Listed, NoQuery, SignedInUser};
use crate::error::{ApiError, internal, not_found};
use crate::http::ServerState;

/// `GET /api/v1/alerts`: every open alert, those resolved in the last 7 days, and the
/// silences in force; as CSV, the alerts (open and resolved).
pub async fn board(
    State(state): State<ServerState>,
    listed: Listed<NoQuery>,
) -> Result<Response, ApiError> {
    let board: AlertBoard = state
        .app
        .store
        .alert_board(state.app.clock.now())
        .await
        .map_err(|e| internal("reading the alerts", e))?;
    Ok(match listed.format {
        Format::Json => Json(board).into_response(),
        Format::Csv => export::file(&export::file_name("runboard", "alerts"), &board.alerts),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledging {
    /// What the person is doing about it, for the others.
    #[serde(default)]
    note: String,
}

impl BodyExample for Acknowledging {
    const EXAMPLE: &'static str = r#"{"note": "what you are doing about it"}"#;
}

/// `POST /api/v1/alerts/{id}/acknowledge`: the caller is on it; no reminder follows.
pub async fn acknowledge(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<String>,
    JsonBody(Acknowledging { note }): JsonBody<Acknowledging>,
) -> Result<Json<Alert>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| not_found(format!("there is no alert {id:?}: alert ids are numbers")))?;
    Ok(Json(state.app.acknowledge_alert(id, &user, &note).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Left out: every service.
    service: Option<String>,
    /// Left out: every watch.
    watch: Option<String>,
    /// How long, as `2h` or `30m`.
    #[serde(rename = "for")]
    lasting: String,
    reason: String,
}

impl BodyExample for NewSilence {
    const EXAMPLE: &'static str = r#"{"service": "payments", "watch": "money_held", "for": "2h", "reason": "…"} (service and watch may be left out)"#;
}

/// `POST /api/v1/silences`: no message about the alerts it covers until it ends.
pub async fn silence(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    JsonBody(request): JsonBody<NewSilence>,
) -> Result<Json<Silence>, ApiError> {
    Ok(Json(
        state
            .app
            .silence_alerts(
                &user,
                SilenceRequest {
                    service: request.service.as_deref(),
                    watch: request.watch.as_deref(),
                    lasting: &request.lasting,
                    reason: &request.reason,
                },
            )
            .await?,
    ))
}
