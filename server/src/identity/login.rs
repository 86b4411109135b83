//! Signing in and out: the sign-in page, the OpenID provider's round trip, the demo
//! users' one-click sign-in, and sign-out.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use http::{StatusCode, header};
use runboard_core::identity::{Caller, OidcError, PendingLogin, ProviderSignIn, demo};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::{RolesFrom, constant_time_eq, encode, sign_in};
use crate::error::{ApiError, internal, not_found};
use crate::http::ServerState;

/// The cookie that holds a sign-in under way at the provider, in the browser that started
/// it: no session row is written for anyone who merely opens `/auth/login`.
const PENDING_COOKIE: &str = "runboard_sign_in";
/// How long a sign-in at the provider may take.
const PENDING_FOR: time::Duration = time::Duration::minutes(10);

/// The `Set-Cookie` of a sign-in under way (or, with `None`, of one finished).
fn pending_cookie(state: &ServerState, pending: Option<&PendingLogin>) -> String {
    let value = pending.map_or_else(String::new, |pending| {
        let json = serde_json::to_vec(pending).expect("a pending sign-in serializes");
        URL_SAFE_NO_PAD.encode(json)
    });
    let public_url = state.app.config.public_url();
    // Sent only back to the callback, at the path the browser sees (a proxy may add a prefix).
    let callback = public_url
        .join("auth/callback")
        .map_or_else(|_| "/auth/callback".to_owned(), |url| url.path().to_owned());
    Cookie::build((PENDING_COOKIE, value))
        .path(callback)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(public_url.scheme() == "https")
        .max_age(if pending.is_some() {
            PENDING_FOR
        } else {
            time::Duration::ZERO
        })
        .build()
        .to_string()
}

/// The sign-in this browser started, from its cookie.
fn pending_login(headers: &http::HeaderMap) -> Option<PendingLogin> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == PENDING_COOKIE)
        .and_then(|cookie| URL_SAFE_NO_PAD.decode(cookie.value()).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
}

