use leptos::prelude::*;

#[server(prefix = "/rpc", endpoint = "cancel_action")]
pub async fn cancel_action(id: String) -> Result<(), ServerFnError> {
    let app = super::app_for(super::Access::Operate)?;
    app.cancel_action(&super::user()?, &id)
        .await
        .map(drop)
        .map_err(super::failed)
}
