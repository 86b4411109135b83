//! The JSON API under `/api/v1`: everything a screen can do, by domain.

mod services;

use axum::Router;
use axum::extract::OriginalUri;
use axum::routing::get;

use crate::error::{ApiError, not_found};
use crate::http::ServerState;

pub fn router() -> Router<ServerState> {
    Router::new()
        .route("/services", get(services::list))
        .fallback(unknown_route)
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> ApiError {
    not_found(format!(
        "there is no API route at {}; the routes are listed in SPEC.md under \"HTTP API\"",
        uri.path()
    ))
}
