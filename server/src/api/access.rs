//! Another person's access, for admins: what they are signed in with, and ending all of it.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::{Extension, Json};
use chrono::Utc;
use runboard_core::identity::Caller;
use runboard_model::{AccessRevoked, PersonAccess, PersonWithAccess};
use serde::{Deserialize, Serialize};

use super::ApiQuery;
use crate::error::{ApiError, bad_request, failed, unauthorized};
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct People {
    people: Vec<PersonWithAccess>,
}

/// `GET /api/v1/people`: everyone with a session not ended or a live token, by name.
pub async fn people(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<People>, ApiError> {
    let admin = caller.user().ok_or_else(|| unauthorized("sign in first"))?;
    let people = state
        .app
        .store
        .people_with_access(admin, Utc::now())
        .await
        .map_err(failed)?;
    Ok(Json(People { people }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Whose {
    subject: String,
}

/// `GET /api/v1/access?subject=…`: a person's live sessions and all their tokens.
pub async fn of_person(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<PersonAccess>, ApiError> {
    let admin = caller.user().ok_or_else(|| unauthorized("sign in first"))?;
    let access = state
        .app
        .store
        .access_of(admin, &whose.subject)
        .await
        .map_err(failed)?;
    Ok(Json(access))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    subject: String,
    /// Why, for the audit log: "left the company", "laptop stolen".
    reason: String,
}

/// `POST /api/v1/access/revoke`: ends every session of the person and revokes every live
/// token of theirs, audited; their next request, page or API, is refused.
pub async fn revoke(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Revocation>, JsonRejection>,
) -> Result<Json<AccessRevoked>, ApiError> {
    let Json(revocation) = body.map_err(|e| {
        bad_request(format!(
            "expected {{\"subject\": \"<person key>\", \"reason\": \"why\"}}: {}",
            e.body_text()
        ))
    })?;
    let admin = caller.user().ok_or_else(|| unauthorized("sign in first"))?;
    let revoked = state
        .app
        .store
        .revoke_access(admin, &revocation.subject, &revocation.reason, Utc::now())
        .await
        .map_err(failed)?;
    Ok(Json(revoked))
}
