use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

/// Starts a saved runbook on `service`: creates its action and preview (every step's dry run
/// for every entity); returns the action's id. `params` is a JSON object of the runbook's
/// parameters. The entities are every failed saga with the error `error`, every failed item
/// of `batch`, or the comma-separated `ids`, resolved here on the server.
#[server(prefix = "/rpc", endpoint = "start_runbook")]
pub async fn start_runbook(
    service: String,
    runbook: String,
    params: String,
    error: Option<String>,
    batch: Option<String>,
    ids: Option<String>,
) -> Result<ActionId, ScreenError> {
    use runboard_core::actions::ActionRequest;
    let app = super::app_for::<StartRunbook>()?;
    let params = serde_json::from_str(&params).map_err(|e| {
        ScreenError::refused(
            http::StatusCode::BAD_REQUEST,
            format!("the parameters are not a JSON object of texts: {e}"),
        )
    })?;
    let request = ActionRequest {
        runbook: Some(runbook),
        params,
        selection: super::ask_for_action::selection(error, batch),
        entities: ids
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(String::from)
            .collect(),
        ..ActionRequest::new(service.parse()?)
    };
    Ok(app
        .create_action_detached(super::user()?, request)
        .await?
        .id)
}
