use leptos::prelude::*;

#[server(prefix = "/rpc", endpoint = "reject_action")]
pub async fn reject_action(id: String, reason: String) -> Result<(), ServerFnError> {
    let app = super::app_for(super::Access::Approve)?;
    app.reject_action(&super::user()?, &id, &reason)
        .await
        .map(drop)
        .map_err(super::failed)
}
