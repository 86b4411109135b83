//! The API's extractors: the signed-in person, a JSON body, a query string and typed path
//! parameters, each refusing bad input in the API's own error shape, saying what to send.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::request::Parts;
use runboard_core::identity::Caller;
use runboard_model::User;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::export::Format;
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
            .map_err(refused_query)
    }
}

fn refused_query(rejection: QueryRejection) -> ApiError {
    bad_request(format!(
        "the query string is not valid: {}",
        rejection.body_text()
    ))
}

/// A list's query string parsed into `T`, with `format` (`json` or `csv`) taken out of it
/// and, where it is not given, the `Accept` header's preference: what the list answers in.
pub(crate) struct Listed<T> {
    pub format: Format,
    pub query: T,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Listed<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut format = None;
        let mut rest = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in
            url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        {
            if name == "format" {
                format = Some(value.into_owned());
            } else {
                rest.append_pair(&name, &value);
            }
        }
        let format = Format::asked(format.as_deref(), &parts.headers)?;
        let uri: http::Uri = format!("/?{}", rest.finish())
            .parse()
            .map_err(|_| bad_request("the query string is not valid"))?;
        let Query(query) = Query::<T>::try_from_uri(&uri).map_err(refused_query)?;
        Ok(Self { format, query })
    }
}

/// The query of a list that takes no parameters but its format.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoQuery {}

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
