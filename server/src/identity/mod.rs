//! Identity at the HTTP edge: who is calling (a session cookie or a bearer token), whether
//! the route lets them in, and the CSRF checks on every browser write.
//!
//! Two middlewares run on every route: [`authenticate`] puts the [`Caller`] into the
//! request, and [`authorize`] holds it against the route's [`Access`] rule. A route
//! without a rule is refused, so a new route is closed until someone decides who may use it.

pub(crate) mod login;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, header};
use runboard_core::identity::{
    Access, Caller, Denied, OidcError, TokenError, constant_time_eq, is_api_token,
};
use runboard_model::{SignedIn, User};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;

use crate::error::{ApiError, forbidden, internal, unauthorized, unavailable};
use crate::http::{RouteRule, ServerState};

/// The session key of the signed-in user.
const SIGNED_IN: &str = "signed_in";
/// A session's last-seen time is written at most this often (or a quarter of the idle
/// timeout, if shorter), so an idle timeout costs one store write a minute per active
/// person rather than one per request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// The header a cookie-authenticated API write carries its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// What a session holds once someone has signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionUser {
    user: User,
    csrf_token: String,
    signed_in_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    /// Where the roles come from; a session from before this was kept is renewed at once.
    #[serde(default)]
    roles_from: RolesFrom,
}

/// Where a session's roles come from, and when they are next asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum RolesFrom {
    /// A demo user's: fixed.
    Demo,
    /// The provider's groups: asked again at `due_at` with the refresh token, if it gave
    /// one (kept server-side in the session, never sent to the browser).
    Provider {
        due_at: DateTime<Utc>,
        refresh_token: Option<String>,
    },
}

impl RolesFrom {
    /// Roles the provider gave just now: asked for again after `identity.roles_ttl`.
    pub(crate) fn provider(state: &ServerState, refresh_token: Option<String>) -> Self {
        Self::provider_after(state, state.app.config.identity.roles_ttl(), refresh_token)
    }

    fn provider_after(state: &ServerState, wait: Duration, refresh_token: Option<String>) -> Self {
        Self::Provider {
            due_at: state.app.clock.now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            refresh_token,
        }
    }
}

impl Default for RolesFrom {
    fn default() -> Self {
        Self::Provider {
            due_at: DateTime::<Utc>::MIN_UTC,
            refresh_token: None,
        }
    }
}

/// While the provider cannot be reached, a session's roles are asked for again this often,
/// and the person keeps the roles last seen: an outage of the provider during an incident
/// must not lock out the people handling it.
const ROLES_RETRY: Duration = Duration::from_secs(60);

/// Every route's access rule, by method and route pattern, and where writes may come from.
pub(crate) struct Gate {
    /// Keyed by method (`None`: any method) and route pattern.
    rules: HashMap<(Option<Method>, String), Access>,
    /// The configured public URL; without one, writes must come from the host they were sent to.
    public_url: Option<Url>,
}

impl Gate {
    pub(crate) fn new(rules: Vec<RouteRule>, public_url: Option<Url>) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|rule| ((rule.method, rule.path), rule.access))
                .collect(),
            public_url,
        }
    }

    fn rule(&self, method: &Method, path: &str) -> Option<Access> {
        let path = path.to_owned();
        self.rules
            .get(&(Some(method.clone()), path.clone()))
            .or_else(|| self.rules.get(&(None, path)))
            .copied()
    }
}

