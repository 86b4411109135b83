//! Server functions, one per file. Each is a public endpoint: it checks its caller itself.

pub mod read_overview;

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
