//! The server as a client sees it, on each store backend.

use crate::support as common;

use common::{spawn_app, spawn_app_on};
use runboard_testkit::{Backend, TestStore, test_on_both_stores};
use serde_json::Value;

test_on_both_stores!(
    probes_say_live_and_ready,
    the_api_lists_the_configured_services,
    the_overview_is_rendered_on_the_server_with_the_services,
    the_server_function_returns_the_services_as_json,
    the_audit_endpoint_says_whether_the_chain_is_intact,
    a_page_for_an_unknown_service_answers_404_and_says_so,
);

async fn probes_say_live_and_ready(backend: Backend) {
    let app = spawn_app(backend).await;
    let live = app.get("/healthz").await;
    assert_eq!(live.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

async fn the_api_lists_the_configured_services(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/v1/services").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let services = body["services"].as_array().unwrap();
    let names: Vec<_> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ledger", "payouts"]);
    assert_eq!(services[1]["team"], "treasury");
    assert_eq!(
        services[1]["polled_at"],
        Value::Null,
        "not polled yet, and says so"
    );
    assert_eq!(services[1]["reachable"], false);
    assert!(
        services[1].get("database_url").is_none(),
        "database credentials never leave the server"
    );
}

async fn the_overview_is_rendered_on_the_server_with_the_services(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<title>Overview · Runboard</title>"),
        "{html}"
    );
    for text in [
        "payouts",
        "treasury",
        "ledger",
        "core-banking",
        "Not polled yet",
    ] {
        assert!(
            html.contains(text),
            "server-rendered overview lacks {text:?}"
        );
    }
    assert!(
        html.contains("/pkg/runboard.js"),
        "the page loads the hydration script"
    );
}

async fn the_server_function_returns_the_services_as_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .post(app.url("/rpc/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    assert_eq!(overview["services"].as_array().unwrap().len(), 2);
    assert!(overview["read_at"].is_string());
}

#[tokio::test]
async fn an_unknown_api_route_answers_a_json_error() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api/v1/sagas-of-everything").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/sagas-of-everything")
    );
}

#[tokio::test]
async fn an_unknown_page_is_a_404_page_with_a_way_back() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/no/such/screen").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("Page not found"));
    assert!(html.contains("Go to the overview"));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app(Backend::Sqlite).await;
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "incident-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "incident-4711");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = spawn_app(Backend::Sqlite).await;
    let limit = app.app.config.http.body_limit_bytes;
    let response = app
        .client
        .post(app.url("/rpc/overview"))
        .body(vec![b'x'; limit + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn readiness_fails_while_the_store_is_cut_and_recovers_after() {
    let (store, proxy) = TestStore::postgres_behind_proxy().await;
    let app = spawn_app_on(store, common::example_services()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.cut();
    let cut = app.get("/readyz").await;
    assert_eq!(cut.status(), 503);
    let body: Value = cut.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unreachable");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on the store"
    );
    // The caller's token is checked against the store: without it, Runboard says so.
    let api = app.get("/api/v1/services").await;
    assert_eq!(api.status(), 503);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("store is not answering"), "{body}");
    assert!(
        !message.contains("127.0.0.1"),
        "internal detail stays in the log: {body}"
    );
    // A token that could not be checked is no guess: the limit on refused tokens (10 a
    // minute) never turns the outage into "too many requests".
    for _ in 0..12 {
        assert_eq!(app.get("/api/v1/services").await.status(), 503);
    }

    proxy.restore();
    assert_eq!(app.get("/readyz").await.status(), 200);
}

async fn the_audit_endpoint_says_whether_the_chain_is_intact(backend: Backend) {
    let app = spawn_app(backend).await;
    for kind in ["action.previewed", "action.approved"] {
        app.app
            .store
            .append_audit(&runboard_core::audit::NewAuditEntry {
                actor: runboard_core::audit::Actor::Person(&"demo:alice".into()),
                action_id: Some(&"a-1".into()),
                kind,
                detail: serde_json::json!({ "entities": 3 }),
            })
            .await
            .unwrap();
    }
    let intact = app.get_json("/api/v1/audit/verify").await;
    assert_eq!(
        intact,
        serde_json::json!({ "state": "intact", "entries": 2 })
    );
    let url = app.app.config.store.effective_url();
    runboard_testkit::run_sql(
        &url,
        "UPDATE audit_entry SET actor = 'demo:bob' WHERE seq = 1",
    )
    .await;
    let broken = app.get_json("/api/v1/audit/verify").await;
    assert_eq!(broken["state"], "broken");
    assert_eq!(broken["seq"], 1);
}

async fn a_page_for_an_unknown_service_answers_404_and_says_so(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/services/nonesuch").await;
    assert_eq!(response.status(), 404);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("no service is registered as &quot;nonesuch&quot;")
            || page.contains("no service is registered as \"nonesuch\""),
        "{page}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_method_and_status_with_their_latency() {
    let app = spawn_app(Backend::Sqlite).await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/v1/services").await.status(), 200);
    }
    assert_eq!(
        app.get("/api/v1/actions/no-such-action").await.status(),
        404
    );
    let anonymous = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let refused = anonymous
        .get(app.url("/api/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let metrics = app.metrics().await;
    for line in [
        // By the route table's path, not the id asked for.
        r#"runboard_http_requests_total{route="/api/v1/services",method="GET",status="200"} 2"#,
        r#"runboard_http_requests_total{route="/api/v1/services",method="GET",status="401"} 1"#,
        r#"runboard_http_requests_total{route="/api/v1/actions/{id}",method="GET",status="404"} 1"#,
        r#"runboard_http_request_duration_seconds_count{route="/api/v1/services",method="GET"} 3"#,
        // The scrape itself.
        "runboard_http_requests_in_flight 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains("no-such-action"),
        "one series per route, whatever ids are asked for"
    );
}
