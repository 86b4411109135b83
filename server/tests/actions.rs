//! Corrective actions through the API against the demo fleet (real GraphQL over HTTP):
//! preview with the service's dry run, the two-person rule, approvals bound to the
//! preview, expiry, and execution that calls each entity once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestApp, TestFleet, bearer_client, registered, spawn_app_configured, start_fleet};
use runboard_core::execution;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore, test_on_both_stores};
use serde_json::{Value, json};

/// A Slack-compatible webhook on loopback that keeps the text of every message it gets.
async fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .unwrap()
                    .push(body["text"].as_str().unwrap_or_default().to_owned());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

struct Setup {
    app: TestApp,
    fleet: TestFleet,
    alice: reqwest::Client,
    bob: reqwest::Client,
    carol: reqwest::Client,
    vera: reqwest::Client,
}

async fn setup(
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    let fleet = start_fleet(backend).await;
    let services = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(backend).await, |config, _| {
        config.services = services;
        configure(config);
    })
    .await;
    let alice = bearer_client(
        &app.token_for("alice", &[Role::Operator, Role::Approver])
            .await,
    );
    let bob = bearer_client(
        &app.token_for("bob", &[Role::Operator, Role::Approver])
            .await,
    );
    let carol = bearer_client(&app.token_for("carol", &[Role::Approver]).await);
    let vera = bearer_client(&app.token_for("vera", &[Role::Viewer]).await);
    Setup {
        app,
        fleet,
        alice,
        bob,
        carol,
        vera,
    }
}

