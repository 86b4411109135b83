use leptos::prelude::*;

/// Approves the preview with this digest: the one the approver read.
#[server(prefix = "/rpc", endpoint = "approve_action")]
pub async fn approve_action(id: String, digest: String) -> Result<(), ServerFnError> {
    let app = super::app_for(super::Access::Approve)?;
    app.approve_action(&super::user()?, &id, &digest)
        .await
        .map(drop)
        .map_err(super::failed)
}
