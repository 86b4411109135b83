//! The authorization matrix: every route Runboard answers, taken from the router's own
//! list, called by each role and by no one. The expected rule of each route is written
//! here, apart from the server's table, so a new route fails this test until someone
//! decides who may call it.

use crate::support as common;

use common::{TestApp, spawn_app};
use futures_util::StreamExt;
use http::Method;
use runboard_model::Role;
use runboard_testkit::{Backend, test_on_both_stores};

/// Who may call a route, as this test expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Anyone,
    /// Anyone signed in, whatever their role.
    SignedIn,
    /// Anyone signed in with a browser session: a token may not mint tokens, so every
    /// caller here, who sends one, is refused.
    SignedInBrowser,
    Role(Role),
}

/// The expected rule of every route; `None` for a route nobody has ruled on yet.
fn expected(method: Option<&Method>, path: &str) -> Option<Expect> {
    use Expect::*;
    Some(match path {
        "/healthz" | "/readyz" | "/metrics" => Anyone,
        // What the API offers is no secret: client generators read it before any sign-in.
        "/api/v1/openapi.json" => Anyone,
        "/login" | "/auth/login" | "/auth/callback" | "/auth/demo" | "/auth/logout" => Anyone,
        // How `runboard login` signs in: the provider and its public client, no secret.
        "/auth/cli" => Anyone,
        // The API's answer for routes it does not have.
        "/api/v1/{*rest}" => Anyone,
        "/api/v1/tokens" if method == Some(&Method::POST) => SignedInBrowser,
        "/api/v1/actions" | "/api/v1/runbooks" if method == Some(&Method::POST) => {
            Role(runboard_model::Role::Operator)
        }
        "/api/v1/actions/{id}/submit"
        | "/api/v1/actions/{id}/cancel"
        | "/api/v1/actions/{id}/resume"
        | "/api/v1/actions/{id}/pace" => Role(runboard_model::Role::Operator),
        // On-call engineers take alerts and silence them; viewers only read them.
        "/api/v1/alerts/{id}/acknowledge"
        | "/api/v1/silences"
        | "/rpc/acknowledge_alert"
        | "/rpc/silence_alerts" => Role(runboard_model::Role::Operator),
        "/rpc/action_form"
        | "/rpc/ask_for_action"
        | "/rpc/start_runbook"
        | "/rpc/submit_action"
        | "/rpc/cancel_action"
        | "/rpc/resume_action"
        | "/rpc/set_action_pace" => Role(runboard_model::Role::Operator),
        "/rpc/approve_action" | "/rpc/reject_action" => Role(runboard_model::Role::Approver),
        "/api/v1/actions/{id}/approve" | "/api/v1/actions/{id}/reject" => {
            Role(runboard_model::Role::Approver)
        }
        "/rpc/create_api_token" => SignedInBrowser,
        "/api/v1/access" | "/api/v1/access/revoke" | "/api/v1/people" => {
            Role(runboard_model::Role::Admin)
        }
        // The admin's Access screen: its server functions ask for the role, and the page
        // answers with their status.
        "/access" | "/rpc/people_with_access" | "/rpc/person_access" | "/rpc/end_person_access" => {
            Role(runboard_model::Role::Admin)
        }
        "/api/v1/me"
        | "/api/v1/tokens"
        | "/api/v1/tokens/{id}"
        | "/api/v1/services"
        | "/api/v1/services/{service}/sagas"
        | "/api/v1/services/{service}/errors"
        | "/api/v1/services/{service}/batches"
        | "/api/v1/services/{service}/batches/{batch}"
        | "/api/v1/services/{service}/batches/{batch}/items"
        | "/api/v1/funds"
        | "/api/v1/services/{service}/funds"
        | "/api/v1/lookup"
        | "/api/v1/audit"
        | "/api/v1/audit/verify"
        | "/api/v1/services/{service}/actions"
        | "/api/v1/actions"
        | "/api/v1/actions/{id}"
        | "/api/v1/actions/{id}/entities"
        | "/api/v1/actions/{id}/record.md"
        | "/api/v1/actions/{id}/request.toml"
        | "/api/v1/services/{service}/runbooks"
        | "/api/v1/runbooks/{id}"
        | "/api/v1/runbooks/{id}/runbook.toml"
        | "/api/v1/alerts" => SignedIn,
        "/charts/services/{service}/batches/{batch}/progress.svg"
        | "/charts/services/{service}/trend.svg"
        | "/charts/funds/{currency}/by-service.svg" => SignedIn,
        // Screens.
        "/"
        | "/services/{service}"
        | "/services/{service}/sagas/{saga}"
        | "/batches"
        | "/lookup"
        | "/funds"
        | "/services/{service}/batches/{batch}"
        | "/account"
        | "/actions"
        | "/actions/{id}"
        | "/alerts"
        | "/api" => SignedIn,
        // Its server function asks for the operator role, and the page answers with its status.
        "/actions/new" => Role(runboard_model::Role::Operator),
        // Server functions.
        "/rpc/overview"
        | "/rpc/alerts"
        | "/rpc/alerts_on_page"
        | "/rpc/me"
        | "/rpc/my_roles"
        | "/rpc/service_errors"
        | "/rpc/service_sagas"
        | "/rpc/saga"
        | "/rpc/lookup"
        | "/rpc/all_batches"
        | "/rpc/batch"
        | "/rpc/funds"
        | "/rpc/my_api_tokens"
        | "/rpc/revoke_api_token"
        | "/rpc/actions"
        | "/rpc/action"
        | "/rpc/entity_actions"
        | "/rpc/api_reference" => SignedIn,
        _ => return None,
    })
}