async fn post(app: &TestApp, client: &reqwest::Client, path: &str, body: Value) -> (u16, Value) {
    let response = client.post(app.url(path)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> Value {
    client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Failed sagas of a service, oldest first, as the API lists them.
async fn failed_sagas(s: &Setup, service: &str, n: usize) -> Vec<String> {
    let page = get(
        &s.app,
        &s.alice,
        &format!("/api/v1/services/{service}/sagas?status=failed&sort=oldest&limit={n}"),
    )
    .await;
    let ids: Vec<String> = page["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), n, "the demo fleet has failed sagas: {page}");
    ids
}

/// Alice asks to retry `ids` and submits it; returns the action.
async fn submitted_retry(s: &Setup, ids: &[String]) -> Value {
    let (status, action) = post(
        &s.app,
        &s.alice,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap();
    let (status, action) = post(
        &s.app,
        &s.alice,
        &format!("/api/v1/actions/{id}/submit"),
        json!({ "reason": "INC-4711: the KYC provider was down", "incident_url": "https://incidents.example/4711" }),
    )
    .await;
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["state"], "awaiting_approval");
    action
}

/// Runs the execution engine until it has nothing left to do.
async fn run_engine(app: &TestApp) {
    for _ in 0..200 {
        if !execution::step(&app.app).await.unwrap() {
            return;
        }
    }
    panic!("the engine kept finding work");
}

/// The calls the fleet received for an action, by its idempotency keys.
async fn calls_for(s: &Setup, action_id: &str) -> Vec<runboard_fleet::CallRecord> {
    let prefix = format!("runboard:{action_id}:");
    s.fleet
        .fleet
        .call_log("onboarding")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| {
            c.idempotency_key
                .as_deref()
                .is_some_and(|k| k.starts_with(&prefix))
        })
        .collect()
}

test_on_both_stores!(
    an_approved_retry_previews_then_runs_each_saga_once,
    the_two_person_rule_holds,
    an_approval_of_a_preview_whose_entities_changed_does_not_run,
    an_expired_preview_cannot_be_approved,
);

async fn an_approved_retry_previews_then_runs_each_saga_once(backend: Backend) {
    let (hook, messages) = webhook().await;
    let s = setup(backend, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap())
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 5).await;

    let catalog = get(&s.app, &s.alice, "/api/v1/services/onboarding/actions").await;
    let retry = catalog["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mutation"] == "retrySagas")
        .expect("the catalog lists retrySagas");
    assert_eq!(retry["dry_run"], true);

    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap().to_owned();
    let preview = &action["preview"];
    assert_eq!(preview["entities"].as_array().unwrap().len(), 5);
    assert!(
        preview["entities"][0]["state"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{preview}"
    );
    assert!(
        preview["document"]
            .as_str()
            .unwrap()
            .contains("retrySagas(ids: $ids, dryRun: $dryRun)")
    );
    assert_eq!(preview["dry_run"]["effects"].as_array().unwrap().len(), 5);
    assert!(
        calls_for(&s, &id).await.is_empty(),
        "nothing is sent for real before approval"
    );

    let digest = action["digest"].as_str().unwrap();
    let (status, approved) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": digest }),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");

    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "succeeded", "{detail}");
    assert_eq!(detail["action"]["progress"]["succeeded"], 5);
    let kinds: Vec<&str> = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "action.previewed",
            "action.submitted",
            "action.approved",
            "action.executing",
            "action.succeeded"
        ]
    );

    // Each saga was called once, with its own key and the action's names.
    let calls = calls_for(&s, &id).await;
    let mut keys: Vec<String> = calls
        .iter()
        .filter(|c| c.applied)
        .map(|c| c.idempotency_key.clone().unwrap())
        .collect();
    keys.sort();
    let mut expected: Vec<String> = ids.iter().map(|e| format!("runboard:{id}:{e}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert!(
        calls
            .iter()
            .all(|c| c.requester.as_deref() == Some("test:alice"))
    );
    assert!(
        calls
            .iter()
            .all(|c| c.approvers.as_deref() == Some("test:bob"))
    );
    let audit = get(&s.app, &s.alice, "/api/v1/audit/verify").await;
    assert_eq!(audit["state"], "intact");

    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"runboard_action_calls_total{service="onboarding",outcome="ok"} 5"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"runboard_actions_ended_total{service="onboarding",state="succeeded"} 1"#)
    );

    // The webhook heard of each step people act on, in order.
    let expected = [
        "asks for approval",
        "is approved",
        "finished: 5 of 5 succeeded",
    ];
    let mut heard = Vec::new();
    for _ in 0..50 {
        heard = messages.lock().unwrap().clone();
        if heard.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heard.len(), expected.len(), "{heard:?}");
    for (message, words) in heard.iter().zip(expected) {
        assert!(
            message.contains(words) && message.contains("retrySagas"),
            "{message}"
        );
        assert!(
            message.contains(&format!("/actions/{id}")),
            "links the action: {message}"
        );
    }
    assert!(
        heard[0].contains("INC-4711"),
        "the reason is in the request: {}",
        heard[0]
    );

    // The Markdown record tells the whole story.
    let record = s
        .alice
        .get(s.app.url(&format!("/api/v1/actions/{id}/record.md")))
        .send()
        .await
        .unwrap();
    let content_type = record.headers()["content-type"].clone();
    let record = record.text().await.unwrap();
    assert_eq!(content_type, "text/markdown; charset=utf-8", "{record}");
    for text in [
        "# retrySagas on onboarding",
        "**succeeded**",
        "INC-4711: the KYC provider was down",
        "https://incidents.example/4711",
        "1 of 1 needed",
        "bob (test:bob)",
        "5 succeeded, 0 failed, 0 pending.",
        "action.approved",
        action["digest"].as_str().unwrap(),
    ] {
        assert!(
            record.contains(text),
            "the record lacks {text:?}:\n{record}"
        );
    }
    for saga in &ids {
        assert_eq!(
            record.matches(saga.as_str()).count(),
            2,
            "{saga} in the preview and the results"
        );
    }
}

