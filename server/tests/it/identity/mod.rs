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

mod forged;
mod people;
mod sign_in;
mod tokens;

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

/// What `client` is answered at `url`, as text.
async fn text_at(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

// Tokens forged by the test with the provider's own key, differing in one claim.

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
