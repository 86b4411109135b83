use leptos::prelude::*;

#[server(prefix = "/rpc", endpoint = "resume_action")]
pub async fn resume_action(id: String) -> Result<(), ServerFnError> {
    let app = super::app_for(super::Access::Operate)?;
    app.resume_action(&super::user()?, &id)
        .await
        .map(drop)
        .map_err(super::failed)
}
