//! Corrective actions: the services' catalogs, and each action's preview, approvals,
//! execution and record.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use http::StatusCode;
use runboard_core::actions::{ActionError, ActionFilter, ActionRequest};
use runboard_core::audit::AuditEntry;
use runboard_core::identity::Caller;
use runboard_model::{Action, ActionSpec, ActionState, EntityResult, User};
use serde::{Deserialize, Serialize};

use crate::error::{
    ApiError, bad_gateway, bad_request, conflict, forbidden, internal, not_found, unauthorized,
};
use crate::http::ServerState;

/// The one place an action's refusal becomes a response.
pub(super) fn refused(error: ActionError) -> ApiError {
    match error {
        ActionError::UnknownService(_) | ActionError::NotFound(_) => not_found(error.to_string()),
        ActionError::UnknownMutation { .. } | ActionError::BadArguments(_) => {
            bad_request(error.to_string())
        }
        ActionError::Read(_) | ActionError::Service(_) => {
            bad_gateway("service_failed", error.to_string())
        }
        ActionError::Conflict(_) => conflict(error.to_string()),
        ActionError::Forbidden(_) => forbidden(error.to_string()),
        ActionError::Store(e) => internal("working on an action", e),
    }
}

fn user_of(caller: &Caller) -> Result<&User, ApiError> {
    caller.user().ok_or_else(|| unauthorized("sign in first"))
}

fn body<T>(body: Result<Json<T>, JsonRejection>, expected: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| bad_request(format!("expected {expected}: {}", e.body_text())))
}

#[derive(Serialize)]
pub struct CatalogAnswer {
    service: String,
    read_at: DateTime<Utc>,
    actions: Vec<ActionSpec>,
}

#[derive(Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    refresh: bool,
}

/// `GET /api/v1/services/{service}/actions`: the mutations the service offers, read by
/// introspection (`?refresh=true` reads them again).
pub async fn catalog(
    State(state): State<ServerState>,
    Path(service): Path<String>,
    Query(query): Query<CatalogQuery>,
) -> Result<Json<CatalogAnswer>, ApiError> {
    let connector = state.app.fleet.service(&service).ok_or_else(|| {
        not_found(format!(
            "no service is registered as {service:?}; GET /api/v1/services lists them"
        ))
    })?;
    let catalog = state.app.catalogs.of(connector, query.refresh).await;
    let actions = catalog.actions.map_err(|e| {
        bad_gateway(
            "service_failed",
            format!("the actions of {service} cannot be read: {e}"),
        )
    })?;
    Ok(Json(CatalogAnswer {
        service,
        read_at: catalog.read_at,
        actions,
    }))
}

/// `POST /api/v1/actions`: creates an action and its preview (dry run included).
pub async fn create(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    request: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Action>), ApiError> {
    let request = body(
        request,
        r#"{"service": "payments", "mutation": "retrySagas", "arguments": {"ids": ["…"]}, "reason": "why"}"#,
    )?;
    let action = state
        .app
        .create_action(user_of(&caller)?, &request)
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(action)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// `mine`, `awaiting_me` or `all` (the default).
    view: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct ActionList {
    actions: Vec<Action>,
}

/// `GET /api/v1/actions?view=mine|awaiting_me|all&state=`: newest first.
pub async fn list(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ActionList>, ApiError> {
    let user = user_of(&caller)?;
    let filter = match (query.view.as_deref(), query.state.as_deref()) {
        (_, Some(text)) => ActionFilter::InState(ActionState::parse(text).ok_or_else(|| {
            bad_request(format!(
                "state must be one of {}",
                ActionState::ALL.map(|s| s.as_str()).join(", ")
            ))
        })?),
        (Some("mine"), None) => ActionFilter::RequestedBy(&user.subject),
        (Some("awaiting_me"), None) => ActionFilter::AwaitingApprovalBy(&user.subject),
        (None | Some("all"), None) => ActionFilter::All,
        (Some(other), None) => {
            return Err(bad_request(format!(
                "view must be mine, awaiting_me or all, not {other:?}"
            )));
        }
    };
    let actions = state
        .app
        .actions(filter, query.limit.unwrap_or(100))
        .await
        .map_err(refused)?;
    Ok(Json(ActionList { actions }))
}

#[derive(Serialize)]
pub struct ActionDetail {
    action: Action,
    entities: Vec<EntityResult>,
    audit: Vec<AuditEntry>,
}

/// `GET /api/v1/actions/{id}`: the action, its per-entity results and its audit trail.
pub async fn get(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<ActionDetail>, ApiError> {
    let app = &state.app;
    let action = app.action(&id).await.map_err(refused)?;
    let entities = app.action_entities(&id).await.map_err(refused)?;
    let audit = app
        .store
        .audit_of_action(&id)
        .await
        .map_err(|e| internal("reading an action's audit trail", e))?;
    Ok(Json(ActionDetail {
        action,
        entities,
        audit,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Required unless it was given when the action was asked for.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    incident_url: Option<String>,
}

/// `POST /api/v1/actions/{id}/submit`: sends it for approval, with a reason.
pub async fn submit(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    request: Result<Json<Submission>, JsonRejection>,
) -> Result<Json<Action>, ApiError> {
    let request = body(request, r#"{"reason": "why", "incident_url": "https://…"}"#)?;
    state
        .app
        .submit_action(
            user_of(&caller)?,
            &id,
            request.reason.as_deref(),
            request.incident_url.as_deref(),
        )
        .await
        .map(Json)
        .map_err(refused)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The digest of the preview the approver read.
    digest: String,
}

/// `POST /api/v1/actions/{id}/approve`: approves the preview with this digest.
pub async fn approve(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    request: Result<Json<ApprovalRequest>, JsonRejection>,
) -> Result<Json<Action>, ApiError> {
    let request = body(request, r#"{"digest": "the preview's digest"}"#)?;
    state
        .app
        .approve_action(user_of(&caller)?, &id, &request.digest)
        .await
        .map(Json)
        .map_err(refused)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    reason: String,
}

/// `POST /api/v1/actions/{id}/reject`: rejects it, with a reason.
pub async fn reject(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    request: Result<Json<Rejection>, JsonRejection>,
) -> Result<Json<Action>, ApiError> {
    let request = body(request, r#"{"reason": "why not"}"#)?;
    state
        .app
        .reject_action(user_of(&caller)?, &id, &request.reason)
        .await
        .map(Json)
        .map_err(refused)
}

/// `POST /api/v1/actions/{id}/cancel`.
pub async fn cancel(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    state
        .app
        .cancel_action(user_of(&caller)?, &id)
        .await
        .map(Json)
        .map_err(refused)
}

/// `POST /api/v1/actions/{id}/resume`: carries on with a paused action.
pub async fn resume(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Action>, ApiError> {
    state
        .app
        .resume_action(user_of(&caller)?, &id)
        .await
        .map(Json)
        .map_err(refused)
}
