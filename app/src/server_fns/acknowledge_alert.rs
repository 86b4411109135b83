use leptos::prelude::*;

use super::ScreenError;

/// Records that the caller is on an alert, with a note for the others.
#[server(prefix = "/rpc", endpoint = "acknowledge_alert")]
pub async fn acknowledge_alert(id: i64, note: String) -> Result<(), ScreenError> {
    let app = super::app_for::<AcknowledgeAlert>()?;
    let user = super::user()?;
    app.acknowledge_alert(id, &user, &note).await?;
    Ok(())
}
