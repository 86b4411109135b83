//! The JSON API under `/api/v1`: everything a screen can do, by domain.

mod access;
mod account;
mod actions;
mod alerts;
mod audit;
mod lookup;
mod record;
pub(crate) mod services;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, OriginalUri, Query};
use http::Method;
use http::request::Parts;
use runboard_core::identity::{Access, Caller};
use runboard_model::User;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, bad_request, not_found, unauthorized};
use crate::http::RouteTable;

/// The API's routes, each with who may call it.
pub(crate) fn routes(table: RouteTable) -> RouteTable {
    use Access::{Admin, Approve, BrowserSession, Operate, Public, Read};
    use Method as M;
    table
        .add(M::GET, "/api/v1/me", Read, account::me)
        .add(M::GET, "/api/v1/tokens", Read, account::list_tokens)
        // A token may not mint tokens.
        .add(
            M::POST,
            "/api/v1/tokens",
            BrowserSession,
            account::create_token,
        )
        .add(
            M::DELETE,
            "/api/v1/tokens/{id}",
            Read,
            account::revoke_token,
        )
        .add(M::GET, "/api/v1/people", Admin, access::people)
        .add(M::GET, "/api/v1/access", Admin, access::of_person)
        .add(M::POST, "/api/v1/access/revoke", Admin, access::revoke)
        .add(M::GET, "/api/v1/services", Read, services::list)
        .add(
            M::GET,
            "/api/v1/services/{service}/sagas",
            Read,
            services::sagas,
        )
        .add(
            M::GET,
            "/api/v1/services/{service}/errors",
            Read,
            services::errors,
        )
        .add(
            M::GET,
            "/api/v1/services/{service}/batches",
            Read,
            services::batches,
        )
        .add(
            M::GET,
            "/api/v1/services/{service}/batches/{batch}",
            Read,
            services::batch,
        )
        .add(
            M::GET,
            "/api/v1/services/{service}/batches/{batch}/items",
            Read,
            services::batch_items,
        )
        .add(M::GET, "/api/v1/funds", Read, services::funds)
        .add(M::POST, "/api/v1/lookup", Read, lookup::lookup)
        .add(M::GET, "/api/v1/audit/verify", Read, audit::verify)
        .add(
            M::GET,
            "/api/v1/services/{service}/actions",
            Read,
            actions::catalog,
        )
        .add(M::POST, "/api/v1/actions", Operate, actions::create)
        .add(M::GET, "/api/v1/actions", Read, actions::list)
        .add(M::GET, "/api/v1/actions/{id}", Read, actions::get)
        .add(
            M::POST,
            "/api/v1/actions/{id}/submit",
            Operate,
            actions::submit,
        )
        .add(
            M::POST,
            "/api/v1/actions/{id}/approve",
            Approve,
            actions::approve,
        )
        .add(
            M::POST,
            "/api/v1/actions/{id}/reject",
            Approve,
            actions::reject,
        )
        .add(
            M::POST,
            "/api/v1/actions/{id}/cancel",
            Operate,
            actions::cancel,
        )
        .add(
            M::POST,
            "/api/v1/actions/{id}/resume",
            Operate,
            actions::resume,
        )
        .add(
            M::GET,
            "/api/v1/actions/{id}/record.md",
            Read,
            record::markdown,
        )
        .add(
            M::GET,
            "/api/v1/actions/{id}/request.toml",
            Read,
            record::request_file,
        )
        .add(M::GET, "/api/v1/alerts", Read, alerts::board)
        .add(
            M::POST,
            "/api/v1/alerts/{id}/acknowledge",
            Operate,
            alerts::acknowledge,
        )
        .add(M::POST, "/api/v1/silences", Operate, alerts::silence)
        .add_any("/api/v1/{*rest}", Public, unknown_route)
}

/// The person calling; a machine client (no person) is told to sign in.
pub(crate) fn user_of(caller: &Caller) -> Result<&User, ApiError> {
    caller.user().ok_or_else(|| unauthorized("sign in first"))
}

/// A JSON body parsed into `T`; one that does not parse is refused with a 400 naming
/// what was `expected`.
pub(crate) fn body<T>(body: Result<Json<T>, JsonRejection>, expected: &str) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| bad_request(format!("expected {expected}: {}", e.body_text())))
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> ApiError {
    not_found(format!(
        "there is no API route at {}; the routes are listed in SPEC.md under \"HTTP API\"",
        uri.path()
    ))
}

/// A query string parsed into `T`; one that does not parse is refused with a 400 that says
/// what was wrong, in the API's own error shape.
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
