use leptos::prelude::*;
use runboard_model::PersonWithAccess;

/// Everyone who can use Runboard now (a session not ended, a live token), for admins.
#[server(prefix = "/rpc", endpoint = "people_with_access")]
pub async fn people_with_access() -> Result<Vec<PersonWithAccess>, ServerFnError> {
    let (app, admin) = super::app_and_user(runboard_core::identity::Access::Admin)?;
    app.store
        .people_with_access(&admin, chrono::Utc::now())
        .await
        .map_err(super::failed)
}