/// A concrete URL path for a route pattern: an unknown service, so no read leaves the test.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{service}", "nonesuch")
        .replace("{batch}", "b-1")
        .replace("{saga}", "s-1")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{currency}", "EUR")
        .replace("{*rest}", "no/such/route")
}

test_on_both_stores!(every_route_answers_each_role_and_strangers_as_its_rule_says);

async fn every_route_answers_each_role_and_strangers_as_its_rule_says(backend: Backend) {
    let app = spawn_app(backend).await;
    let routes = runboard_server::routes();
    let unruled: Vec<String> = routes
        .iter()
        .filter(|r| expected(r.method.as_ref(), &r.path).is_none())
        .map(|r| format!("{:?} {}", r.method, r.path))
        .collect();
    assert!(
        unruled.is_empty(),
        "routes without an expected rule in this test (decide who may call them): {unruled:?}"
    );
    assert!(
        routes.len() > 30,
        "the router lists its routes: {}",
        routes.len()
    );

    let mut callers: Vec<(Option<Role>, reqwest::Client)> = vec![(None, no_redirects(None))];
    for role in Role::ALL {
        let token = app.token_for(role.as_str(), &[role]).await;
        callers.push((Some(role), no_redirects(Some(&token))));
    }
    let mut checks = Vec::new();
    for route in &routes {
        let methods = match &route.method {
            Some(method) => vec![method.clone()],
            None => vec![Method::GET, Method::POST],
        };
        for method in methods {
            for (role, client) in &callers {
                checks.push(check(&app, client, *role, method.clone(), &route.path));
            }
        }
    }
    let failures: Vec<String> = futures_util::stream::iter(checks)
        .buffer_unordered(16)
        .filter_map(|outcome| async move { outcome.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} wrong answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn no_redirects(token: Option<&str>) -> reqwest::Client {
    match token {
        Some(token) => {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            reqwest::Client::builder()
                .default_headers(headers)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        }
        None => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

async fn check(
    app: &TestApp,
    client: &reqwest::Client,
    role: Option<Role>,
    method: Method,
    pattern: &str,
) -> Result<(), String> {
    let rule = expected(Some(&method), pattern).expect("checked above");
    let path = concrete(pattern);
    // Writes come from Runboard's own origin: this test is about roles, not CSRF.
    let response = client
        .request(method.clone(), app.url(&path))
        .header("origin", &app.address)
        .header("content-type", "application/json")
        .body(if method == Method::GET { "" } else { "{}" })
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status().as_u16();
    let allowed = match (rule, role) {
        (Expect::Anyone, _) => true,
        (_, None) => false,
        (Expect::SignedIn, Some(_)) => true,
        (Expect::SignedInBrowser, Some(_)) => false,
        (Expect::Role(needed), Some(held)) => needed == held,
    };
    let is_screen = method == Method::GET
        && !["/api/", "/rpc/", "/charts/", "/auth/"]
            .iter()
            .any(|p| pattern.starts_with(p));
    let ok = match (allowed, role) {
        (true, _) => status != 401 && status != 403,
        // A stranger opening a screen is sent to sign in; anywhere else they get 401.
        (false, None) if is_screen => {
            status == 303
                && response
                    .headers()
                    .get("location")
                    .is_some_and(|l| l.to_str().unwrap().starts_with("/login?next="))
        }
        (false, None) => status == 401,
        (false, Some(_)) => status == 403,
    };
    let who = role.map_or("no one".to_owned(), |r| r.to_string());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{method} {path} as {who}: {status} (rule {rule:?})"
        ))
    }
}
