use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

#[server(prefix = "/rpc", endpoint = "resume_action")]
pub async fn resume_action(id: ActionId) -> Result<(), ScreenError> {
    let app = super::app_for::<ResumeAction>()?;
    app.resume_action(&super::user()?, &id).await?;
    Ok(())
}
