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

#[cfg(feature = "ssr")]
use leptos::prelude::ServerFnError;
#[cfg(feature = "ssr")]
use runboard_core::identity::{Access, Caller};

/// The shared server state, provided to every server function by the server.
#[cfg(feature = "ssr")]
fn app() -> Result<std::sync::Arc<runboard_core::App>, ServerFnError> {
    leptos::prelude::use_context().ok_or_else(|| {
        tracing::error!("server function called without the app state in context");
        ServerFnError::new("something went wrong")
    })
}

/// Who called, as the server's authentication found out before the function ran.
#[cfg(feature = "ssr")]
fn caller() -> Caller {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>().cloned())
        .unwrap_or(Caller::Anonymous)
}

/// The shared server state, once the caller is found to hold what `access` asks for.
/// Every server function starts here: it is a public endpoint and checks its caller itself,
/// whatever the gate in front of it already checked.
#[cfg(feature = "ssr")]
fn app_for(access: Access) -> Result<std::sync::Arc<runboard_core::App>, ServerFnError> {
    if let Err(denied) = access.check(&caller()) {
        let status = match denied {
            runboard_core::identity::Denied::NotSignedIn => http::StatusCode::UNAUTHORIZED,
            runboard_core::identity::Denied::Lacks(_)
            | runboard_core::identity::Denied::NeedsSession => http::StatusCode::FORBIDDEN,
        };
        return Err(refuse(status, denied));
    }
    app()
}

/// The shared server state and the signed-in caller, once found to hold what `access`
/// asks for.
#[cfg(feature = "ssr")]
fn app_and_user(
    access: Access,
) -> Result<(std::sync::Arc<runboard_core::App>, runboard_model::User), ServerFnError> {
    let app = app_for(access)?;
    let user = caller()
        .user()
        .cloned()
        .ok_or_else(|| ServerFnError::new("sign in first"))?;
    Ok((app, user))
}

/// A request refused for what it asked, with the status that says so (not a 500).
#[cfg(feature = "ssr")]
fn refuse(status: http::StatusCode, reason: impl std::fmt::Display) -> ServerFnError {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
    ServerFnError::new(reason.to_string())
}

/// Turns an internal failure into what the user may see; the detail goes to the log.
#[cfg(feature = "ssr")]
fn internal(what: &str, error: impl std::fmt::Display) -> ServerFnError {
    tracing::error!(%error, "{what}");
    ServerFnError::new(format!(
        "something went wrong while {what}; the details are in Runboard's log"
    ))
}

/// The connector of a registered service, or an error naming the unknown one.
#[cfg(feature = "ssr")]
fn connector(
    app: &runboard_core::App,
    service: &str,
) -> Result<std::sync::Arc<runboard_core::connector::Connector>, ServerFnError> {
    app.fleet.service(service).ok_or_else(|| {
        refuse(
            http::StatusCode::NOT_FOUND,
            format!("no service is registered as {service:?}; the overview lists them"),
        )
    })
}

/// The one place an error of the core becomes a server function's error, with the status
/// of the kind of failure it says it is: its own words for the user, or, for Runboard's own
/// failure, the log's.
#[cfg(feature = "ssr")]
fn failed(error: impl runboard_core::failure::Classified) -> ServerFnError {
    use http::StatusCode;
    use runboard_core::failure::Failure;
    let status = match error.failure() {
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::BadInput => StatusCode::BAD_REQUEST,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::Forbidden => StatusCode::FORBIDDEN,
        Failure::Service(_) => {
            tracing::warn!(%error, "a service failed");
            StatusCode::BAD_GATEWAY
        }
        Failure::ServiceTooSlow => StatusCode::GATEWAY_TIMEOUT,
        Failure::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Failure::Internal(what) => return internal(what, error),
    };
    refuse(status, error)
}

/// The signed-in user, for steps that record who took them.
#[cfg(feature = "ssr")]
fn user() -> Result<runboard_model::User, ServerFnError> {
    caller()
        .user()
        .cloned()
        .ok_or_else(|| refuse(http::StatusCode::UNAUTHORIZED, "sign in first"))
}
