//! The caller's own identity and personal API tokens.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use http::StatusCode;
use runboard_core::identity::{Caller, IssueError, issue_personal_token};
use runboard_model::{ApiToken, IssuedApiToken, PersonKey, Role};
use serde::{Deserialize, Serialize};

use super::extract::{BodyExample, JsonBody, SignedInUser};
use crate::error::{ApiError, bad_request, forbidden, internal, not_found, unauthorized};
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    subject: PersonKey,
    name: String,
    roles: Vec<Role>,
    /// `session` or `bearer`.
    signed_in_with: &'static str,
    /// The token cookie-authenticated writes send in X-CSRF-Token; absent for bearer callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// `GET /api/v1/me`: who Runboard takes the caller for.
pub async fn me(Extension(caller): Extension<Caller>) -> Result<Json<Me>, ApiError> {
    let (user, signed_in_with, csrf_token) = match caller {
        Caller::Session(s) => (s.user, "session", Some(s.csrf_token)),
        Caller::Bearer(user) => (user, "bearer", None),
        Caller::Anonymous => return Err(unauthorized("sign in first")),
    };
    Ok(Json(Me {
        subject: user.subject,
        name: user.name,
        roles: user.roles.into_iter().collect(),
        signed_in_with,
        csrf_token,
    }))
}

/// How long a token lives when its holder does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<ApiToken>,
}

/// `GET /api/v1/tokens`: the caller's personal API tokens, never their secrets.
pub async fn list_tokens(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state
        .app
        .store
        .api_tokens_of(&user.subject)
        .await
        .map_err(|e| internal("listing API tokens", e))?;
    Ok(Json(TokenList { tokens }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, so its holder can tell tokens apart: "nightly report".
    label: String,
    /// How long it lives, e.g. "30d"; 30 days when absent, at most identity.api_token_max_lifetime.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30d")]
    expires_in: Option<Duration>,
}

impl BodyExample for NewToken {
    const EXAMPLE: &'static str = r#"{"label": "what it is for", "expires_in": "30d"}"#;
}

/// `POST /api/v1/tokens`: a new token for the signed-in person; its secret is in this answer only.
pub async fn create_token(
    State(state): State<ServerState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<IssuedApiToken>), ApiError> {
    let app = &state.app;
    let issued = issue_personal_token(
        app,
        &caller,
        &request.label,
        request.expires_in.unwrap_or(DEFAULT_LIFETIME),
        app.config.identity.api_token_max_lifetime(),
    )
    .await
    .map_err(|e| match e {
        IssueError::NotFromSession => forbidden(e.to_string()),
        IssueError::Store(e) => internal("issuing an API token", e),
        invalid => bad_request(invalid.to_string()),
    })?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's own tokens at once.
pub async fn revoke_token(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .app
        .store
        .revoke_api_token(&user.subject, &id, state.app.clock.now())
        .await
        .map_err(|e| internal("revoking an API token", e))?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!(
            "you hold no live API token with id {id}"
        )))
    }
}
