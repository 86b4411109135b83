use leptos::prelude::*;
use runboard_model::AccessRevoked;

use super::ScreenError;

/// Ends every session of a person and revokes every live token of theirs, audited with the
/// reason; their next request, page or API, is refused. For admins.
#[server(prefix = "/rpc", endpoint = "end_person_access")]
pub async fn end_person_access(
    subject: String,
    reason: String,
) -> Result<AccessRevoked, ScreenError> {
    let (app, admin) = super::app_and_user::<EndPersonAccess>()?;
    Ok(app
        .store
        .revoke_access(&admin, &subject, &reason, chrono::Utc::now())
        .await?)
}
