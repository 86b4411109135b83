use leptos::prelude::*;
use runboard_model::LookupResult;

/// The IDs in a pasted text, matched across all services.
#[server(prefix = "/rpc", endpoint = "lookup")]
pub async fn lookup_ids(text: String) -> Result<LookupResult, ServerFnError> {
    let app = super::app_for(super::Access::Read)?;
    runboard_core::lookup::lookup(&app.fleet, &text)
        .await
        .map_err(ServerFnError::new)
}
