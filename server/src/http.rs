//! The route table and the middleware every request passes through.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRef;
use axum::handler::Handler;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, any, on};
use http::{HeaderName, HeaderValue, Method, Request, header};
use leptos::nonce::Nonce;
use leptos::prelude::{LeptosOptions, provide_context};
use leptos::server_fn::axum::server_fn_paths;
use leptos_axum::{
    AxumRouteListing, LeptosRoutes, file_and_error_handler_with_context, generate_route_list,
};
use runboard_app::{App as Screens, SITE_OUTPUT_NAME, server_fn_access, shell};
use runboard_core::App;
use runboard_core::identity::{Access, SessionStore};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::ResponseBodyTimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::client_address::{self, ClientAddress, TrustedProxies};
use crate::identity::{self, Gate, login};
use crate::limits::{self, Limits};
use crate::shared_pages::{self, SharedPages};
use crate::{api, charts, error, health};

/// The state behind every route.
#[derive(Clone)]
pub struct ServerState {
    /// Config and store, shared with the server functions through Leptos' context.
    pub app: Arc<App>,
    /// Where the built site lives and what its files are called, for SSR and static files.
    pub leptos: LeptosOptions,
    /// Screens rendered once for everyone holding the same roles.
    pub pages: Arc<SharedPages>,
    /// Set once shutdown began: `/readyz` answers 503 while the listener drains.
    pub draining: Arc<AtomicBool>,
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
            pages: Arc::new(SharedPages::new(&app.clock)),
            app: Arc::new(app),
            leptos,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One route and who may call it: the table the gate enforces and the authorization
/// test walks. `method` is `None` for a route that answers every method.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub method: Option<Method>,
    pub path: String,
    pub access: Access,
}

/// The router being built, and the rule of every route added to it: a route cannot be
/// added without saying who may call it.
pub(crate) struct RouteTable {
    router: Router<ServerState>,
    rules: Vec<RouteRule>,
    /// The API's routes with what they take and answer, for the OpenAPI document.
    docs: Vec<(RouteRule, api::Doc)>,
}

impl RouteTable {
    fn new() -> Self {
        Self {
            router: Router::new(),
            rules: Vec::new(),
            docs: Vec::new(),
        }
    }

    pub(crate) fn add<H, T>(
        mut self,
        method: Method,
        path: &str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, ServerState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.router = self.router.route(path, on(filter, handler));
        self.rules.push(RouteRule {
            method: Some(method),
            path: path.to_owned(),
            access,
        });
        self
    }

    /// Documents the route added last.
    pub(crate) fn doc(mut self, doc: api::Doc) -> Self {
        let rule = self.rules.last().expect("a route to document").clone();
        self.docs.push((rule, doc));
        self
    }

    pub(crate) fn add_any<H, T>(mut self, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, ServerState>,
        T: 'static,
    {
        self.router = self.router.route(path, any(handler));
        self.rules.push(RouteRule {
            method: None,
            path: path.to_owned(),
            access,
        });
        self
    }
}

/// Probes, sign-in, the JSON API and the charts; the screens and server functions come from
/// Leptos. `/metrics` too, unless it has a listener of its own (`http.metrics_listen`).
fn table(with_metrics: bool) -> RouteTable {
    use Access::{Public, Read};
    use Method as M;
    let mut table = RouteTable::new()
        .add(M::GET, "/healthz", Public, health::healthz)
        .add(M::GET, "/readyz", Public, health::readyz);
    if with_metrics {
        // Prometheus scrapes without signing in; the metrics hold counts, never entities.
        table = table.add(M::GET, "/metrics", Public, health::metrics);
    }
    let table = table
        .add(M::GET, "/login", Public, login::login_page)
        .add(M::GET, "/auth/login", Public, login::start_oidc)
        .add(M::GET, "/auth/callback", Public, login::finish_oidc)
        .add(M::POST, "/auth/demo", Public, login::demo_login)
        .add(M::POST, "/auth/logout", Public, login::logout)
        .add(M::GET, "/auth/cli", Public, login::command_line_sign_in)
        .add(
            M::GET,
            "/charts/services/{service}/batches/{batch}/progress.svg",
            Read,
            charts::batch_progress,
        )
        .add(
            M::GET,
            "/charts/services/{service}/trend.svg",
            Read,
            charts::service_trend,
        )
        .add(
            M::GET,
            "/charts/funds/{currency}/by-service.svg",
            Read,
            charts::funds_by_service,
        );
    api::routes(table)
}

/// The cookie a browser session travels in.
pub(crate) const SESSION_COOKIE: &str = "runboard_session";

/// The OpenAPI document of the API, made once from the route table.
pub(crate) fn api_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::LazyLock<utoipa::openapi::OpenApi> =
        std::sync::LazyLock::new(|| api::openapi::document(&table(true).docs));
    &DOCUMENT
}

