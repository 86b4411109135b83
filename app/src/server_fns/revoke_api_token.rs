use leptos::prelude::*;

use super::ScreenError;

/// Revokes one of the signed-in person's own tokens at once.
#[server(prefix = "/rpc", endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: String) -> Result<(), ScreenError> {
    let (app, user) = super::app_and_user::<RevokeApiToken>()?;
    let revoked = app
        .store
        .revoke_api_token(&user.subject, &id, app.clock.now())
        .await
        .map_err(|e| ScreenError::internal("revoking an API token", e))?;
    if revoked {
        Ok(())
    } else {
        Err(ScreenError::refused(
            http::StatusCode::NOT_FOUND,
            format!("you hold no live API token with id {id}; reload to see your tokens"),
        ))
    }
}
