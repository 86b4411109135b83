//! Identity against a real OpenID provider (`oidc-provider` on loopback, see testkit):
//! sign-in with PKCE, state and nonce; forged and stale tokens; sessions, CSRF and
//! personal API tokens; and two people's requests interleaved.

use crate::support as common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use common::{TestApp, bearer_client, spawn_app_configured};
use futures_util::StreamExt;
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserUsername, IdToken, IdTokenClaims, IssuerUrl, JsonWebKeyId,
    Nonce, StandardClaims, SubjectIdentifier,
};
use runboard_core::config::{OidcConfig, RoleGroups};
use runboard_model::Role;
use runboard_testkit::{
    Backend, OidcProvider, ProviderPerson, TestStore, sql_strings, test_on_both_stores,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CLIENT_ID: &str = "runboard";
const CLIENT_SECRET: &str = "a-test-client-secret";
const API_AUDIENCE: &str = "urn:runboard:api";

const PEOPLE: &[ProviderPerson<'static>] = &[
    ProviderPerson {
        login: "alice",
        name: "Alice Ops",
        groups: &["sre"],
    },
    ProviderPerson {
        login: "carol",
        name: "Carol Business",
        groups: &["business"],
    },
    ProviderPerson {
        login: "mallory",
        name: "Mallory Marketing",
        groups: &["marketing"],
    },
];

struct Setup {
    app: TestApp,
    provider: OidcProvider,
}

async fn spawn_with_provider(backend: Backend) -> Setup {
    spawn_with_provider_and(backend, |_| ()).await
}

async fn spawn_with_provider_and(
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    let (app, provider) = spawn_app_configured(TestStore::new(backend).await, |config, address| {
        let provider = OidcProvider::start(
            0,
            CLIENT_ID,
            CLIENT_SECRET,
            &format!("{address}/auth/callback"),
            PEOPLE,
            None,
        );
        config.identity.oidc = Some(OidcConfig {
            issuer: provider.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            scopes: vec!["openid".into(), "profile".into(), "groups".into()],
            groups_claim: "groups".into(),
            person_claim: "sub".into(),
            api_audience: Some(API_AUDIENCE.into()),
            cli_client_id: None,
            display_name: "Test IdP".into(),
        });
        config.identity.roles = RoleGroups {
            viewer: vec!["business".into()],
            operator: vec!["sre".into()],
            approver: vec!["sre".into()],
            admin: vec!["platform".into()],
        };
        configure(config);
        provider
    })
    .await;
    Setup { app, provider }
}

/// A browser: keeps cookies, follows no redirects (the test follows them, to see each).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // A request that hangs fails its test instead of holding up the whole run (Runboard
        // cuts its own at `http.request_timeout`; the provider has no such limit).
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("a redirect, got {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Starts a sign-in at Runboard, signs in at the provider's own form as `login`, and
/// returns the callback URL the provider sends the browser back to (not yet visited).
async fn sign_in_at_provider(app: &TestApp, browser: &reqwest::Client, login: &str) -> String {
    let start = browser
        .get(app.url("/auth/login?next=/funds"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303, "{}", start.text().await.unwrap());
    let mut url = reqwest::Url::parse(&location(&start)).unwrap();
    let form_action = regex::Regex::new(r#"action="([^"]+)""#).unwrap();
    for _ in 0..10 {
        if url.as_str().starts_with(&app.address) {
            return url.to_string();
        }
        let response = browser.get(url.clone()).send().await.unwrap();
        let next = if response.status().is_redirection() {
            location(&response)
        } else {
            // The provider's sign-in form: any password for a login it knows.
            let html = response.text().await.unwrap();
            let action = form_action.captures(&html).expect("a sign-in form")[1].to_owned();
            let submitted = browser
                .post(url.join(&action).unwrap())
                .form(&[("prompt", "login"), ("login", login), ("password", "any")])
                .send()
                .await
                .unwrap();
            location(&submitted)
        };
        url = url.join(&next).unwrap();
    }
    panic!("the provider never sent the browser back to Runboard");
}

/// Signs `login` in through the provider; returns the signed-in browser.
async fn signed_in_browser(app: &TestApp, login: &str) -> reqwest::Client {
    let browser = browser();
    let callback = sign_in_at_provider(app, &browser, login).await;
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    browser
}

async fn me(app: &TestApp, client: &reqwest::Client) -> (u16, Value) {
    let response = client.get(app.url("/api/v1/me")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

test_on_both_stores!(
    signing_in_through_the_provider_gives_the_roles_of_ones_groups_and_sign_out_ends_it,
    a_callback_with_a_wrong_state_or_a_replayed_code_is_refused,
    personal_api_tokens_are_shown_once_kept_hashed_and_revocable,
    two_people_interleaved_never_get_each_others_identity,
);

async fn signing_in_through_the_provider_gives_the_roles_of_ones_groups_and_sign_out_ends_it(
    backend: Backend,
) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let browser = browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    assert!(
        callback.contains("code=") && callback.contains("state="),
        "{callback}"
    );
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    assert_eq!(location(&done), "/funds", "lands where the sign-in started");
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("runboard_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "served over http here: {cookie}"
    );

    let (status, body) = me(&app, &browser).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Alice Ops");
    assert_eq!(body["roles"], serde_json::json!(["operator", "approver"]));
    assert_eq!(body["signed_in_with"], "session");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    // Her account page names her (the shared screens name nobody: the top bar asks in the
    // browser); a stranger is sent to sign in.
    let page = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Alice Ops"));
    let stranger = browser_get_status(&app, "/").await;
    assert_eq!(stranger, 303);

    // Someone whose groups give no role is turned away, and told why.
    let mallory = browser_for_refused(&app, "mallory").await;
    assert!(mallory.contains("none of your groups"), "{mallory}");

    // Signing out needs the session's CSRF token and ends the session in the store.
    let forged = browser
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .form(&[("csrf_token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let out = browser
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(me(&app, &browser).await.0, 401);
    // The old cookie, sent again by hand, no longer works either.
    let session_id = cookie.split(';').next().unwrap().to_owned();
    let replayed = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header("cookie", session_id)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
}

async fn browser_get_status(app: &TestApp, path: &str) -> u16 {
    browser()
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs in someone the provider knows but Runboard gives no role; returns the page shown.
async fn browser_for_refused(app: &TestApp, login: &str) -> String {
    let browser = browser();
    let callback = sign_in_at_provider(app, &browser, login).await;
    let refused = browser.get(callback).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.unwrap();
    assert_eq!(me(app, &browser).await.0, 401);
    page
}

async fn a_callback_with_a_wrong_state_or_a_replayed_code_is_refused(backend: Backend) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;

    // A state that is not the one this browser's sign-in started with.
    let browser = browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let wrong_state = browser.get(url).send().await.unwrap();
    assert_eq!(wrong_state.status(), 400);
    assert!(wrong_state.text().await.unwrap().contains("state differs"));
    assert_eq!(me(&app, &browser).await.0, 401);
    // That sign-in is spent: its real callback no longer works either.
    let spent = browser.get(&callback).send().await.unwrap();
    assert_eq!(spent.status(), 400);

    // A code that worked once, replayed by the same browser and by another one.
    let browser = self::browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 303);
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used"));

    let thief = self::browser();
    let started = thief.get(app.url("/auth/login")).send().await.unwrap();
    let thief_state = reqwest::Url::parse(&location(&started))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let stolen = thief
        .get(app.url("/auth/callback"))
        .query(&[("code", code.as_str()), ("state", thief_state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen.status(),
        401,
        "the provider refuses a code used before"
    );
    assert!(stolen.text().await.unwrap().contains("would not exchange"));
    assert_eq!(me(&app, &thief).await.0, 401);
}

async fn personal_api_tokens_are_shown_once_kept_hashed_and_revocable(backend: Backend) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let browser = signed_in_browser(&app, "alice").await;
    let csrf = me(&app, &browser).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let create = |csrf: Option<&str>, origin: &str| {
        let mut request = browser
            .post(app.url("/api/v1/tokens"))
            .header("origin", origin)
            .json(&serde_json::json!({ "label": "nightly report", "expires_in": "7d" }));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    // Cookie-authenticated writes need the CSRF token and Runboard's own origin.
    assert_eq!(create(None, &app.address).await.unwrap().status(), 403);
    assert_eq!(
        create(Some(&csrf), "http://evil.example")
            .await
            .unwrap()
            .status(),
        403
    );
    let created = create(Some(&csrf), &app.address).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rbt_") && secret.len() > 40, "{secret}");

    // Only a hash is stored, and the list never shows the secret again.
    let listed = text_at(&browser, app.url("/api/v1/tokens")).await;
    assert!(listed.contains("nightly report") && !listed.contains(&secret));
    let stored = stored_token_columns(&app).await;
    assert!(
        !stored.contains(&secret[4..]),
        "the secret is not in the store"
    );

    let script = bearer_client(&secret);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Alice Ops");
    assert_eq!(body["signed_in_with"], "bearer");
    assert!(body.get("csrf_token").is_none());
    // A token cannot mint more tokens.
    let minted = script
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({ "label": "more" }))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 403);

    let revoked = browser
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .header("origin", &app.address)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    // An expired token says so.
    let user = runboard_model::User {
        subject: "test:old".into(),
        name: "Old Script".into(),
        roles: [Role::Viewer].into(),
    };
    let old = app
        .app
        .store
        .issue_api_token(
            &user,
            "old",
            Duration::from_secs(60),
            Utc::now() - chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let (status, body) = me(&app, &bearer_client(&old.secret)).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

/// Every stored column of every API token, as text, to look for a secret in.
async fn stored_token_columns(app: &TestApp) -> String {
    let rows = sql_strings(
        &app.app.config.store.effective_url(),
        "SELECT id || secret_sha256 || subject || name || roles || label FROM api_token",
    )
    .await;
    assert!(!rows.is_empty());
    rows.join("\n")
}

async fn two_people_interleaved_never_get_each_others_identity(backend: Backend) {
    let _alone = NOT_BESIDE_A_FLEET.lock().await;
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let alice = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let alice_csrf = me(&app, &alice).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol_csrf = me(&app, &carol).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(alice_csrf, carol_csrf);
    let people = [
        (
            &alice,
            "Alice Ops",
            alice_csrf.as_str(),
            "Carol Business",
            carol_csrf.as_str(),
        ),
        (
            &carol,
            "Carol Business",
            carol_csrf.as_str(),
            "Alice Ops",
            alice_csrf.as_str(),
        ),
    ];
    // 190 each: within the per-person burst (200, a few spent signing in), so however fast
    // the machine, no answer is a 429 from the rate limit, which is not what is tested here.
    let requests = (0..380).map(|i| {
        let (client, name, csrf, other, other_csrf) = people[i % 2];
        let app = &app;
        async move {
            match i % 5 {
                // The JSON API, the server function the screens use, a shared screen and the
                // personal account page.
                0 | 1 => {
                    let (status, body) = me(app, client).await;
                    assert_eq!(status, 200);
                    assert_eq!(body["name"], name, "request {i}");
                    assert_eq!(body["csrf_token"], csrf, "request {i}");
                }
                2 => {
                    let body: Value = client
                        .post(app.url("/rpc/me"))
                        .header("origin", &app.address)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(body["user"]["name"], name, "request {i}");
                    assert_eq!(body["csrf_token"], csrf, "request {i}");
                }
                3 => {
                    let html = text_at(client, app.url("/")).await;
                    assert!(html.contains("Services"), "request {i}");
                    assert!(
                        !html.contains(other) && !html.contains(other_csrf),
                        "request {i}"
                    );
                }
                _ => {
                    let html = text_at(client, app.url("/account")).await;
                    assert!(html.contains(name) && !html.contains(other), "request {i}");
                    assert!(
                        html.contains(csrf) && !html.contains(other_csrf),
                        "request {i}"
                    );
                }
            }
        }
    });
    futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}

// --- Tokens forged by the test with the provider's own key, differing in one claim ---

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Groups {
    groups: Vec<String>,
}

impl AdditionalClaims for Groups {}

struct Forge<'a> {
    issuer: &'a str,
    subject: &'a str,
    username: &'a str,
    audience: &'a str,
    /// Seconds until it expires; negative for a token that already has.
    expires_in: i64,
    kid: &'a str,
    key_pem: &'a str,
    nonce: Option<&'a str>,
    /// The provider groups it names.
    groups: &'a [&'a str],
}

fn forge(token: Forge<'_>) -> String {
    let now = Utc::now();
    let claims = IdTokenClaims::new(
        IssuerUrl::new(token.issuer.into()).unwrap(),
        vec![Audience::new(token.audience.into())],
        now + chrono::Duration::seconds(token.expires_in),
        now - chrono::Duration::seconds(600),
        StandardClaims::new(SubjectIdentifier::new(token.subject.into()))
            .set_preferred_username(Some(EndUserUsername::new(token.username.into()))),
        Groups {
            groups: token.groups.iter().map(|g| (*g).to_owned()).collect(),
        },
    )
    .set_nonce(token.nonce.map(|n| Nonce::new(n.into())));
    let key = CoreRsaPrivateSigningKey::from_pem(
        token.key_pem,
        Some(JsonWebKeyId::new(token.kid.into())),
    )
    .unwrap();
    IdToken::<Groups, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>::new(
        claims,
        &key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap()
    .to_string()
}

/// The same token with one claim changed and the signature kept.
fn altered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let changed = payload.replace("\"sre\"", "\"platform\"");
    assert_ne!(payload, changed);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(changed),
        parts[2]
    )
}

/// The valid token and each of its forgeries, by what was wrong with it.
fn forgeries(
    provider: &OidcProvider,
    audience: &str,
    nonce: Option<&str>,
) -> (String, Vec<(&'static str, String)>) {
    let base = Forge {
        issuer: &provider.issuer,
        subject: "alice",
        username: "alice",
        audience,
        expires_in: 300,
        kid: &provider.kid,
        key_pem: &provider.key_pem,
        nonce,
        groups: &["sre"],
    };
    let valid = forge(Forge { ..base });
    let bad = vec![
        (
            "expired",
            forge(Forge {
                expires_in: -120,
                ..base
            }),
        ),
        (
            "for another audience",
            forge(Forge {
                audience: "someone-else",
                ..base
            }),
        ),
        (
            "from another issuer",
            forge(Forge {
                issuer: "http://127.0.0.1:1/other",
                ..base
            }),
        ),
        (
            "signed with an unknown key",
            forge(Forge {
                kid: &provider.stranger_kid,
                key_pem: &provider.stranger_pem,
                ..base
            }),
        ),
        (
            "signed with an unknown key under a known key id",
            forge(Forge {
                key_pem: &provider.stranger_pem,
                ..base
            }),
        ),
        ("altered after signing", altered(&valid)),
    ];
    (valid, bad)
}

#[tokio::test]
async fn a_session_ends_when_idle_and_when_too_old_however_busy() {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.sessions.idle_timeout = Duration::from_millis(1500);
        config.identity.sessions.absolute_timeout = Duration::from_secs(4);
    })
    .await;
    // Busy: a request every 0.5 s keeps it alive past the idle timeout, not past the absolute one.
    let busy = signed_in_browser(&app, "alice").await;
    let signed_in_at = std::time::Instant::now();
    while signed_in_at.elapsed() < Duration::from_millis(3500) {
        assert_eq!(
            me(&app, &busy).await.0,
            200,
            "after {:?}",
            signed_in_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(me(&app, &busy).await.0, 401, "ended 4 s after sign-in");

    // Idle: nothing for longer than the idle timeout.
    let idle = signed_in_browser(&app, "alice").await;
    assert_eq!(me(&app, &idle).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(me(&app, &idle).await.0, 401, "ended after 1.5 s unused");
}

#[tokio::test]
async fn forged_or_stale_id_tokens_are_refused() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let oidc = app.app.identity.oidc.as_ref().unwrap();
    let nonce = Nonce::new("the-nonce-of-this-sign-in".into());
    let (valid, bad) = forgeries(&provider, CLIENT_ID, Some(nonce.secret()));
    let person = oidc
        .verify_id_token(&valid, &nonce)
        .await
        .expect("the genuine token passes");
    assert_eq!(
        person.subject,
        format!("{}#alice", provider.issuer),
        "the person's key: issuer and sub"
    );
    assert_eq!(person.groups, ["sre"]);
    for (what, token) in bad {
        let refused = oidc.verify_id_token(&token, &nonce).await;
        assert!(refused.is_err(), "an ID token {what} was accepted");
    }
    let other_nonce = Nonce::new("another-sign-in".into());
    assert!(
        oidc.verify_id_token(&valid, &other_nonce).await.is_err(),
        "an ID token for another sign-in (nonce) was accepted"
    );
}

#[tokio::test]
async fn forged_or_stale_access_tokens_are_refused_by_the_api() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let (valid, bad) = forgeries(&provider, API_AUDIENCE, None);
    let (status, body) = me(&app, &bearer_client(&valid)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], serde_json::json!(["operator", "approver"]));
    for (what, token) in bad {
        let (status, body) = me(&app, &bearer_client(&token)).await;
        assert_eq!(status, 401, "an access token {what} got {status}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rejected"),
            "{what}: {body}"
        );
    }
    // An ID token is not an access token: its audience is Runboard's client, not the API.
    let (id_token, _) = forgeries(&provider, CLIENT_ID, None);
    assert_eq!(me(&app, &bearer_client(&id_token)).await.0, 401);
}

#[tokio::test]
async fn a_rotated_provider_key_is_fetched_and_the_old_one_dropped() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let (before, _) = forgeries(&provider, API_AUDIENCE, None);
    assert_eq!(me(&app, &bearer_client(&before)).await.0, 200);
    // The provider restarts on the same address with a new signing key.
    let port = provider.port();
    drop(provider);
    let rotated = OidcProvider::start(
        port,
        CLIENT_ID,
        CLIENT_SECRET,
        "http://127.0.0.1:1/cb",
        PEOPLE,
        None,
    );
    // Runboard fetches keys at most every 2 s, however many unknown keys it is shown.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (after, _) = forgeries(&rotated, API_AUDIENCE, None);
    assert_eq!(
        me(&app, &bearer_client(&after)).await.0,
        200,
        "the new key is fetched"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        me(&app, &bearer_client(&before)).await.0,
        401,
        "the retired key no longer signs"
    );
}

/// Held by the interleaving test and the one that starts a demo fleet, so that the two never
/// run at once in this process: beside the fleet's start-up, a page of the interleaving
/// test's server (another tokio runtime in the same process) now and then stalled until the
/// 30 s body timeout cut it. One server per process, as in production, never showed it.
static NOT_BESIDE_A_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Providers such as Okta and Azure AD give one person one `sub` in the ID token and
/// another in the access token: with `person_claim` naming a claim they share, Runboard
/// knows them as one person, and the two-person rule holds across the two.
#[tokio::test]
async fn one_person_signed_in_and_with_an_access_token_of_another_sub_cannot_approve_their_own_action()
 {
    let _alone = NOT_BESIDE_A_FLEET.lock().await;
    let fleet = common::start_fleet(Backend::Sqlite).await;
    let services: Vec<_> = fleet
        .fleet
        .services()
        .iter()
        .map(common::registered)
        .collect();
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.services = services;
        config.identity.oidc.as_mut().unwrap().person_claim = "preferred_username".into();
    })
    .await;

    // Alice, signed in through the provider (ID token: sub "alice"), asks for an action.
    let browser = signed_in_browser(&app, "alice").await;
    let csrf = me(&app, &browser).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let write = |path: &str, body: Value| {
        browser
            .post(app.url(path))
            .header("origin", &app.address)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let sagas: Value = browser
        .get(app.url("/api/v1/services/onboarding/sagas?status=failed&limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = sagas["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    let created = write(
        "/api/v1/actions",
        serde_json::json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let action: Value = created.json().await.unwrap();
    let id = action["id"].as_str().unwrap();
    let submitted = write(
        &format!("/api/v1/actions/{id}/submit"),
        serde_json::json!({ "reason": "INC-9: stuck KYC" }),
    )
    .await
    .unwrap();
    assert_eq!(submitted.status(), 200);

    // Her access token names her by another subject, as Okta's do.
    let access = |subject: &str, username: &str| {
        bearer_client(&forge(Forge {
            issuer: &provider.issuer,
            subject,
            username,
            audience: API_AUDIENCE,
            expires_in: 300,
            kid: &provider.kid,
            key_pem: &provider.key_pem,
            nonce: None,
            groups: &["sre"],
        }))
    };
    let approve = |client: reqwest::Client| {
        let url = app.url(&format!("/api/v1/actions/{id}/approve"));
        let digest = action["digest"].clone();
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({ "digest": digest }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = approve(access("00u1a2b3c4-alice", "alice")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you asked for this action"),
        "{body}"
    );
    // Another person, by the same claim, may.
    let (status, body) = approve(access("00u9z8y7x6-bob", "bob")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
}

test_on_both_stores!(an_admin_ends_a_persons_sessions_and_tokens_and_their_next_request_is_refused);

async fn an_admin_ends_a_persons_sessions_and_tokens_and_their_next_request_is_refused(
    backend: Backend,
) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    // Alice in two browsers and with a script's token; Carol beside her.
    let laptop = signed_in_browser(&app, "alice").await;
    let phone = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let subject = me(&app, &laptop).await.1["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = runboard_model::User {
        subject: subject.clone(),
        name: "Alice Ops".into(),
        roles: [Role::Operator].into(),
    };
    let script = bearer_client(
        &app.app
            .store
            .issue_api_token(&alice, "nightly", Duration::from_secs(3600), Utc::now())
            .await
            .unwrap()
            .secret,
    );
    assert_eq!(
        script
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let revoke = |client: reqwest::Client, reason: &'static str| {
        let url = app.url("/api/v1/access/revoke");
        let subject = subject.clone();
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({ "subject": subject, "reason": reason }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let operator = bearer_client(
        &app.token_for("oscar", &[Role::Operator, Role::Approver])
            .await,
    );
    assert_eq!(revoke(operator, "not mine to end").await.0, 403);

    let admin = bearer_client(&app.token_for("ada", &[Role::Admin]).await);
    let mut listing = reqwest::Url::parse(&app.url("/api/v1/access")).unwrap();
    listing.query_pairs_mut().append_pair("subject", &subject);
    let access: Value = admin
        .get(listing.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(access["sessions"].as_array().unwrap().len(), 2, "{access}");
    assert_eq!(access["sessions"][0]["name"], "Alice Ops");
    assert_eq!(access["tokens"].as_array().unwrap().len(), 1, "{access}");
    let people = |admin: reqwest::Client| {
        let url = app.url("/api/v1/people");
        async move {
            let people: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            people["people"].as_array().unwrap().clone()
        }
    };
    let listed = people(admin.clone()).await;
    let alice_listed = listed
        .iter()
        .find(|p| p["subject"] == subject.as_str())
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(
        (&alice_listed["sessions"], &alice_listed["live_tokens"]),
        (&serde_json::json!(2), &serde_json::json!(1))
    );

    let (status, body) = revoke(admin.clone(), " ").await;
    assert_eq!(status, 400, "a reason is asked for: {body}");
    let (status, revoked) = revoke(admin.clone(), "laptop stolen").await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["sessions_ended"], 2);
    assert_eq!(revoked["tokens_revoked"], 1);

    // Her next request, page or API, in any browser or script, is refused.
    assert_eq!(me(&app, &laptop).await.0, 401);
    let page = phone.get(app.url("/funds")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert!(location(&page).starts_with("/login"), "{}", location(&page));
    let api = script
        .get(app.url("/api/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(api.text().await.unwrap().contains("revoked"));
    // Carol is still signed in.
    assert_eq!(me(&app, &carol).await.0, 200);
    let listed = people(admin.clone()).await;
    assert!(
        listed.iter().all(|p| p["subject"] != subject.as_str())
            && listed.iter().any(|p| p["name"] == "Carol Business"),
        "{listed:?}"
    );

    let after: Value = admin
        .get(listing)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["sessions"], serde_json::json!([]), "{after}");
    let audit = sql_strings(
        &app.app.config.store.effective_url(),
        "SELECT detail FROM audit_entry WHERE kind = 'access.revoked'",
    )
    .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains("laptop stolen"), "{audit:?}");
}

/// Someone taken out of the approvers' group at the provider loses the role in the API
/// tokens they hold too, as soon as Runboard sees them again; back in the group, their
/// tokens have it again, never more than they were issued with.
#[tokio::test]
async fn a_token_acts_with_no_more_than_the_roles_its_holder_was_last_seen_with() {
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.roles.approver = vec!["approvers".into()];
    })
    .await;
    let access = |groups: &'static [&'static str]| {
        bearer_client(&forge(Forge {
            issuer: &provider.issuer,
            subject: "alice",
            username: "alice",
            audience: API_AUDIENCE,
            expires_in: 300,
            kid: &provider.kid,
            key_pem: &provider.key_pem,
            nonce: None,
            groups,
        }))
    };
    let roles = |body: (u16, Value)| (body.0, body.1["roles"].clone());
    let (status, seen) = me(&app, &access(&["sre", "approvers"])).await;
    assert_eq!(status, 200, "{seen}");
    let alice = runboard_model::User {
        subject: seen["subject"].as_str().unwrap().to_owned(),
        name: "Alice Ops".into(),
        roles: [Role::Operator, Role::Approver].into(),
    };
    let script = bearer_client(
        &app.app
            .store
            .issue_api_token(&alice, "nightly", Duration::from_secs(3600), Utc::now())
            .await
            .unwrap()
            .secret,
    );
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator", "approver"]))
    );

    // The provider takes her out of the approvers.
    assert_eq!(me(&app, &access(&["sre"])).await.0, 200);
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator"])),
        "her token lost the role her groups no longer give"
    );

    // Out of every group that counts: her token opens nothing, and says why.
    assert_eq!(me(&app, &access(&["marketing"])).await.0, 403);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer holds any of the roles"),
        "{body}"
    );

    // Back among approvers, and an admin besides: the token's own roles again, no more.
    assert_eq!(
        me(&app, &access(&["sre", "approvers", "platform"])).await.0,
        200
    );
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator", "approver"]))
    );
}

#[tokio::test]
async fn a_sessions_roles_follow_the_persons_groups_at_the_provider_within_roles_ttl() {
    const ROLES_TTL: Duration = Duration::from_secs(2);
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.roles_ttl = Some(ROLES_TTL);
    })
    .await;
    let alice = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let roles = |client: reqwest::Client| {
        let app = &app;
        async move {
            let (status, body) = me(app, &client).await;
            assert_eq!(status, 200, "{body}");
            body["roles"].clone()
        }
    };
    assert_eq!(
        roles(alice.clone()).await,
        serde_json::json!(["operator", "approver"])
    );

    // Moved out of the SRE group at the provider: her session holds only what her
    // groups give now once roles_ttl has passed, without signing in again.
    provider.set_groups("alice", &["business"]).await;
    tokio::time::sleep(ROLES_TTL + Duration::from_millis(200)).await;
    assert_eq!(roles(alice.clone()).await, serde_json::json!(["viewer"]));

    // Out of every group that gives a role: her session ends at the next renewal; Carol,
    // whose groups did not change, stays signed in with hers.
    provider.set_groups("alice", &["marketing"]).await;
    tokio::time::sleep(ROLES_TTL + Duration::from_millis(200)).await;
    assert_eq!(me(&app, &alice).await.0, 401);
    assert_eq!(roles(carol).await, serde_json::json!(["viewer"]));
}

#[tokio::test]
async fn starting_a_sign_in_writes_no_session_row_until_it_completes() {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(Backend::Sqlite).await;
    let sessions = || {
        let url = app.app.config.store.effective_url();
        async move { sql_strings(&url, "SELECT id FROM session").await.len() }
    };
    // Anyone may open the sign-in link many times: it costs the store nothing.
    for _ in 0..20 {
        let start = browser()
            .get(app.url("/auth/login?next=/funds"))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 303);
        let cookie = start
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.starts_with("runboard_sign_in=")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/auth/callback"),
            "{cookie}"
        );
    }
    assert_eq!(sessions().await, 0);
    // A sign-in that completes writes its one session.
    let alice = signed_in_browser(&app, "alice").await;
    assert_eq!(me(&app, &alice).await.0, 200);
    assert_eq!(sessions().await, 1);
}

/// What `client` is answered at `url`, as text.
async fn text_at(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}