/// Finds out who is calling and puts the [`Caller`] into the request's extensions.
pub(crate) async fn authenticate(
    State(state): State<ServerState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    if state.app.identity.demo_users && !host_is_loopback(request.headers()) {
        // Demo users sign in with one click: a page that reaches this port under another
        // name (DNS rebinding) must not be able to use them.
        return forbidden(
            "this demo Runboard answers only at a loopback address; open it at http://127.0.0.1:<port>/",
        )
        .into_response();
    }
    let caller = match bearer_token(request.headers()) {
        Some(Ok(token)) => bearer_user(&state, token).await.map(Caller::Bearer),
        Some(Err(e)) => Err(e),
        None => session_caller(&state, &session).await,
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
        }
        // Public routes (probes, sign-in) still answer when the caller cannot be checked,
        // say while the store is down; the gate refuses every other route with this error.
        Err(e) => {
            request.extensions_mut().insert(Caller::Anonymous);
            request.extensions_mut().insert(Unauthenticated(e));
        }
    }
    next.run(request).await
}

/// Why the caller could not be found out: a refused token, or a store that did not answer.
#[derive(Clone)]
pub(crate) struct Unauthenticated(ApiError);

impl Unauthenticated {
    /// Whether the caller's credentials were turned away, as opposed to not being checked
    /// at all (the store or the provider did not answer).
    pub(crate) fn refused(&self) -> bool {
        self.0.status().is_client_error()
    }
}

/// Holds the caller against the route's rule, then checks that a browser write is not forged.
pub(crate) async fn authorize(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous);
    let access = match request.extensions().get::<MatchedPath>() {
        // No route matched: the fallback serves the site's static files and the not-found page.
        None => Access::Public,
        Some(path) => match gate.rule(request.method(), path.as_str()) {
            Some(access) => access,
            None => {
                tracing::error!(method = %request.method(), path = path.as_str(), "route without an access rule");
                return forbidden("this route has no access rule, so Runboard refuses it")
                    .into_response();
            }
        },
    };
    if access != Access::Public
        && let Some(Unauthenticated(error)) = request.extensions().get::<Unauthenticated>()
    {
        return error.clone().into_response();
    }
    if let Err(denied) = access.check(&caller) {
        return match denied {
            Denied::NotSignedIn if is_page(&request) => {
                let next = request.uri().path_and_query().map_or("/", |p| p.as_str());
                Redirect::to(&format!("/login?next={}", encode(next))).into_response()
            }
            Denied::NotSignedIn => unauthorized(
                "sign in first, or send a personal API token as `Authorization: Bearer rbt_…`",
            )
            .into_response(),
            refused @ (Denied::Lacks(_) | Denied::NeedsSession) => {
                forbidden(refused.to_string()).into_response()
            }
        };
    }
    if let Err(e) = check_csrf(&request, &caller, gate.public_url.as_ref()) {
        return e.into_response();
    }
    // What the route asked, for the handlers behind the gate (a write is counted by it).
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// A screen a person opens, as opposed to an API, server function, chart or sign-in route.
fn is_page(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == Method::GET
        && !["/api/", "/rpc/", "/charts/", "/auth/"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// Browser writes (anything but GET and HEAD without a bearer token) must come from
/// Runboard's own pages; cookie-authenticated API writes must also carry the CSRF token.
fn check_csrf(
    request: &Request,
    caller: &Caller,
    public_url: Option<&Url>,
) -> Result<(), ApiError> {
    if request.method().is_safe() || matches!(caller, Caller::Bearer(_)) {
        return Ok(());
    }
    same_origin(request.headers(), public_url)?;
    if let Caller::Session(signed_in) = caller
        && request.uri().path().starts_with("/api/")
    {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), signed_in.csrf_token.as_bytes())) {
            return Err(forbidden(format!(
                "a write with a session cookie must send the session's CSRF token in the {CSRF_HEADER} header; GET /api/v1/me gives it"
            )));
        }
    }
    Ok(())
}