/// The API reference screen's view of that document, made once as well.
fn api_reference() -> Arc<runboard_model::ApiReference> {
    static REFERENCE: std::sync::LazyLock<Arc<runboard_model::ApiReference>> =
        std::sync::LazyLock::new(|| Arc::new(api::openapi::reference_page(api_document())));
    REFERENCE.clone()
}

/// The screens' routes, generated once per process. Generating them renders the app with
/// resource loading suppressed for the whole process (leptos#4773): a page rendering
/// meanwhile, say while a second router is built in the same process as the tests do,
/// would wait forever for its data.
fn screen_routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::LazyLock<Vec<AxumRouteListing>> =
        std::sync::LazyLock::new(|| generate_route_list(Screens));
    ROUTES.clone()
}

/// Every route Runboard answers, with its access rule: the table's routes, each screen
/// (anyone signed in may look) and each server function (as the app's one table of who
/// may call each rules, which the function checks again itself).
pub fn routes() -> Vec<RouteRule> {
    let mut rules = table(true).rules;
    rules.extend(screen_routes().into_iter().map(|route| RouteRule {
        method: Some(Method::GET),
        path: route.path().to_owned(),
        access: Access::Read,
    }));
    rules.extend(server_fn_rules());
    rules
}

/// Each server function's access rule, as the app's table says.
fn server_fn_rules() -> impl Iterator<Item = RouteRule> {
    server_fn_paths().map(|(path, method)| RouteRule {
        method: Some(method),
        path: path.to_owned(),
        access: server_fn_access(path),
    })
}

/// Every route of Runboard: probes, sign-in, the JSON API, the screens and their server functions.
pub fn router(state: ServerState) -> Router {
    let app = state.app.clone();
    let reference = api_reference();
    let provide_app = move || {
        provide_context(app.clone());
        provide_context(reference.clone());
    };
    let leptos = state.leptos.clone();
    let config = &state.app.config;
    let http = &config.http;

    let gate = Arc::new(Gate::new(routes(), http.public_url.clone()));
    let limits = Arc::new(Limits::new(&config.limits, &state.app.clock));
    let sessions = SessionManagerLayer::new(SessionStore::new(&state.app.store))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.public_url().scheme() == "https")
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(config.identity.sessions.idle_timeout)
                .unwrap_or(time::Duration::HOUR),
        ));

    let https = config.public_url().scheme() == "https";
    let trusted_proxies = Arc::new(TrustedProxies::new(http));
    let middleware = ServiceBuilder::new()
        .layer(from_fn_with_state(https, security_headers))
        // Before the log line and the limits, which go by the client.
        .layer(from_fn_with_state(
            trusted_proxies,
            client_address::name_client,
        ))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let client = request
                        .extensions()
                        .get::<ClientAddress>()
                        .map(|client| client.0);
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                        client = client.map(tracing::field::display),
                    )
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CompressionLayer::new())
        // Ends at the response's head; a page streaming its body (SSR) that stops sending is
        // cut off by the body's timeout below, rather than hanging a browser or a script.
        // Outside the body's limit: a middleware function takes the request's body as is.
        .layer(from_fn_with_state(http.request_timeout, time_limit))
        .layer(RequestBodyLimitLayer::new(http.body_limit_bytes))
        .layer(ResponseBodyTimeoutLayer::new(http.request_timeout));

    // The screens and their server functions; the shared screens' pages are rendered once
    // for everyone holding the same roles.
    let screens = Router::new()
        .leptos_routes_with_context(&state, screen_routes(), provide_app.clone(), move || {
            shell(leptos.clone())
        })
        .layer(from_fn_with_state(state.clone(), shared_pages::share));

    table(http.metrics_listen.is_none())
        .router
        .merge(screens)
        .fallback(file_and_error_handler_with_context::<ServerState, _>(
            provide_app,
            shell,
        ))
        .layer(from_fn_with_state(state.clone(), shared_pages::note_writes))
        // Per route, so that the gate sees which route matched.
        .layer(from_fn_with_state(gate, identity::authorize))
        // Once the caller is known, before the gate: a refused token counts as one.
        .layer(from_fn_with_state(limits, limits::limit))
        .layer(from_fn_with_state(state.clone(), identity::authenticate))
        .layer(sessions)
        .layer(from_fn_with_state(state.clone(), health::measure_request))
        .layer(middleware)
        .with_state(state)
}

