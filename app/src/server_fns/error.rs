//! What a server function answers when it does not do what was asked, and what a screen
//! shows of it.

use leptos::server_fn::error::{FromServerFnError, ServerFnErrorEncoding, ServerFnErrorErr};
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{Deserialize, Serialize};

/// Why a server function did not answer, in the words the person reads on the screen.
/// Leptos' own error inside, worded and sent as it words and sends it; a type of Runboard's
/// own so that a server function may write `?` after a call into the core (Leptos turns
/// any error into its own with a 500, without the status the failure calls for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScreenError(leptos::prelude::ServerFnError);

impl ScreenError {
    /// An answer in these words, with the status Leptos gives a failed server function
    /// (and none for a page that called it while rendering).
    #[cfg(feature = "ssr")]
    pub(super) fn new(message: impl std::fmt::Display) -> Self {
        Self(leptos::prelude::ServerFnError::new(message))
    }

    /// A request refused for what it asked, with the status that says so (not a 500),
    /// for the server function's answer and for a page that called it while rendering.
    #[cfg(feature = "ssr")]
    pub(super) fn refused(status: http::StatusCode, reason: impl std::fmt::Display) -> Self {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
        Self::new(reason)
    }

    /// Runboard's own failure while doing `what`: the detail goes to the log, the user
    /// reads what was being done.
    #[cfg(feature = "ssr")]
    pub(super) fn internal(what: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{what}");
        Self::new(format!(
            "something went wrong while {what}; the details are in Runboard's log"
        ))
    }
}

/// An error of the core, answered by the kind of failure it says it is, with that kind's
/// status: its own words for the user, or, for Runboard's own failure, the log's.
#[cfg(feature = "ssr")]
impl<E: runboard_core::failure::Classified> From<E> for ScreenError {
    fn from(error: E) -> Self {
        use runboard_core::failure::Failure;
        let failure = error.failure();
        match failure {
            Failure::Internal(what) => return Self::internal(what, error),
            Failure::Service(_) => tracing::warn!(%error, "a service failed"),
            _ => {}
        }
        Self::refused(failure.status(), error)
    }
}

impl std::fmt::Display for ScreenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ScreenError {}

impl FromServerFnError for ScreenError {
    type Encoder = Encoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self(FromServerFnError::from_server_fn_error(value))
    }
}

/// Sends a [`ScreenError`] as Leptos sends its own.
pub struct Encoding;

impl ContentType for Encoding {
    const CONTENT_TYPE: &'static str = ServerFnErrorEncoding::CONTENT_TYPE;
}

impl FormatType for Encoding {
    const FORMAT_TYPE: Format = ServerFnErrorEncoding::FORMAT_TYPE;
}

impl Encodes<ScreenError> for Encoding {
    type Error = <ServerFnErrorEncoding as Encodes<leptos::prelude::ServerFnError>>::Error;

    fn encode(error: &ScreenError) -> Result<Bytes, Self::Error> {
        ServerFnErrorEncoding::encode(&error.0)
    }
}

impl Decodes<ScreenError> for Encoding {
    type Error = <ServerFnErrorEncoding as Decodes<leptos::prelude::ServerFnError>>::Error;

    fn decode(bytes: Bytes) -> Result<ScreenError, Self::Error> {
        ServerFnErrorEncoding::decode(bytes).map(ScreenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leptos::prelude::ServerFnError;

    /// The browser gets the bytes Leptos sent for its own error before, and shows the words
    /// it showed.
    #[test]
    fn a_screen_error_is_sent_and_shown_as_leptos_own() {
        let leptos = ServerFnError::new("sign in first");
        let ours = ScreenError(leptos.clone());
        let sent = Encoding::encode(&ours).unwrap();
        assert_eq!(sent, ServerFnErrorEncoding::encode(&leptos).unwrap());
        let received = Encoding::decode(sent).unwrap();
        assert_eq!(received.to_string(), leptos.to_string());
        assert_eq!(
            received.to_string(),
            "error running server function: sign in first"
        );
    }
}
