//! The one place where failures become HTTP responses.
//!
//! Every error answers `{ "error": { "code", "message" } }` with a fitting status.
//! Turning an error into a response has no side effects: internal failures are logged
//! where they are constructed, and the user reads only "something went wrong".

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use runboard_core::failure::{Classified, Failure};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Every error the API answers.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: Detail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorDetail)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

pub fn not_found(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: message.into(),
    }
}

/// No identity, or one that was refused: the message says which and what to send.
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: message.into(),
    }
}

/// A known caller asking for what their roles do not allow, or a write that failed the CSRF checks.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message: message.into(),
    }
}

/// One caller asking faster than their limit; the message says the limit and when to
/// try again.
pub fn too_many_requests(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "too_many_requests",
        message: message.into(),
    }
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        message: message.into(),
    }
}

/// A service of the fleet failed to answer; the message names it and the cause.
pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_GATEWAY,
        code,
        message: message.into(),
    }
}

pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code,
        message: message.into(),
    }
}

/// An unexpected failure: the detail goes to the log (with the request's span), not to the user.
pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "{context}");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "something went wrong; the details are in Runboard's log".into(),
    }
}

/// An error of the core, answered by the kind of failure it says it is: its own words for
/// the caller, or, for Runboard's own failure, the log's. What lets a handler write `?`.
impl<E: Classified> From<E> for ApiError {
    fn from(error: E) -> Self {
        let failure = error.failure();
        match failure {
            Failure::Internal(what) => return internal(what, error),
            Failure::Service(_) => tracing::warn!(%error, "a service failed"),
            _ => {}
        }
        ApiError {
            status: failure.status(),
            code: failure.code(),
            message: error.to_string(),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: tells a script which scheme to use.
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"runboard\""),
            );
        }
        response
    }
}
