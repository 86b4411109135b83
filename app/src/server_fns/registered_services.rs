use leptos::prelude::*;
use runboard_model::RegisteredService;

/// The services Runboard watches, from the registry in the store.
// Identity arrives with the identity issue; until then every caller may read this list.
#[server(prefix = "/rpc", endpoint = "registered_services")]
pub async fn registered_services() -> Result<Vec<RegisteredService>, ServerFnError> {
    let app = super::app()?;
    app.store
        .registered_services()
        .await
        .map_err(|e| super::internal("reading the service registry", e))
}
