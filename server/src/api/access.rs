//! Another person's access, for admins: what they are signed in with, and ending all of it.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use runboard_model::{AccessRevoked, PersonAccess, PersonWithAccess};
use serde::{Deserialize, Serialize};

use super::extract::{ApiQuery, BodyExample, JsonBody, SignedInUser};
use crate::error::ApiError;
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct People {
    people: Vec<PersonWithAccess>,
}

/// `GET /api/v1/people`: everyone with a session not ended or a live token, by name.
pub async fn people(
    State(state): State<ServerState>,
    SignedInUser(admin): SignedInUser,
) -> Result<Json<People>, ApiError> {
    let people = state
        .app
        .store
        .people_with_access(&admin, Utc::now())
        .await?;
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
    SignedInUser(admin): SignedInUser,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<PersonAccess>, ApiError> {
    let access = state.app.store.access_of(&admin, &whose.subject).await?;
    Ok(Json(access))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    subject: String,
    /// Why, for the audit log: "left the company", "laptop stolen".
    reason: String,
}

impl BodyExample for Revocation {
    const EXAMPLE: &'static str = r#"{"subject": "<person key>", "reason": "why"}"#;
}

/// `POST /api/v1/access/revoke`: ends every session of the person and revokes every live
/// token of theirs, audited; their next request, page or API, is refused.
pub async fn revoke(
    State(state): State<ServerState>,
    SignedInUser(admin): SignedInUser,
    JsonBody(revocation): JsonBody<Revocation>,
) -> Result<Json<AccessRevoked>, ApiError> {
    let revoked = state
        .app
        .store
        .revoke_access(&admin, &revocation.subject, &revocation.reason, Utc::now())
        .await?;
    Ok(Json(revoked))
}
