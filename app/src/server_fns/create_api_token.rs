use leptos::prelude::*;
use runboard_model::IssuedApiToken;

/// A new personal API token for the signed-in person; the secret is in this answer only.
#[server(prefix = "/rpc", endpoint = "create_api_token")]
pub async fn create_api_token(label: String, days: u32) -> Result<IssuedApiToken, ServerFnError> {
    use runboard_core::identity::{IssueError, issue_personal_token};
    let app = super::app_for(super::Access::BrowserSession)?;
    let lifetime = std::time::Duration::from_secs(u64::from(days) * 24 * 3600);
    issue_personal_token(
        &app.store,
        &super::caller(),
        &label,
        lifetime,
        app.config.identity.api_token_max_lifetime(),
    )
    .await
    .map_err(|e| match e {
        IssueError::Store(e) => super::internal("issuing an API token", e),
        IssueError::NotFromSession => super::refuse(http::StatusCode::FORBIDDEN, e),
        invalid => super::refuse(http::StatusCode::BAD_REQUEST, invalid),
    })
}
