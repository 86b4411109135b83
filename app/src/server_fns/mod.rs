//! Server functions, one per file. Each is a public endpoint: it checks its caller itself.

pub mod acknowledge_alert;
pub mod alerts_on_page;
pub mod all_batches;
pub mod approve_action;
pub mod ask_for_action;
pub mod batch_detail;
pub mod cancel_action;
pub mod create_api_token;
pub mod current_user;
pub mod end_person_access;
pub mod entity_actions;
mod error;
pub mod list_actions;
pub mod lookup_ids;
pub mod my_api_tokens;
pub mod my_roles;
pub mod people_with_access;
pub mod read_action;
pub mod read_action_form;
pub mod read_alerts;
pub mod read_api_reference;
pub mod read_funds;
pub mod read_overview;
pub mod read_person_access;
pub mod read_saga;
pub mod reject_action;
pub mod resume_action;
pub mod revoke_api_token;
pub mod service_errors;
pub mod service_sagas;
pub mod set_action_pace;
pub mod silence_alerts;
pub mod start_runbook;
pub mod submit_action;

pub use error::ScreenError;

#[cfg(feature = "ssr")]
use leptos::server_fn::ServerFn;
#[cfg(feature = "ssr")]
use runboard_core::identity::{Access, Caller};

/// Who may call each server function, written once: the server's gate in front of them
/// reads it ([`server_fn_access`]), and each function checks its caller against its own
/// row again ([`app_for`]), as a public endpoint must. [`current_user`] and [`my_roles`]
/// say only who the caller is, so they check nothing more than the gate.
#[cfg(feature = "ssr")]
const ACCESS: &[(&str, Access)] = &[
    (acknowledge_alert::AcknowledgeAlert::PATH, Access::Operate),
    (alerts_on_page::AlertsOnPage::PATH, Access::Read),
    (all_batches::AllBatches::PATH, Access::Read),
    (approve_action::ApproveAction::PATH, Access::Approve),
    (ask_for_action::AskForAction::PATH, Access::Operate),
    (batch_detail::ReadBatch::PATH, Access::Read),
    (cancel_action::CancelAction::PATH, Access::Operate),
    (
        create_api_token::CreateApiToken::PATH,
        Access::BrowserSession,
    ),
    (current_user::CurrentUser::PATH, Access::Read),
    (end_person_access::EndPersonAccess::PATH, Access::Admin),
    (entity_actions::EntityActions::PATH, Access::Read),
    (list_actions::ListActions::PATH, Access::Read),
    (lookup_ids::LookupIds::PATH, Access::Read),
    (my_api_tokens::MyApiTokens::PATH, Access::Read),
    (my_roles::MyRoles::PATH, Access::Read),
    (people_with_access::PeopleWithAccess::PATH, Access::Admin),
    (read_action::ReadAction::PATH, Access::Read),
    (read_action_form::ReadActionForm::PATH, Access::Operate),
    (read_alerts::ReadAlerts::PATH, Access::Read),
    (read_api_reference::ReadApiReference::PATH, Access::Read),
    (read_funds::ReadFunds::PATH, Access::Read),
    (read_overview::ReadOverview::PATH, Access::Read),
    (read_person_access::ReadPersonAccess::PATH, Access::Admin),
    (read_saga::ReadSaga::PATH, Access::Read),
    (reject_action::RejectAction::PATH, Access::Approve),
    (resume_action::ResumeAction::PATH, Access::Operate),
    (revoke_api_token::RevokeApiToken::PATH, Access::Read),
    (service_errors::ServiceErrors::PATH, Access::Read),
    (service_sagas::ServiceSagas::PATH, Access::Read),
    (set_action_pace::SetActionPace::PATH, Access::Operate),
    (silence_alerts::SilenceAlerts::PATH, Access::Operate),
    (start_runbook::StartRunbook::PATH, Access::Operate),
    (submit_action::SubmitAction::PATH, Access::Operate),
];

/// What the caller of the server function at `path` must hold. One missing from
/// [`ACCESS`] is for admins alone, gate and function both, until someone decides (the
/// server's tests fail meanwhile).
#[cfg(feature = "ssr")]
pub fn server_fn_access(path: &str) -> Access {
    ACCESS
        .iter()
        .find(|(listed, _)| *listed == path)
        .map_or(Access::Admin, |(_, access)| *access)
}

/// The paths [`ACCESS`] rules on, for the server's test that it rules on every server
/// function.
#[cfg(feature = "ssr")]
pub fn ruled_server_fns() -> impl Iterator<Item = &'static str> {
    ACCESS.iter().map(|(path, _)| *path)
}

/// The shared server state, provided to every server function by the server.
#[cfg(feature = "ssr")]
fn app() -> Result<std::sync::Arc<runboard_core::App>, ScreenError> {
    leptos::prelude::use_context().ok_or_else(|| {
        tracing::error!("server function called without the app state in context");
        ScreenError::new("something went wrong")
    })
}

/// Who called, as the server's authentication found out before the function ran.
#[cfg(feature = "ssr")]
fn caller() -> Caller {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>().cloned())
        .unwrap_or(Caller::Anonymous)
}

/// The shared server state, once the caller is found to hold what server function `F`'s
/// row of [`ACCESS`] asks for. Every server function starts here: it is a public endpoint
/// and checks its caller itself, whatever the gate in front of it already checked.
#[cfg(feature = "ssr")]
fn app_for<F: ServerFn>() -> Result<std::sync::Arc<runboard_core::App>, ScreenError> {
    if let Err(denied) = server_fn_access(F::PATH).check(&caller()) {
        let status = match denied {
            runboard_core::identity::Denied::NotSignedIn => http::StatusCode::UNAUTHORIZED,
            runboard_core::identity::Denied::Lacks(_)
            | runboard_core::identity::Denied::NeedsSession => http::StatusCode::FORBIDDEN,
        };
        return Err(ScreenError::refused(status, denied));
    }
    app()
}

/// The shared server state and the signed-in caller, once found to hold what server
/// function `F`'s row of [`ACCESS`] asks for.
#[cfg(feature = "ssr")]
fn app_and_user<F: ServerFn>()
-> Result<(std::sync::Arc<runboard_core::App>, runboard_model::User), ScreenError> {
    Ok((app_for::<F>()?, user()?))
}

/// The connector of a registered service, or an error naming the unknown one.
#[cfg(feature = "ssr")]
fn connector(
    app: &runboard_core::App,
    service: &str,
) -> Result<std::sync::Arc<runboard_core::connector::Connector>, ScreenError> {
    // A name that is not one (a hand-edited URL) is registered as nothing either.
    let registered = service
        .parse()
        .ok()
        .and_then(|name| app.fleet.service(&name));
    registered.ok_or_else(|| {
        ScreenError::refused(
            http::StatusCode::NOT_FOUND,
            format!("no service is registered as {service:?}; the overview lists them"),
        )
    })
}

/// The signed-in user, for steps that record who took them.
#[cfg(feature = "ssr")]
fn user() -> Result<runboard_model::User, ScreenError> {
    caller()
        .user()
        .cloned()
        .ok_or_else(|| ScreenError::refused(http::StatusCode::UNAUTHORIZED, "sign in first"))
}
