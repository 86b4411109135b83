use leptos::prelude::*;
use runboard_model::Action;

use super::ScreenError;

/// Actions for the list screen: `mine`, `awaiting_me` or `all`, newest first.
#[server(prefix = "/rpc", endpoint = "actions")]
pub async fn list_actions(view: String) -> Result<Vec<Action>, ScreenError> {
    use runboard_core::actions::ActionFilter;
    let app = super::app_for::<ListActions>()?;
    let user = super::user()?;
    let filter = match view.as_str() {
        "mine" => ActionFilter::RequestedBy(&user.subject),
        "awaiting_me" => ActionFilter::AwaitingApprovalBy(&user.subject),
        _ => ActionFilter::All,
    };
    Ok(app.actions(filter, 200).await?)
}
