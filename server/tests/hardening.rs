//! What a hostile user or a page on another site would try first, each refused (issue #14).

mod common;

use common::spawn_app;
use runboard_model::Role;
use runboard_testkit::Backend;
use serde_json::Value;

/// Where a signed-in browser is sent by `/login?next=…`, resolved as a browser resolves a
/// `Location` (the WHATWG parser, which drops tabs and reads `\` as `/`).
async fn sent_to(app: &common::TestApp, client: &reqwest::Client, next: &str) -> url::Url {
    let mut login = url::Url::parse(&app.url("/login")).unwrap();
    login.query_pairs_mut().append_pair("next", next);
    let response = client.get(login).send().await.unwrap();
    assert_eq!(response.status(), 303, "{next:?}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    url::Url::parse(&app.address)
        .unwrap()
        .join(&location)
        .unwrap()
}

#[tokio::test]
async fn sign_in_never_sends_anyone_to_another_site() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.token_for("vera", &[Role::Viewer]).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let signed_in = reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ours = url::Url::parse(&app.address).unwrap();
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "//evil.example",
        "https://evil.example/",
        "/\t\\evil.example/funds",
    ] {
        let url = sent_to(&app, &signed_in, next).await;
        assert_eq!(url.origin(), ours.origin(), "{next:?} led to {url}");
        assert_eq!(url.path(), "/", "{next:?} is not a page of ours: {url}");
    }
    let url = sent_to(&app, &signed_in, "/services/payouts?status=failed#sagas").await;
    assert_eq!(
        &url[url::Position::BeforePath..],
        "/services/payouts?status=failed#sagas",
        "a page of ours is kept as asked"
    );
}

#[tokio::test]
async fn an_age_beyond_any_saga_is_refused_with_what_to_send() {
    let app = spawn_app(Backend::Sqlite).await;
    for query in ["older_than=300000y", "newer_than=300000y"] {
        let response = app
            .get(&format!("/api/v1/services/payouts/sagas?{query}"))
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&query[..query.find('=').unwrap()])
                && message.contains("at most 100y"),
            "{message}"
        );
    }
    // And on the screen, where the filter lives in the URL: the page says so.
    let page = app.get("/services/payouts?older_than=300000y").await;
    assert!(
        page.text().await.unwrap().contains("at most 100y"),
        "the service page names the bad filter"
    );
}

#[tokio::test]
async fn every_page_carries_a_strict_policy_and_its_scripts_the_policys_nonce() {
    let app = spawn_app(Backend::Sqlite).await;
    let nonce_in_policy = regex::Regex::new(r"'nonce-([A-Za-z0-9_-]{16,})'").unwrap();
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let response = app.get("/").await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
        let policy = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "style-src 'self'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        let nonce = nonce_in_policy
            .captures(&policy)
            .unwrap_or_else(|| panic!("a script nonce in {policy}"))[1]
            .to_owned();
        let html = response.text().await.unwrap();
        let scripts: Vec<&str> = html
            .match_indices("<script")
            .map(|(i, _)| &html[i..])
            .collect();
        assert!(!scripts.is_empty(), "the page hydrates with a script");
        for script in scripts {
            let tag = &script[..script.find('>').unwrap()];
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "a script without this response's nonce: {tag}"
            );
        }
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a nonce is never used twice");
}
