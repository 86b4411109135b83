use leptos::prelude::*;

/// Creates an action and its preview (the service's dry run included); returns its id.
/// `arguments` is a JSON object, one key per argument of the mutation.
#[server(prefix = "/rpc", endpoint = "ask_for_action")]
pub async fn ask_for_action(
    service: String,
    mutation: String,
    arguments: String,
) -> Result<String, ServerFnError> {
    use runboard_core::actions::ActionRequest;
    let app = super::app_for(super::Access::Operate)?;
    let arguments = serde_json::from_str(&arguments).map_err(|e| {
        super::refuse(
            http::StatusCode::BAD_REQUEST,
            format!("the arguments are not a JSON object: {e}"),
        )
    })?;
    let request = ActionRequest {
        service,
        mutation,
        arguments,
        reason: None,
    };
    app.create_action(&super::user()?, &request)
        .await
        .map(|action| action.id)
        .map_err(super::action_failed)
}
