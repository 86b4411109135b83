//! Corrective actions: the services' catalogs, and each action's preview, approvals,
//! execution and record.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::StatusCode;
use runboard_core::actions::{
    ActionFilter, ActionRequest, EntityPage, MAX_ENTITY_PAGE, RequestKey,
};
use runboard_core::audit::AuditEntry;
use runboard_model::{
    Action, ActionId, ActionSpec, ActionState, Digest, EntityResult, EntityState, ServiceName,
};
use serde::{Deserialize, Serialize};

use super::export::{self, EntityRow, Format};
use super::extract::{ApiPath, ApiQuery, BodyExample, JsonBody, Listed, SignedInUser};
use crate::error::{ApiError, bad_gateway, bad_request, internal};
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CatalogAnswer {
    service: ServiceName,
    read_at: DateTime<Utc>,
    actions: Vec<ActionSpec>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    #[serde(default)]
    refresh: bool,
}

/// `GET /api/v1/services/{service}/actions`: the mutations the service offers, read by
/// introspection (`?refresh=true` reads them again).
pub async fn catalog(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> Result<Json<CatalogAnswer>, ApiError> {
    let connector = super::services::connector(&state, &service)?;
    let catalog = state.app.catalogs.of(&connector, query.refresh).await;
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

impl BodyExample for ActionRequest {
    const EXAMPLE: &'static str = r#"{"service": "payments", "mutation": "retrySagas", "arguments": {"ids": ["…"]}, "reason": "why"} (or, in place of the IDs, "selection": {"error_group": "…"} or {"failed_batch_items": "…"})"#;
}

/// `POST /api/v1/actions`: creates an action and its preview (dry run included). With an
/// `Idempotency-Key` header, a retry of the same request answers with the action the first
/// one made.
pub async fn create(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    headers: http::HeaderMap,
    JsonBody(mut request): JsonBody<ActionRequest>,
) -> Result<(StatusCode, Json<Action>), ApiError> {
    if let Some(key) = headers.get("idempotency-key") {
        let key = key.to_str().map_err(|_| {
            bad_request("the Idempotency-Key must be printable ASCII, such as a UUID")
        })?;
        request.idempotency = Some(RequestKey::new(key, &request)?);
    }
    let action = state
        .app
        .clone()
        .create_action_detached(user, request)
        .await?;
    Ok((StatusCode::CREATED, Json(action)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `mine`, `awaiting_me` or `all` (the default).
    view: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionList {
    actions: Vec<Action>,
}

/// `GET /api/v1/actions?view=mine|awaiting_me|all&state=`: newest first.
pub async fn list(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ActionList>, ApiError> {
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
        .await?;
    Ok(Json(ActionList { actions }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionDetail {
    action: Action,
    /// One page of its entities.
    entities: Vec<EntityResult>,
    /// `?after=` for the next page, when there is one.
    next_after: Option<u64>,
    audit: Vec<AuditEntry>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntityQuery {
    after: Option<u64>,
    limit: Option<u32>,
    state: Option<String>,
}

impl EntityQuery {
    /// The page asked for, checked: 500 unless `limit` says, at most 1,000; only those in
    /// `state` if given.
    fn page(&self) -> Result<EntityPage, ApiError> {
        let limit = self.limit.unwrap_or(500);
        if !(1..=MAX_ENTITY_PAGE).contains(&limit) {
            return Err(bad_request(format!(
                "limit={limit} is out of range; use 1 to {MAX_ENTITY_PAGE}"
            )));
        }
        let state = match self.state.as_deref() {
            None => None,
            Some(text) => Some(EntityState::parse(text).ok_or_else(|| {
                bad_request(format!(
                    "state={text:?} is not an entity state; use pending, succeeded or failed"
                ))
            })?),
        };
        Ok(EntityPage {
            after: self.after,
            limit,
            state,
        })
    }
}

/// One page of an action's entities, and the `after` of the next when there is one.
async fn entity_page(
    state: &ServerState,
    action: &Action,
    page: EntityPage,
) -> Result<(Vec<EntityResult>, Option<u64>), ApiError> {
    let limit = page.limit as usize;
    // One more than asked tells whether there is a next page.
    let page = EntityPage {
        limit: page.limit + 1,
        ..page
    };
    let mut entities = state.app.action_entities(action, &page).await?;
    let next_after = (entities.len() > limit).then(|| {
        entities.truncate(limit);
        entities.last().map_or(0, |e| e.position)
    });
    Ok((entities, next_after))
}

/// `GET /api/v1/actions/{id}?after=&limit=&state=`: the action, a page of its entities
/// (500 unless `limit` says, at most 1,000; only those in `state` if given) and its audit
/// trail.
pub async fn get(
    State(state): State<ServerState>,
    Path(id): Path<ActionId>,
    ApiQuery(query): ApiQuery<EntityQuery>,
) -> Result<Json<ActionDetail>, ApiError> {
    let page = query.page()?;
    let action = state.app.action(&id).await?;
    let (entities, next_after) = entity_page(&state, &action, page).await?;
    let audit = state
        .app
        .store
        .audit_of_action(&id)
        .await
        .map_err(|e| internal("reading an action's audit trail", e))?;
    Ok(Json(ActionDetail {
        action,
        entities,
        next_after,
        audit,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EntityList {
    entities: Vec<EntityResult>,
    /// `?after=` for the next page, when there is one.
    next_after: Option<u64>,
}

/// `GET /api/v1/actions/{id}/entities?after=&limit=&state=`: a page of the action's
/// entities: each as the preview found it, what its dry run planned and what was done, step
/// by step in a runbook. As CSV, all of them from `after` (a row per entity, or per entity
/// and step in a runbook).
pub async fn entities(
    State(state): State<ServerState>,
    Path(id): Path<ActionId>,
    Listed { format, query }: Listed<EntityQuery>,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    let action = state.app.action(&id).await?;
    if format == Format::Json {
        let (entities, next_after) = entity_page(&state, &action, page).await?;
        return Ok(Json(EntityList {
            entities,
            next_after,
        })
        .into_response());
    }
    let name = export::file_name(
        action.service.as_str(),
        &format!("action-{}-entities", action.id),
    );
    let first = EntityPage {
        limit: MAX_ENTITY_PAGE,
        ..page
    };
    let app = state.app.clone();
    let pages = futures_util::stream::unfold(Some(first), move |page| {
        let (app, action) = (app.clone(), action.clone());
        async move {
            let page = page?;
            let entities = app.action_entities(&action, &page).await;
            let next = match &entities {
                Ok(entities) if entities.len() == page.limit as usize => {
                    entities.last().map(|last| EntityPage {
                        after: Some(last.position),
                        ..page
                    })
                }
                _ => None,
            };
            Some((entities.map(EntityRow::of), next))
        }
    });
    export::streamed(name, pages, ApiError::from).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Required unless it was given when the action was asked for.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    incident_url: Option<String>,
}

impl BodyExample for Submission {
    const EXAMPLE: &'static str = r#"{"reason": "why", "incident_url": "https://…"}"#;
}

/// `POST /api/v1/actions/{id}/submit`: sends it for approval, with a reason.
pub async fn submit(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
    JsonBody(request): JsonBody<Submission>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(
        state
            .app
            .submit_action(
                &user,
                &id,
                request.reason.as_deref(),
                request.incident_url.as_deref(),
            )
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The digest of the preview the approver read.
    digest: Digest,
}

impl BodyExample for ApprovalRequest {
    const EXAMPLE: &'static str = r#"{"digest": "the preview's digest"}"#;
}

/// `POST /api/v1/actions/{id}/approve`: approves the preview with this digest.
pub async fn approve(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
    JsonBody(request): JsonBody<ApprovalRequest>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(
        state
            .app
            .approve_action(&user, &id, &request.digest)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    reason: String,
}

impl BodyExample for Rejection {
    const EXAMPLE: &'static str = r#"{"reason": "why not"}"#;
}

/// `POST /api/v1/actions/{id}/reject`: rejects it, with a reason.
pub async fn reject(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
    JsonBody(request): JsonBody<Rejection>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(
        state.app.reject_action(&user, &id, &request.reason).await?,
    ))
}

/// `POST /api/v1/actions/{id}/cancel`.
pub async fn cancel(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(state.app.cancel_action(&user, &id).await?))
}

/// `POST /api/v1/actions/{id}/resume`: carries on with a paused action.
pub async fn resume(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(state.app.resume_action(&user, &id).await?))
}

impl BodyExample for runboard_model::Pace {
    const EXAMPLE: &'static str = r#"{"entities_per_second": 500} (and/or "calls_per_second": 2)"#;
}

/// `POST /api/v1/actions/{id}/pace`: gives the action a pace of its own, kept from its next
/// call on, in place of the one it had.
pub async fn pace(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<ActionId>,
    JsonBody(pace): JsonBody<runboard_model::Pace>,
) -> Result<Json<Action>, ApiError> {
    Ok(Json(state.app.set_pace(&user, &id, pace).await?))
}
