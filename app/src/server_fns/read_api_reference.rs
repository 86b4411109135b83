use leptos::prelude::*;
use runboard_model::ApiReference;

use super::ScreenError;

/// The API's routes and schemas, from the OpenAPI document the server made of its route
/// table at start.
#[server(prefix = "/rpc", endpoint = "api_reference")]
pub async fn read_api_reference() -> Result<ApiReference, ScreenError> {
    super::app_for::<ReadApiReference>()?;
    use_context::<std::sync::Arc<ApiReference>>()
        .map(|reference| (*reference).clone())
        .ok_or_else(|| {
            tracing::error!("the API reference was not provided to the server functions");
            ScreenError::new("something went wrong")
        })
}
