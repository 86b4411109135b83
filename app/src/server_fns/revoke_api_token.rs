use leptos::prelude::*;

/// Revokes one of the signed-in person's own tokens at once.
#[server(prefix = "/rpc", endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: String) -> Result<(), ServerFnError> {
    let (app, user) = super::app_and_user(super::Access::Read)?;
    let revoked = app
        .store
        .revoke_api_token(&user.subject, &id, chrono::Utc::now())
        .await
        .map_err(|e| super::internal("revoking an API token", e))?;
    if revoked {
        Ok(())
    } else {
        Err(ServerFnError::new(format!(
            "you hold no live API token with id {id}; reload to see your tokens"
        )))
    }
}
