use leptos::prelude::*;
use runboard_model::Action;

use super::ScreenError;

/// The actions that touched one saga or item of a service, newest first.
#[server(prefix = "/rpc", endpoint = "entity_actions")]
pub async fn entity_actions(service: String, id: String) -> Result<Vec<Action>, ScreenError> {
    let app = super::app_for::<EntityActions>()?;
    Ok(app.actions_on_entity(&service, &id).await?)
}