async fn the_two_person_rule_holds(backend: Backend) {
    let s = setup(backend, |config| {
        // A webhook that is down: nothing here may wait for it or fail because of it.
        config.actions.webhook_url = Some("http://127.0.0.1:1/down".parse().unwrap());
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.approvals.insert("retrySagas".into(), 2);
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 2).await;

    // A viewer can do nothing: not ask, not approve.
    let (status, _) = post(
        &s.app,
        &s.vera,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert_eq!(status, 403);

    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    let digest = action["digest"].as_str().unwrap();
    assert_eq!(action["approvals_needed"], 2);
    let approve_path = format!("/api/v1/actions/{id}/approve");
    let approve = |client| post(&s.app, client, &approve_path, json!({ "digest": digest }));

    let (status, body) = approve(&s.vera).await;
    assert_eq!(status, 403, "a viewer cannot approve: {body}");
    for path in ["cancel", "reject"] {
        let (status, _) = post(
            &s.app,
            &s.vera,
            &format!("/api/v1/actions/{id}/{path}"),
            json!({ "reason": "no" }),
        )
        .await;
        assert_eq!(status, 403, "a viewer cannot {path}");
    }
    let (status, body) = approve(&s.alice).await;
    assert_eq!(status, 403, "the requester cannot approve: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another approver")
    );

    let (status, body) = approve(&s.bob).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "awaiting_approval", "one of two approvals");
    let (status, body) = approve(&s.bob).await;
    assert_eq!(status, 409, "one approver counts once: {body}");
    assert_eq!(
        get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await["action"]["approvals"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An approval names the preview it approves.
    let (status, _) = post(
        &s.app,
        &s.carol,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": "0".repeat(64) }),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = approve(&s.carol).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "approved");

    // The same sagas cannot go into a second action while this one lives.
    let (status, second) = post(
        &s.app,
        &s.bob,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids }, "reason": "again" }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{}/submit", second["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(id));
}

async fn an_approval_of_a_preview_whose_entities_changed_does_not_run(backend: Backend) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 3).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    let (status, _) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": action["digest"] }),
    )
    .await;
    assert_eq!(status, 200);

    // Someone else retries one of the sagas directly at the service meanwhile.
    let onboarding = s
        .fleet
        .fleet
        .services()
        .iter()
        .find(|s| s.name == "onboarding")
        .unwrap();
    let done: Value = reqwest::Client::new()
        .post(&onboarding.graphql_url)
        .json(&json!({
            "query": "mutation($ids: [ID!]!) { forceCompleteSagas(ids: $ids, reason: \"by hand\", dryRun: false) { dryRun } }",
            "variables": { "ids": [ids[0]] },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(done.get("errors").is_none(), "{done}");

    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    let action_now = &detail["action"];
    assert_eq!(action_now["state"], "awaiting_approval", "{detail}");
    assert!(
        action_now["state_detail"]
            .as_str()
            .unwrap()
            .contains("differs from the approved preview")
    );
    assert_ne!(
        action_now["digest"], action["digest"],
        "a new preview, a new digest"
    );
    assert_eq!(
        action_now["approvals"].as_array().unwrap().len(),
        0,
        "the old approval is void"
    );
    assert!(
        calls_for(&s, id).await.iter().all(|c| !c.applied),
        "no saga was called for real"
    );
}

async fn an_expired_preview_cannot_be_approved(backend: Backend) {
    let s = setup(backend, |config| {
        config.actions.preview_ttl = Duration::from_secs(1)
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 1).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": action["digest"] }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "expired");
    run_engine(&s.app).await;
    assert!(calls_for(&s, id).await.iter().all(|c| !c.applied));
}

#[tokio::test]
async fn failures_pause_an_action_which_can_be_resumed_or_cancelled() {
    let s = setup(Backend::Sqlite, |config| {
        config.actions.pause_after_calls = 2;
        config.actions.pause_failure_share = 0.5;
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 6).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    let (status, _) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": action["digest"] }),
    )
    .await;
    assert_eq!(status, 200);

    // The service goes down: the dry run before executing fails, and the action pauses.
    s.fleet.fleet.stop_service("onboarding").await;
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");
    assert!(
        detail["action"]["state_detail"]
            .as_str()
            .unwrap()
            .contains("dry run before executing failed")
    );

    // Resumed while it is still down: its calls fail (after retries), and past the share it pauses again.
    let (status, _) = post(
        &s.app,
        &s.alice,
        &format!("/api/v1/actions/{id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    let action_now = &detail["action"];
    assert_eq!(action_now["state"], "paused", "{detail}");
    assert!(
        action_now["state_detail"]
            .as_str()
            .unwrap()
            .contains("calls failed"),
        "{action_now}"
    );
    let failed = detail["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "failed")
        .count();
    assert!(failed >= 2, "{detail}");
    assert!(
        detail["entities"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts")
    );
    assert_eq!(
        detail["entities"][0]["attempts"], 3,
        "transient failures are retried"
    );

    // Cancelled: it ends, and its sagas are free for another action.
    let (status, cancelled) = post(
        &s.app,
        &s.alice,
        &format!("/api/v1/actions/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, _) = post(
        &s.app,
        &s.alice,
        &format!("/api/v1/actions/{id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "an ended action stays ended");
}
