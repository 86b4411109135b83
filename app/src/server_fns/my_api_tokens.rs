use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::ApiToken;
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// A person's tokens and the server's clock when they were read, to tell live from expired
/// the same way on the server and in the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokens {
    pub read_at: DateTime<Utc>,
    pub tokens: Vec<ApiToken>,
}

/// The signed-in person's personal API tokens, newest first; never their secrets.
#[server(prefix = "/rpc", endpoint = "my_api_tokens")]
pub async fn my_api_tokens() -> Result<ApiTokens, ScreenError> {
    let (app, user) = super::app_and_user::<MyApiTokens>()?;
    let tokens = app
        .store
        .api_tokens_of(&user.subject)
        .await
        .map_err(|e| ScreenError::internal("listing your API tokens", e))?;
    Ok(ApiTokens {
        read_at: Utc::now(),
        tokens,
    })
}
