//! The watches' alerts: the board, acknowledging one, and silencing for a while.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use runboard_core::identity::Caller;
use runboard_core::watches::AcknowledgeError;
use runboard_model::{Alert, AlertBoard, Silence, Watch};
use serde::Deserialize;

use super::{body, user_of};
use crate::error::{ApiError, bad_request, conflict, internal, not_found};
use crate::http::ServerState;

/// The longest a silence may last: a watch nobody wants for longer is turned off in the
/// config, where a review sees it.
const LONGEST_SILENCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// `GET /api/v1/alerts`: every open alert, those resolved in the last 7 days, and the
/// silences in force.
pub async fn board(State(state): State<ServerState>) -> Result<Json<AlertBoard>, ApiError> {
    state
        .app
        .store
        .alert_board(Utc::now())
        .await
        .map(Json)
        .map_err(|e| internal("reading the alerts", e))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledging {
    /// What the person is doing about it, for the others.
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/alerts/{id}/acknowledge`: the caller is on it; no reminder follows.
pub async fn acknowledge(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    request: Result<Json<Acknowledging>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let user = user_of(&caller)?;
    let id: i64 = id
        .parse()
        .map_err(|_| not_found(format!("there is no alert {id:?}: alert ids are numbers")))?;
    let Acknowledging { note } = body(request, r#"{"note": "what you are doing about it"}"#)?;
    state
        .app
        .store
        .acknowledge_alert(id, &user.name, note.trim(), Utc::now())
        .await
        .map(Json)
        .map_err(|error| match error {
            AcknowledgeError::Unknown(_) => not_found(error.to_string()),
            AcknowledgeError::Resolved(_) | AcknowledgeError::Already { .. } => {
                conflict(error.to_string())
            }
            AcknowledgeError::Store(e) => internal("acknowledging an alert", e),
        })
}

#[derive(Deserialize)]
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

/// `POST /api/v1/silences`: no message about the alerts it covers until it ends.
pub async fn silence(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    request: Result<Json<NewSilence>, JsonRejection>,
) -> Result<Json<Silence>, ApiError> {
    let user = user_of(&caller)?;
    let request = body(
        request,
        r#"{"service": "payments", "watch": "money_held", "for": "2h", "reason": "…"} (service and watch may be left out)"#,
    )?;
    let service = match request.service.as_deref() {
        None => None,
        Some(name) => Some(
            state
                .app
                .fleet
                .service(name)
                .map(|connector| connector.name().clone())
                .ok_or_else(|| not_found(format!("there is no service {name:?} to silence")))?,
        ),
    };
    let watch = request
        .watch
        .as_deref()
        .map(str::parse::<Watch>)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let lasting = humantime::parse_duration(&request.lasting).map_err(|e| {
        bad_request(format!(
            "\"for\" is not a duration ({e}): give one such as \"30m\" or \"2h\""
        ))
    })?;
    if lasting.is_zero() || lasting > LONGEST_SILENCE {
        return Err(bad_request(
            "a silence lasts more than nothing and at most 7 days; to stop a watch for longer, turn it off in the config (watches.off)",
        ));
    }
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(bad_request(
            "say why in \"reason\": the others see it on the Alerts screen",
        ));
    }
    let now = Utc::now();
    let until: DateTime<Utc> = now + chrono::Duration::from_std(lasting).unwrap_or_default();
    state
        .app
        .store
        .silence_alerts(service.as_ref(), watch, until, reason, &user.name, now)
        .await
        .map(Json)
        .map_err(|e| internal("silencing alerts", e))
}
