use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

#[server(prefix = "/rpc", endpoint = "reject_action")]
pub async fn reject_action(id: ActionId, reason: String) -> Result<(), ScreenError> {
    let app = super::app_for::<RejectAction>()?;
    app.reject_action(&super::user()?, &id, &reason).await?;
    Ok(())
}
