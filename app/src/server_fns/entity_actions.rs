use leptos::prelude::*;
use runboard_model::Action;

/// The actions that touched one saga or item of a service, newest first.
#[server(prefix = "/rpc", endpoint = "entity_actions")]
pub async fn entity_actions(service: String, id: String) -> Result<Vec<Action>, ServerFnError> {
    let app = super::app_for(super::Access::Read)?;
    app.actions_on_entity(&service, &id)
        .await
        .map_err(super::failed)
}
