use std::collections::BTreeSet;

use leptos::prelude::*;
use runboard_model::Role;

use super::ScreenError;

/// The caller's roles, for showing only the controls they may use (the server refuses the
/// rest regardless); empty when no one is signed in. Unlike [`super::current_user`] it says
/// nothing personal, so a page rendered with it is the same for everyone holding these
/// roles and can be shared between them.
#[server(prefix = "/rpc", endpoint = "my_roles")]
pub async fn my_roles() -> Result<BTreeSet<Role>, ScreenError> {
    Ok(super::caller()
        .user()
        .map(|user| user.roles.clone())
        .unwrap_or_default())
}
