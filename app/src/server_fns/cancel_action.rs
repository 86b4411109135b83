use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

#[server(prefix = "/rpc", endpoint = "cancel_action")]
pub async fn cancel_action(id: ActionId) -> Result<(), ScreenError> {
    let app = super::app_for::<CancelAction>()?;
    app.cancel_action(&super::user()?, &id).await?;
    Ok(())
}