/// Ends a request that runs past `http.request_timeout` with an answer that says so: a
/// script then reads why, where tower-http's own timeout answered an empty 408 (a status that
/// also blames the client, and that some clients send again by themselves).
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: Request<Body>,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::unavailable(
            "request_timeout",
            format!(
                "Runboard stopped this request after http.request_timeout ({}); try again, ask for less at once, or have the timeout raised",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

/// Headers on every response that keep a page of Runboard from being turned against its
/// reader: scripts only from this site or carrying this response's nonce (the shell gives
/// it to the hydration scripts), no inline styles, plugins or `<base>`, never framed (so no
/// other site can dress up the Approve button), no MIME sniffing, no referrer beyond this
/// site, and HSTS when Runboard is served over https.
async fn security_headers(
    axum::extract::State(https): axum::extract::State<bool>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let nonce = Nonce::new();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    request.extensions_mut().insert(nonce);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// `/metrics` alone, for its own listener (`http.metrics_listen`): whoever reaches the
/// pages, say through an Ingress, does not reach the metrics.
pub(crate) fn metrics_router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(health::metrics))
        .with_state(state)
}

/// Serves until `shutdown` resolves; then drains: `/readyz` answers 503 at once, so that
/// load balancers stop sending, while requests are still served for `http.drain`; then
/// stops accepting and lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let drain = state.app.config.http.drain;
    let draining = state.draining.clone();
    let drained = async move {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
        tracing::info!(
            drain = %humantime::format_duration(drain),
            "draining: /readyz answers 503, requests are still served until the drain ends"
        );
        tokio::time::sleep(drain).await;
        tracing::info!("drained: no new connections; finishing the requests in flight");
    };
    // A page streams in several writes; without TCP_NODELAY each after the first waits for
    // the browser's delayed ACK, 40 ms a page.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
        }
    });
    // The peer's address, for the limits kept per client address.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(drained)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server function's access is written once, in the app: the gate rules on each as
    /// its row says, and no server function goes without a row (it would be for admins
    /// alone, gate and function both).
    #[test]
    fn the_gate_rules_on_each_server_function_as_the_app_does() {
        let ruled: Vec<&str> = runboard_app::ruled_server_fns().collect();
        let unruled: Vec<&str> = server_fn_paths()
            .map(|(path, _)| path)
            .filter(|path| !ruled.contains(path))
            .collect();
        assert!(
            unruled.is_empty(),
            "server functions without a row in the app's table of who may call them \
             (app/src/server_fns/mod.rs): {unruled:?}"
        );
        let rules: Vec<RouteRule> = server_fn_rules().collect();
        for path in ruled {
            let gate: Vec<Access> = rules
                .iter()
                .filter(|rule| rule.path == path)
                .map(|rule| rule.access)
                .collect();
            assert_eq!(gate, [server_fn_access(path)], "{path}");
        }
    }
}
