//! Server functions, one per file. Each is a public endpoint: it checks its caller itself.

pub mod all_batches;
pub mod batch_detail;
pub mod lookup_ids;
pub mod read_funds;
pub mod read_overview;
pub mod read_saga;
pub mod service_errors;
pub mod service_sagas;

#[cfg(feature = "ssr")]
use leptos::prelude::ServerFnError;

/// The shared server state, provided to every server function by the server.
#[cfg(feature = "ssr")]
fn app() -> Result<std::sync::Arc<runboard_core::App>, ServerFnError> {
    leptos::prelude::use_context().ok_or_else(|| {
        tracing::error!("server function called without the app state in context");
        ServerFnError::new("something went wrong")
    })
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
fn connector<'a>(
    app: &'a runboard_core::App,
    service: &str,
) -> Result<&'a runboard_core::connector::Connector, ServerFnError> {
    app.fleet.service(service).ok_or_else(|| {
        ServerFnError::new(format!(
            "no service is registered as {service:?}; the overview lists them"
        ))
    })
}

/// A service that cannot be read: its name and the cause are for the user to see.
#[cfg(feature = "ssr")]
fn read_failed(error: runboard_core::connector::ReadError) -> ServerFnError {
    tracing::warn!(%error, problem = error.problem.label(), "service read failed");
    ServerFnError::new(error.to_string())
}
