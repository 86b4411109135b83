use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

/// Sends a previewed action for approval, with a reason.
#[server(prefix = "/rpc", endpoint = "submit_action")]
pub async fn submit_action(
    id: ActionId,
    reason: String,
    incident_url: String,
) -> Result<(), ScreenError> {
    let app = super::app_for::<SubmitAction>()?;
    let incident = Some(incident_url.as_str()).filter(|u| !u.trim().is_empty());
    app.submit_action(&super::user()?, &id, Some(reason.as_str()), incident)
        .await?;
    Ok(())
}
