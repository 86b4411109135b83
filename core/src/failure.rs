//! What kind of failure an error is, whatever carries it to the person who asked: each
//! error of the core says it here once, and each kind's HTTP status is written here once,
//! for the HTTP API (`server/src/error.rs`) and the server functions
//! (`app/src/server_fns/mod.rs`) alike.

use crate::actions::ActionError;
use crate::connector::{ReadError, ReadProblem};
use crate::identity::AccessError;
use crate::watches::{AcknowledgeError, SilenceError};

/// The kinds of failure a caller is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// What was asked about does not exist.
    NotFound,
    /// The request itself is wrong: the message says what to send instead.
    BadInput,
    /// Not now: what was asked about is in a state that does not allow it.
    Conflict,
    /// Not by this caller.
    Forbidden,
    /// A service of the fleet failed to answer; the word says how, for scripts
    /// (`service_unreachable`, `service_timeout`, `service_read_failed`, `service_failed`).
    Service(&'static str),
    /// A service took longer than Runboard may wait for it.
    ServiceTooSlow,
    /// Runboard's own bound on what it asks of a service is reached: try again shortly.
    Busy,
    /// Runboard's own failure while doing what the words say: the detail is for the log,
    /// never for the caller.
    Internal(&'static str),
}

impl Failure {
    /// The HTTP status that tells the caller this kind of failure.
    pub fn status(self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadInput => StatusCode::BAD_REQUEST,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Service(_) => StatusCode::BAD_GATEWAY,
            Self::ServiceTooSlow => StatusCode::GATEWAY_TIMEOUT,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The word a script reads in the API's `error.code` for this kind of failure.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::BadInput => "bad_request",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::Service(code) => code,
            Self::ServiceTooSlow => "service_too_slow",
            Self::Busy => "service_busy",
            Self::Internal(_) => "internal",
        }
    }
}

/// An error that says what kind of failure it is.
pub trait Classified: std::error::Error {
    fn failure(&self) -> Failure;
}

/// A shared read's error, as several waiters get it.
impl<E: Classified> Classified for std::sync::Arc<E> {
    fn failure(&self) -> Failure {
        (**self).failure()
    }
}

impl Classified for ReadError {
    fn failure(&self) -> Failure {
        match &self.problem {
            ReadProblem::Busy(_) => Failure::Busy,
            ReadProblem::Unreachable(_) => Failure::Service("service_unreachable"),
            ReadProblem::Timeout(_) => Failure::Service("service_timeout"),
            _ => Failure::Service("service_read_failed"),
        }
    }
}

/// A service named by text (a form, a link) that no service could be called.
impl Classified for runboard_model::ServiceNameError {
    fn failure(&self) -> Failure {
        Failure::BadInput
    }
}

impl Classified for ActionError {
    fn failure(&self) -> Failure {
        match self {
            Self::UnknownService(_) | Self::NotFound(_) | Self::NoRunbook(_) => Failure::NotFound,
            Self::UnknownMutation { .. } | Self::BadArguments(_) => Failure::BadInput,
            Self::Read(_) | Self::Service(_) => Failure::Service("service_failed"),
            Self::TooSlow(_) => Failure::ServiceTooSlow,
            Self::Conflict(_) => Failure::Conflict,
            Self::Forbidden(_) => Failure::Forbidden,
            Self::Store(_) => Failure::Internal("working on an action"),
        }
    }
}

impl Classified for AccessError {
    fn failure(&self) -> Failure {
        match self {
            Self::NotAdmin => Failure::Forbidden,
            Self::NoSubject | Self::NoReason => Failure::BadInput,
            Self::Store(_) => Failure::Internal("reading or ending a person's access"),
        }
    }
}

impl Classified for AcknowledgeError {
    fn failure(&self) -> Failure {
        match self {
            Self::Unknown(_) => Failure::NotFound,
            Self::Resolved(_) | Self::Already { .. } => Failure::Conflict,
            Self::Store(_) => Failure::Internal("acknowledging an alert"),
        }
    }
}

impl Classified for crate::lookup::LookupError {
    fn failure(&self) -> Failure {
        match self {
            Self::TooManyIds(_) => Failure::BadInput,
        }
    }
}

impl Classified for SilenceError {
    fn failure(&self) -> Failure {
        match self {
            Self::UnknownService(_) => Failure::NotFound,
            Self::UnknownWatch(_) | Self::NotADuration(_) | Self::Length | Self::NoReason => {
                Failure::BadInput
            }
            Self::Store(_) => Failure::Internal("silencing alerts"),
        }
    }
}
