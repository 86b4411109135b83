use leptos::prelude::*;
use runboard_model::ErrorGroup;

/// A service's failed sagas grouped by error message, largest group first.
// Identity arrives with the identity issue; until then every caller may read this.
#[server(prefix = "/rpc", endpoint = "service_errors")]
pub async fn service_errors(service: String) -> Result<Vec<ErrorGroup>, ServerFnError> {
    let app = super::app()?;
    super::connector(&app, &service)?
        .error_groups()
        .await
        .map_err(super::read_failed)
}
