//! The JSON API under `/api/v1`: everything a screen can do, by domain.

mod lookup;
pub(crate) mod services;

use axum::Router;
use axum::extract::OriginalUri;
use axum::routing::{get, post};

use crate::error::{ApiError, not_found};
use crate::http::ServerState;

pub fn router() -> Router<ServerState> {
    Router::new()
        .route("/services", get(services::list))
        .route("/services/{service}/sagas", get(services::sagas))
        .route("/services/{service}/errors", get(services::errors))
        .route("/services/{service}/batches", get(services::batches))
        .route("/services/{service}/batches/{batch}", get(services::batch))
        .route(
            "/services/{service}/batches/{batch}/items",
            get(services::batch_items),
        )
        .route("/funds", get(services::funds))
        .route("/lookup", post(lookup::lookup))
        .fallback(unknown_route)
}

async fn unknown_route(OriginalUri(uri): OriginalUri) -> ApiError {
    not_found(format!(
        "there is no API route at {}; the routes are listed in SPEC.md under \"HTTP API\"",
        uri.path()
    ))
}
