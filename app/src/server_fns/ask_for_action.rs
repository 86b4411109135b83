use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

/// Creates an action and its preview (the service's dry run included); returns its id.
/// `arguments` is a JSON object, one key per argument of the mutation. The entities are its
/// list of IDs, or every failed saga with the error `error`, or every failed item of
/// `batch`, resolved here on the server.
#[server(prefix = "/rpc", endpoint = "ask_for_action")]
pub async fn ask_for_action(
    service: String,
    mutation: String,
    arguments: String,
    error: Option<String>,
    batch: Option<String>,
) -> Result<ActionId, ScreenError> {
    use runboard_core::actions::ActionRequest;
    let app = super::app_for::<AskForAction>()?;
    let arguments = serde_json::from_str(&arguments).map_err(|e| {
        ScreenError::refused(
            http::StatusCode::BAD_REQUEST,
            format!("the arguments are not a JSON object: {e}"),
        )
    })?;
    let request = ActionRequest {
        mutation,
        arguments,
        selection: selection(error, batch),
        ..ActionRequest::new(service.parse()?)
    };
    Ok(app
        .create_action_detached(super::user()?, request)
        .await?
        .id)
}

/// The selection an error group or a batch stands for, as a screen's link names it.
#[cfg(feature = "ssr")]
pub(super) fn selection(
    error: Option<String>,
    batch: Option<String>,
) -> Option<runboard_core::actions::Selection> {
    use runboard_core::actions::Selection;
    match (error, batch) {
        (Some(error), _) if !error.is_empty() => Some(Selection::ErrorGroup(error)),
        (_, Some(batch)) if !batch.is_empty() => Some(Selection::FailedBatchItems(batch)),
        _ => None,
    }
}
