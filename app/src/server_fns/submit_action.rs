use leptos::prelude::*;

/// Sends a previewed action for approval, with a reason.
#[server(prefix = "/rpc", endpoint = "submit_action")]
pub async fn submit_action(
    id: String,
    reason: String,
    incident_url: String,
) -> Result<(), ServerFnError> {
    let app = super::app_for(super::Access::Operate)?;
    let incident = Some(incident_url.as_str()).filter(|u| !u.trim().is_empty());
    app.submit_action(&super::user()?, &id, Some(reason.as_str()), incident)
        .await
        .map(drop)
        .map_err(super::failed)
}
