use leptos::prelude::*;
use runboard_model::ApiReference;

/// The API's routes and schemas, from the OpenAPI document the server made of its route
/// table at start.
#[server(prefix = "/rpc", endpoint = "api_reference")]
pub async fn read_api_reference() -> Result<ApiReference, ServerFnError> {
    super::app_for(super::Access::Read)?;
    use_context::<std::sync::Arc<ApiReference>>()
        .map(|reference| (*reference).clone())
        .ok_or_else(|| {
            tracing::error!("the API reference was not provided to the server functions");
            ServerFnError::new("something went wrong")
        })
}