struct DemoUserView {
    login: String,
    name: String,
    roles: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    provider: Option<String>,
    demo_users: Vec<DemoUserView>,
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// Where to go after signing in: a path on this site, never another site.
/// `next` is resolved as a browser resolves a `Location` (dropping tabs and newlines,
/// reading `\` as `/`), and what is sent on is that resolved path, so the check and the
/// redirect cannot read the same text two ways. The resolved path is itself resolved once
/// more: a normalised path may begin with `//` (`/.//host`, `/x/..//host`), which a
/// browser reads as another host, and is then refused.
fn local_path(next: Option<&str>) -> String {
    let site = url::Url::parse("http://runboard.invalid/").expect("a valid URL");
    let on_site = |path: &str| {
        site.join(path)
            .ok()
            .filter(|url| url.origin() == site.origin())
    };
    next.filter(|path| path.starts_with('/'))
        .and_then(on_site)
        .map(|url| url[url::Position::BeforePath..].to_owned())
        .filter(|path| {
            on_site(path).is_some_and(|again| again[url::Position::BeforePath..] == **path)
        })
        .unwrap_or_else(|| "/".to_owned())
}

fn page(
    state: &ServerState,
    next: String,
    error: Option<String>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let identity = &state.app.identity;
    let demo_users = if identity.demo_users {
        demo::users()
            .into_iter()
            .map(|u| DemoUserView {
                login: demo::login(&u).to_owned(),
                roles: u.roles_text(),
                name: u.name,
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = LoginPage {
        provider: identity.oidc.as_ref().map(|p| p.display_name().to_owned()),
        demo_users,
        next,
        error,
        notice,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => internal("rendering the sign-in page", e).into_response(),
    }
}

/// `GET /login`: the ways in; someone already signed in goes straight on.
pub(crate) async fn login_page(
    State(state): State<ServerState>,
    caller: axum::Extension<Caller>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = local_path(query.next.as_deref());
    if caller.user().is_some() {
        return Redirect::to(&next).into_response();
    }
    let notice = query.signed_out.map(|_| "You are signed out.");
    page(&state, next, None, notice, StatusCode::OK)
}

/// `GET /auth/login`: off to the provider, with PKCE, state and nonce kept in a cookie of
/// this browser's.
pub(crate) async fn start_oidc(
    State(state): State<ServerState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = local_path(query.next.as_deref());
    let Some(provider) = state.app.identity.oidc.as_ref() else {
        return page(
            &state,
            next,
            Some("no identity provider is configured".into()),
            None,
            StatusCode::NOT_FOUND,
        );
    };
    match provider.start_login(next.clone()).await {
        Ok((url, pending)) => (
            [(header::SET_COOKIE, pending_cookie(&state, Some(&pending)))],
            Redirect::to(url.as_str()),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "sign-in could not start");
            page(
                &state,
                next,
                Some(e.to_string()),
                None,
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: the provider sends the person back with a code; each sign-in
/// started here is finished at most once (its cookie goes with every answer, and the
/// provider takes each code once).
pub(crate) async fn finish_oidc(
    State(state): State<ServerState>,
    session: Session,
    headers: http::HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let finished = [(header::SET_COOKIE, pending_cookie(&state, None))];
    (
        finished,
        finish_pending(&state, &session, &headers, callback).await,
    )
        .into_response()
}

async fn finish_pending(
    state: &ServerState,
    session: &Session,
    headers: &http::HeaderMap,
    callback: Callback,
) -> Response {
    let refuse = |status, message: String| {
        tracing::warn!(%message, "sign-in refused");
        page(state, "/".into(), Some(message), None, status)
    };
    let pending = pending_login(headers);
    if let Some(error) = callback.error {
        let detail = callback.error_description.unwrap_or_default();
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("the identity provider said {error}: {detail}"),
        );
    }
    let Some(pending) = pending else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "this sign-in link was already used, or it was not started in this browser; start again from the sign-in page".into(),
        );
    };
    let (Some(code), Some(returned_state)) = (callback.code, callback.state) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the provider's answer lacks its code or state; start again".into(),
        );
    };
    let Some(provider) = state.app.identity.oidc.as_ref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no identity provider is configured".into(),
        );
    };
    // Checked again: the cookie came back from the browser.
    let return_to = local_path(Some(&pending.return_to));
    let ProviderSignIn {
        person,
        refresh_token,
    } = match provider.finish_login(pending, &returned_state, code).await {
        Ok(signed_in) => signed_in,
        Err(e @ OidcError::Unreachable { .. }) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e @ OidcError::StateMismatch) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let name = person.name.clone();
    let groups = person.groups.join(", ");
    let user = match super::saw(&state.app, person).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    if user.roles.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "you signed in as {name}, but none of your groups ({}) gives a Runboard role; ask for one of the groups listed under identity.roles in Runboard's config",
                if groups.is_empty() {
                    "none sent".to_owned()
                } else {
                    groups
                }
            ),
        );
    }
    tracing::info!(subject = %user.subject, roles = %user.roles_text(), "signed in");
    let roles_from =
        RolesFrom::provider(state, refresh_token.map(|t| t.expose_secret().to_owned()));
    match sign_in(&state.app, session, user, roles_from).await {
        Ok(()) => Redirect::to(&return_to).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct DemoLogin {
    login: String,
    next: Option<String>,
}

/// `POST /auth/demo`: one-click sign-in as a demo user, where demo users are on.
pub(crate) async fn demo_login(
    State(state): State<ServerState>,
    session: Session,
    Form(form): Form<DemoLogin>,
) -> Response {
    let next = local_path(form.next.as_deref());
    if !state.app.identity.demo_users {
        return page(
            &state,
            next,
            Some("demo users are off on this Runboard".into()),
            None,
            StatusCode::NOT_FOUND,
        );
    }
    let Some(user) = demo::user(&form.login) else {
        return page(
            &state,
            next,
            Some(format!(
                "there is no demo user {:?}; pick one below",
                form.login
            )),
            None,
            StatusCode::BAD_REQUEST,
        );
    };
    tracing::info!(subject = %user.subject, "demo user signed in");
    match sign_in(&state.app, &session, user, RolesFrom::Demo).await {
        Ok(()) => Redirect::to(&next).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct SignOut {
    csrf_token: String,
}

/// `POST /auth/logout`: ends the session, in the store and in the browser.
pub(crate) async fn logout(
    session: Session,
    caller: axum::Extension<Caller>,
    Form(form): Form<SignOut>,
) -> Result<Redirect, ApiError> {
    if let Caller::Session(signed_in) = &*caller
        && !constant_time_eq(form.csrf_token.as_bytes(), signed_in.csrf_token.as_bytes())
    {
        return Err(crate::error::forbidden(
            "this sign-out form is stale (its CSRF token does not match your session); reload the page and sign out again",
        ));
    }
    session.flush().await.map_err(super::store_down)?;
    Ok(Redirect::to(&format!(
        "/login?signed_out=1&next={}",
        encode("/")
    )))
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn a_next_that_normalises_to_another_host_goes_home() {
        for next in [
            "/.//example.com",
            "/x/..//example.com",
            "/%2e//example.com",
            "/./\\/example.com",
            "//example.com",
            "/\\example.com",
            "/\t/example.com",
            "https://example.com/",
        ] {
            assert_eq!(local_path(Some(next)), "/", "{next:?}");
        }
        assert_eq!(
            local_path(Some("/funds?currency=EUR")),
            "/funds?currency=EUR"
        );
        assert_eq!(local_path(Some("/x/../funds")), "/funds");
    }
}

/// What `runboard login` needs to sign someone in with the device authorization grant:
/// the provider (its endpoints come from its discovery document) and the public client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CommandLineSignIn {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Asked for as the token's `resource` (RFC 8707): the audience Runboard accepts.
    pub audience: String,
}

/// `GET /auth/cli`: how the command line signs in here, for anyone (it holds no secret).
pub(crate) async fn command_line_sign_in(
    State(state): State<ServerState>,
) -> Result<axum::Json<CommandLineSignIn>, ApiError> {
    let oidc = state.app.config.identity.oidc.as_ref();
    let (Some(oidc), Some(client_id), Some(audience)) = (
        oidc,
        oidc.and_then(|o| o.cli_client_id.clone()),
        oidc.and_then(|o| o.api_audience.clone()),
    ) else {
        return Err(not_found(
            "this Runboard has no sign-in for the command line (identity.oidc.cli_client_id is not set); set RUNBOARD_TOKEN to a personal API token from the Account page instead",
        ));
    };
    Ok(axum::Json(CommandLineSignIn {
        issuer: oidc.issuer.clone(),
        client_id,
        scopes: oidc.scopes.clone(),
        audience,
    }))
}
