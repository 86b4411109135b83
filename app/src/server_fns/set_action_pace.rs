use leptos::prelude::*;

use runboard_model::ActionId;

use super::ScreenError;

/// Sets how many entities a second the action may send at most, from its next call on.
#[server(prefix = "/rpc", endpoint = "set_action_pace")]
pub async fn set_action_pace(id: ActionId, entities_per_second: f64) -> Result<(), ScreenError> {
    let app = super::app_for::<SetActionPace>()?;
    let pace = runboard_model::Pace {
        entities_per_second: Some(entities_per_second),
        calls_per_second: None,
    };
    app.set_pace(&super::user()?, &id, pace).await?;
    Ok(())
}