fn same_origin(headers: &HeaderMap, public_url: Option<&Url>) -> Result<(), ApiError> {
    let expected = match public_url {
        Some(url) => url.origin().ascii_serialization(),
        None => format!(
            "http://{}",
            header_str(headers, header::HOST).unwrap_or_default()
        ),
    };
    match header_str(headers, header::ORIGIN) {
        Some(origin) if origin == expected => Ok(()),
        Some(origin) => Err(forbidden(format!(
            "refused a write sent from {origin}: Runboard takes writes only from its own pages at {expected}"
        ))),
        // Browsers send Origin with every write; Sec-Fetch-Site is the fallback some send instead.
        None if header_str(headers, "sec-fetch-site") == Some("same-origin") => Ok(()),
        None => Err(forbidden(
            "a write with a session cookie must come from Runboard's own pages (it had no Origin header); scripts should send a bearer token instead",
        )),
    }
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = header_str(headers, header::HOST) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Some` when the request carries an Authorization header: its bearer token, or why it is refused.
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    Some(token.ok_or_else(|| {
        unauthorized("the Authorization header must be `Bearer <token>`, with a personal API token or a provider access token")
    }))
}

async fn bearer_user(state: &ServerState, token: &str) -> Result<User, ApiError> {
    let app = &state.app;
    if is_api_token(token) {
        return app
            .store
            .authenticate_api_token(
                token,
                app.clock.now(),
                app.config.identity.token_roles_ttl(),
            )
            .await
            .map_err(|e| match e {
                TokenError::Store(e) => store_down(e),
                e @ TokenError::NoRoleLeft => forbidden(e.to_string()),
                refused => unauthorized(refused.to_string()),
            });
    }
    let provider = app.identity.oidc.as_ref().ok_or_else(|| {
        unauthorized("this is not a Runboard API token (they start with rbt_), and no identity provider is configured to check it")
    })?;
    let person = provider
        .verify_access_token(token)
        .await
        .map_err(|e| match e {
            OidcError::Unreachable { .. } => {
                unavailable("identity_provider_unreachable", e.to_string())
            }
            refused => unauthorized(refused.to_string()),
        })?;
    let user = saw(&state.app, person).await?;
    if user.roles.is_empty() {
        return Err(forbidden(format!(
            "{} holds none of the groups that give a Runboard role; ask for one of the groups in identity.roles",
            user.name
        )));
    }
    Ok(user)
}

/// The provider's person as a user with the roles their groups give now, noted as their
/// roles as last seen: their API tokens act with no more than these from now on.
pub(crate) async fn saw(
    app: &runboard_core::App,
    person: runboard_core::identity::ProviderUser,
) -> Result<User, ApiError> {
    let user = app.identity.user_of(person);
    app.store
        .saw_person(&user, app.clock.now())
        .await
        .map_err(store_down)?;
    Ok(user)
}

async fn session_caller(state: &ServerState, session: &Session) -> Result<Caller, ApiError> {
    let Some(mut stored) = session
        .get::<SessionUser>(SIGNED_IN)
        .await
        .map_err(store_down)?
    else {
        return Ok(Caller::Anonymous);
    };
    let now = state.app.clock.now();
    let limits = &state.app.config.identity.sessions;
    let elapsed = |since: DateTime<Utc>| (now - since).to_std().unwrap_or_default();
    if elapsed(stored.signed_in_at) > limits.absolute_timeout
        || elapsed(stored.last_seen_at) > limits.idle_timeout
    {
        session.flush().await.map_err(store_down)?;
        return Ok(Caller::Anonymous);
    }
    let mut changed = false;
    if let RolesFrom::Provider {
        due_at,
        refresh_token,
    } = &stored.roles_from
        && now >= *due_at
    {
        let Some(renewed) = renew_roles(state, &stored.user, refresh_token.as_deref()).await?
        else {
            session.flush().await.map_err(store_down)?;
            return Ok(Caller::Anonymous);
        };
        stored.roles_from = renewed.roles_from(state);
        if let Some(user) = renewed.user {
            stored.user = user;
        }
        changed = true;
    }
    if changed || elapsed(stored.last_seen_at) > TOUCH_EVERY.min(limits.idle_timeout / 4) {
        stored.last_seen_at = now;
        session
            .insert(SIGNED_IN, &stored)
            .await
            .map_err(store_down)?;
    }
    Ok(Caller::Session(SignedIn {
        user: stored.user,
        csrf_token: stored.csrf_token,
    }))
}

/// What asking the provider about a signed-in person gave.
struct Renewed {
    /// Their user with the roles their groups give now; `None` when the provider could not
    /// be reached and the roles last seen stay.
    user: Option<User>,
    refresh_token: Option<String>,
}

impl Renewed {
    fn roles_from(&self, state: &ServerState) -> RolesFrom {
        match self.user {
            Some(_) => RolesFrom::provider(state, self.refresh_token.clone()),
            None => RolesFrom::provider_after(state, ROLES_RETRY, self.refresh_token.clone()),
        }
    }
}

/// Asks the provider, with the session's refresh token, which groups the person holds now.
/// `None` ends the session: no refresh token to ask with, a provider that refused it, a
/// different person, or no role left.
async fn renew_roles(
    state: &ServerState,
    user: &User,
    refresh_token: Option<&str>,
) -> Result<Option<Renewed>, ApiError> {
    let (Some(provider), Some(refresh_token)) = (state.app.identity.oidc.as_ref(), refresh_token)
    else {
        tracing::info!(subject = %user.subject, "session ended: its roles are due and the provider gave no refresh token to renew them");
        return Ok(None);
    };
    let renewed = match provider.renew(&refresh_token.to_owned().into()).await {
        Ok(renewed) => renewed,
        Err(e @ OidcError::Unreachable { .. }) => {
            tracing::warn!(subject = %user.subject, error = %e, "roles not renewed: the provider cannot be reached; the roles last seen stay a while");
            return Ok(Some(Renewed {
                user: None,
                refresh_token: Some(refresh_token.to_owned()),
            }));
        }
        Err(e) => {
            tracing::info!(subject = %user.subject, error = %e, "session ended: the provider refused to renew it");
            return Ok(None);
        }
    };
    let refresh_token = renewed.refresh_token.map(|t| t.expose_secret().to_owned());
    let now_user = saw(&state.app, renewed.person).await?;
    if now_user.subject != user.subject || now_user.roles.is_empty() {
        tracing::info!(subject = %user.subject, "session ended: the provider no longer gives this person a role");
        return Ok(None);
    }
    if now_user.roles != user.roles {
        tracing::info!(subject = %user.subject, before = %user.roles_text(), now = %now_user.roles_text(), "roles renewed from the provider");
    }
    Ok(Some(Renewed {
        user: Some(now_user),
        refresh_token,
    }))
}

/// Starts a fresh session for `user`: a new session id (so one planted before sign-in is
/// worthless) and a new CSRF token.
/// The session is saved here rather than with the response, so that its new id can be
/// noted as this person's (an admin may end all of a person's sessions).
pub(crate) async fn sign_in(
    app: &runboard_core::App,
    session: &Session,
    user: User,
    roles_from: RolesFrom,
) -> Result<(), ApiError> {
    session.cycle_id().await.map_err(store_down)?;
    let now = app.clock.now();
    let stored = SessionUser {
        user,
        csrf_token: uuid::Uuid::new_v4().simple().to_string(),
        signed_in_at: now,
        last_seen_at: now,
        roles_from,
    };
    session
        .insert(SIGNED_IN, &stored)
        .await
        .map_err(store_down)?;
    session.save().await.map_err(store_down)?;
    let id = session
        .id()
        .ok_or_else(|| internal("signing in", "a saved session has no id"))?;
    app.store
        .record_session_owner(&id.to_string(), &stored.user, now)
        .await
        .map_err(store_down)
}

fn store_down(error: impl std::fmt::Display) -> ApiError {
    tracing::warn!(%error, "session store unavailable");
    unavailable(
        "store_unavailable",
        "Runboard's store is not answering, so sessions cannot be checked; try again shortly",
    )
}

/// Percent-encodes a value for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
