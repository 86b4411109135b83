use leptos::prelude::*;
use runboard_model::SignedIn;

use super::ScreenError;

/// The signed-in person and their session's CSRF token, for the top bar's name and
/// sign-out form and for hiding controls their roles do not allow (the server refuses
/// those calls regardless). `None` when no one is signed in; a bearer caller gets its
/// user with an empty token, as it needs none.
#[server(prefix = "/rpc", endpoint = "me")]
pub async fn current_user() -> Result<Option<SignedIn>, ScreenError> {
    use runboard_core::identity::Caller;
    Ok(match super::caller() {
        Caller::Anonymous => None,
        Caller::Session(signed_in) => Some(signed_in),
        Caller::Bearer(user) => Some(SignedIn {
            user,
            csrf_token: String::new(),
        }),
    })
}
