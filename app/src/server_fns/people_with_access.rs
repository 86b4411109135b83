use leptos::prelude::*;
use runboard_model::PersonWithAccess;

use super::ScreenError;

/// Everyone who can use Runboard now (a session not ended, a live token), for admins.
#[server(prefix = "/rpc", endpoint = "people_with_access")]
pub async fn people_with_access() -> Result<Vec<PersonWithAccess>, ScreenError> {
    let (app, admin) = super::app_and_user::<PeopleWithAccess>()?;
    Ok(app
        .store
        .people_with_access(&admin, chrono::Utc::now())
        .await?)
}
