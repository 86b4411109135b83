//! The API's extractors: the signed-in person, a JSON body, a query string and typed path
//! parameters, each refusing bad input in the API's own error shape, saying what to send.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::request::Parts;
use runboard_core::identity::Caller;
use runboard_model::User;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, bad_request, unauthorized};

/// The person calling, as authentication found them; a machine client (no person) is
/// told to sign in.
pub(crate) struct SignedInUser(pub User);

impl<S: Send + Sync> FromRequestParts<S> for SignedInUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .and_then(Caller::user)
            .cloned()
            .map(SignedInUser)
            .ok_or_else(|| unauthorized("sign in first"))
    }
}

/// What a JSON body looks like, for the refusal of one that does not parse and for the
/// OpenAPI document.
pub(crate) trait BodyExample {
    const EXAMPLE: &'static str;
}

/// A JSON body of `T`; one that does not parse is refused with a 400 giving an example.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + BodyExample, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(body)| JsonBody(body))
            .map_err(|e| bad_request(format!("expected {}: {}", T::EXAMPLE, e.body_text())))
    }
}

/// A query string parsed into `T`; one that does not parse is refused with a 400 that says
/// what was wrong.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(query)| ApiQuery(query))
            .map_err(|rejection| {
                bad_request(format!(
                    "the query string is not valid: {}",
                    rejection.body_text()
                ))
            })
    }
}

/// Path parameters parsed into `T` (a `ServiceName`, say); one that is not valid is
/// refused with a 400 saying why.
pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| {
                bad_request(format!("the path is not valid: {}", rejection.body_text()))
            })
    }
}
