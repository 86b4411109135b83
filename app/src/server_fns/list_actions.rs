use leptos::prelude::*;
use runboard_model::Action;

/// Actions for the list screen: `mine`, `awaiting_me` or `all`, newest first.
#[server(prefix = "/rpc", endpoint = "actions")]
pub async fn list_actions(view: String) -> Result<Vec<Action>, ServerFnError> {
    use runboard_core::actions::ActionFilter;
    let app = super::app_for(super::Access::Read)?;
    let user = super::user()?;
    let filter = match view.as_str() {
        "mine" => ActionFilter::RequestedBy(&user.subject),
        "awaiting_me" => ActionFilter::AwaitingApprovalBy(&user.subject),
        _ => ActionFilter::All,
    };
    app.actions(filter, 200).await.map_err(super::failed)
}
