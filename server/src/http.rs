//! The route table and the middleware every request passes through.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{LeptosRoutes, file_and_error_handler_with_context, generate_route_list};
use runboard_app::{App as Screens, SITE_OUTPUT_NAME, shell};
use runboard_core::App;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::{api, charts, health};

/// The state behind every route.
#[derive(Clone)]
pub struct ServerState {
    /// Config and store, shared with the server functions through Leptos' context.
    pub app: Arc<App>,
    /// Where the built site lives and what its files are called, for SSR and static files.
    pub leptos: LeptosOptions,
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(state: &ServerState) -> Self {
        state.leptos.clone()
    }
}

impl ServerState {
    pub fn new(app: App) -> Self {
        let http = &app.config.http;
        let leptos = LeptosOptions::builder()
            .output_name(SITE_OUTPUT_NAME)
            .site_root(http.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(http.listen)
            .build();
        Self {
            app: Arc::new(app),
            leptos,
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of Runboard: probes, the JSON API, the screens and their server functions.
pub fn router(state: ServerState) -> Router {
    let app = state.app.clone();
    let provide_app = move || provide_context(app.clone());
    let leptos = state.leptos.clone();
    let http = &state.app.config.http;

    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/api/v1", api::router())
        .route(
            "/charts/services/{service}/batches/{batch}/progress.svg",
            get(charts::batch_progress),
        )
        .route(
            "/charts/services/{service}/trend.svg",
            get(charts::service_trend),
        )
        .route(
            "/charts/funds/{currency}/by-service.svg",
            get(charts::funds_by_service),
        )
        .leptos_routes_with_context(
            &state,
            generate_route_list(Screens),
            provide_app.clone(),
            move || shell(leptos.clone()),
        )
        .fallback(file_and_error_handler_with_context::<ServerState, _>(
            provide_app,
            shell,
        ))
        .layer(middleware)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
