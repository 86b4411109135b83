//! What a hostile user or a page on another site would try first, each refused (issue #14).

use crate::support as common;

use common::{bearer_client, series, spawn_app, spawn_app_configured, spawn_with_limits};
use runboard_core::config::LimitsConfig;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};
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

/// The statuses of `n` GETs of `path` by `client`, sent one after the other.
async fn statuses(
    app: &common::TestApp,
    client: &reqwest::Client,
    path: &str,
    n: usize,
) -> Vec<u16> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(
            client
                .get(app.url(path))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    seen
}

#[tokio::test]
async fn one_person_asking_too_fast_is_slowed_down_and_nobody_else_is() {
    let app = spawn_with_limits(LimitsConfig {
        per_person_per_second: 1,
        per_person_burst: 5,
        ..LimitsConfig::default()
    })
    .await;
    let script = bearer_client(&app.token_for("script", &[Role::Viewer]).await);
    let seen = statuses(&app, &script, "/api/v1/services", 8).await;
    assert_eq!(&seen[..5], [200; 5], "a burst is let through: {seen:?}");
    assert!(seen[5..].iter().all(|s| *s == 429), "{seen:?}");

    let refused = script
        .get(app.url("/api/v1/services"))
        .send()
        .await
        .unwrap();
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        wait, 1,
        "Retry-After: the next request the pace allows is a second away"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 1 a second") && message.contains("try again in"),
        "{message}"
    );
    // Someone else reads on, and the probes answer whoever asks.
    assert_eq!(app.get("/api/v1/services").await.status(), 200);
    assert_eq!(
        script
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Once the pace allows, the script is let in again.
    app.app.clock.advance(std::time::Duration::from_secs(wait));
    assert_eq!(
        script
            .get(app.url("/api/v1/services"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn guessing_tokens_and_signing_in_are_slowed_per_address() {
    let app = spawn_with_limits(LimitsConfig {
        refused_tokens_per_minute: 3,
        sign_in_per_minute: 2,
        ..LimitsConfig::default()
    })
    .await;
    let guesser = bearer_client("rbt_guess");
    let seen = statuses(&app, &guesser, "/api/v1/services", 5).await;
    assert_eq!(
        seen,
        [401, 401, 401, 429, 429],
        "refused tokens from one address"
    );
    // A good token from the same address is not held up by the guesses.
    assert_eq!(app.get("/api/v1/services").await.status(), 200);

    let stranger = reqwest::Client::new();
    let seen = statuses(&app, &stranger, "/login", 3).await;
    assert_eq!(seen, [200, 200, 429], "sign-in pages from one address");
}

#[tokio::test]
async fn the_liveness_probe_answers_a_loop_of_made_up_methods_and_grows_nothing() {
    let app = spawn_with_limits(LimitsConfig {
        per_person_per_second: 1,
        per_person_burst: 1,
        ..LimitsConfig::default()
    })
    .await;
    let stranger = reqwest::Client::new();
    let probe = |method: &str| {
        stranger
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url("/healthz"),
            )
            .send()
    };
    assert_eq!(probe("GET").await.unwrap().status(), 200);
    let first = probe("FIRST").await.unwrap().status();
    app.metrics().await;
    let before = series(&app.metrics().await);
    for i in 0..500 {
        assert_eq!(probe(&format!("LOOP{i}")).await.unwrap().status(), first);
        // The kubelet's probe is never refused, however the loop goes.
        assert_eq!(probe("GET").await.unwrap().status(), 200, "probe {i}");
    }
    let after = series(&app.metrics().await);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(
        added.is_empty(),
        "{} series added, e.g. {:?}",
        added.len(),
        &added[..added.len().min(3)]
    );
}

/// A reverse proxy on loopback (127.0.0.1), as an ingress is: each request goes on to
/// `upstream` with the address it came from appended to `X-Forwarded-For`. Its address.
async fn reverse_proxy(upstream: &str) -> String {
    use axum::extract::{ConnectInfo, Request};
    let upstream = upstream.to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .build()
        .unwrap();
    let forward = move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, request: Request| {
        let (upstream, client) = (upstream.clone(), client.clone());
        async move {
            let (parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut headers = parts.headers;
            for hop in ["host", "content-length", "connection", "transfer-encoding"] {
                headers.remove(hop);
            }
            headers.append("x-forwarded-for", peer.ip().to_string().parse().unwrap());
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let answer = client
                .request(parts.method, format!("{upstream}{path}"))
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let mut response = http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                ) {
                    response = response.header(name, value);
                }
            }
            response
                .body(axum::body::Body::from(answer.bytes().await.unwrap()))
                .unwrap()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(forward);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    address
}

/// A browser on its own loopback address (127.0.0.`last`), keeping its cookies.
fn browser_at(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The statuses of `GET /login` sent `n` times by `client` to `base`, each with a made-up
/// `X-Forwarded-For` of its own.
async fn sign_in_pages(client: &reqwest::Client, base: &str, n: u8) -> Vec<u16> {
    let mut seen = Vec::new();
    for i in 0..n {
        let response = client
            .get(format!("{base}/login"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .send()
            .await
            .unwrap();
        seen.push(response.status().as_u16());
    }
    seen
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_client_hammering_sign_in_is_limited_and_another_signs_in() {
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = common::example_services();
        config.identity.demo_users = true;
        config.limits = LimitsConfig {
            sign_in_per_minute: 3,
            ..LimitsConfig::default()
        };
        config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = reverse_proxy(&app.address).await;

    // The stranger's own X-Forwarded-For is kept, but the proxy's hop is the one believed.
    let stranger = browser_at(2);
    let seen = sign_in_pages(&stranger, &proxy, 5).await;
    assert_eq!(seen, [200, 200, 200, 429, 429], "through the proxy");

    // Someone else behind the same proxy signs in.
    let person = browser_at(3);
    assert_eq!(
        person
            .get(format!("{proxy}/login"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let signed_in = person
        .post(format!("{proxy}/auth/demo"))
        .header("origin", &app.address)
        .form(&[("login", "vera"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "{:?}", signed_in.text().await);
    let me = person
        .get(format!("{proxy}/api/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "signed in: {:?}", me.text().await);

    // A peer that is no proxy of ours names itself, whatever header it sends.
    let direct = browser_at(4);
    let seen = sign_in_pages(&direct, &app.address, 5).await;
    assert_eq!(seen, [200, 200, 200, 429, 429], "straight to Runboard");
}
