use leptos::prelude::*;

use super::ScreenError;

#[server(prefix = "/rpc", endpoint = "cancel_action")]
pub async fn cancel_action(id: String) -> Result<(), ScreenError> {
    let app = super::app_for::<CancelAction>()?;
    app.cancel_action(&super::user()?, &id).await?;
    Ok(())
}
