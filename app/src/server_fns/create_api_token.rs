use leptos::prelude::*;
use runboard_model::IssuedApiToken;

use super::ScreenError;

/// A new personal API token for the signed-in person; the secret is in this answer only.
#[server(prefix = "/rpc", endpoint = "create_api_token")]
pub async fn create_api_token(label: String, days: u32) -> Result<IssuedApiToken, ScreenError> {
    use runboard_core::identity::{IssueError, issue_personal_token};
    let app = super::app_for::<CreateApiToken>()?;
    let lifetime = std::time::Duration::from_secs(u64::from(days) * 24 * 3600);
    issue_personal_token(
        &app,
        &super::caller(),
        &label,
        lifetime,
        app.config.identity.api_token_max_lifetime(),
    )
    .await
    .map_err(|e| match e {
        IssueError::Store(e) => ScreenError::internal("issuing an API token", e),
        IssueError::NotFromSession => ScreenError::refused(http::StatusCode::FORBIDDEN, e),
        invalid => ScreenError::refused(http::StatusCode::BAD_REQUEST, invalid),
    })
}
