//! Corrective actions through the API against the demo fleet (real GraphQL over HTTP):
//! preview with the service's dry run, the two-person rule, approvals bound to the
//! preview, expiry, and execution that calls each entity once.

use crate::support as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    TestApp, TestFleet, bearer_client, registered, spawn_app_configured, start_fleet,
    start_fleet_checking, webhook,
};
use runboard_core::execution;
use runboard_model::Role;
use runboard_testkit::{
    Backend, ChaosProxy, MachineClient, OidcProvider, TestStore, run_sql, test_on_both_stores,
};
use serde_json::{Value, json};

struct Setup {
    app: TestApp,
    fleet: TestFleet,
    alice: reqwest::Client,
    bob: reqwest::Client,
    carol: reqwest::Client,
    vera: reqwest::Client,
    /// An operator who may not approve.
    oscar: reqwest::Client,
    /// In front of onboarding's mission control: cut it or slow it down.
    proxy: Arc<ChaosProxy>,
}

async fn setup(
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    setup_with(start_fleet(backend).await, backend, configure).await
}

async fn setup_with(
    fleet: TestFleet,
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    let mut services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
    let onboarding = services
        .iter_mut()
        .find(|s| s.name.as_str() == "onboarding")
        .unwrap();
    let upstream = onboarding.graphql_url.socket_addrs(|| None).unwrap()[0];
    let proxy = ChaosProxy::start(upstream).await;
    onboarding.graphql_url.set_port(Some(proxy.port())).unwrap();
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
    let oscar = bearer_client(&app.token_for("oscar", &[Role::Operator]).await);
    Setup {
        app,
        fleet,
        alice,
        bob,
        carol,
        vera,
        oscar,
        proxy,
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
    common::failed_saga_ids(&s.app.address, &s.alice, service, n).await
}

/// Alice asks to retry `ids` and submits it; returns the action.
async fn submitted_retry(s: &Setup, ids: &[String]) -> Value {
    submitted_retry_on(s, "onboarding", ids).await
}

/// Alice asks to retry `ids` of `service` and submits it; returns the action.
async fn submitted_retry_on(s: &Setup, service: &str, ids: &[String]) -> Value {
    let (status, action) = ask_and_submit(
        s,
        &s.alice,
        service,
        ids,
        json!({ "reason": "INC-4711: the KYC provider was down", "incident_url": "https://incidents.example/4711" }),
    )
    .await;
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["state"], "awaiting_approval");
    action
}

/// `client` asks to retry `ids` of `service` and submits the action with `submission`;
/// the submission's status and answer.
async fn ask_and_submit(
    s: &Setup,
    client: &reqwest::Client,
    service: &str,
    ids: &[String],
    submission: Value,
) -> (u16, Value) {
    let (status, action) = post(
        &s.app,
        client,
        "/api/v1/actions",
        json!({ "service": service, "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap();
    post(
        &s.app,
        client,
        &format!("/api/v1/actions/{id}/submit"),
        submission,
    )
    .await
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

/// The entities the applied calls named, in the order sent.
fn applied_entities(calls: &[runboard_fleet::CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.applied)
        .flat_map(|c| c.variables["ids"].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
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
    a_retried_request_under_its_idempotency_key_makes_one_action,
);

/// A client that retries `POST /api/v1/actions` after a timeout, with its `Idempotency-Key`,
/// gets the action its first request made, even when both arrive at once; the key reused
/// for another request is refused, and another person's same key is theirs.
async fn a_retried_request_under_its_idempotency_key_makes_one_action(backend: Backend) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    let request = json!({
        "service": "onboarding",
        "mutation": "retrySagas",
        "arguments": { "ids": ids },
        "reason": "INC-77",
    });
    let ask = |client: &reqwest::Client, key: &str, body: &Value| {
        client
            .post(s.app.url("/api/v1/actions"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let (first, twin) = tokio::join!(
        ask(&s.alice, "k-1", &request),
        ask(&s.alice, "k-1", &request)
    );
    let first: Value = first.unwrap().json().await.unwrap();
    let twin: Value = twin.unwrap().json().await.unwrap();
    let retried: Value = ask(&s.alice, "k-1", &request)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().expect("an action");
    assert_eq!(twin["id"], id, "{twin}");
    assert_eq!(retried["id"], id, "{retried}");
    let mine = get(&s.app, &s.alice, "/api/v1/actions?view=mine").await;
    assert_eq!(mine["actions"].as_array().unwrap().len(), 1, "{mine}");

    let mut other = request.clone();
    other["reason"] = json!("INC-78");
    let refused = ask(&s.alice, "k-1", &other).await.unwrap();
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.unwrap();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was used for another request"),
        "{refused}"
    );
    let bobs: Value = ask(&s.bob, "k-1", &request)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["id"], id, "{bobs}");
    let spaced = ask(&s.alice, "a key with spaces", &request).await.unwrap();
    assert_eq!(spaced.status(), 400);
}

async fn an_approved_retry_previews_then_runs_each_saga_once(backend: Backend) {
    let (hook, messages) = webhook().await;
    let s = setup(backend, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        // Five sagas in calls of two: chunks of 2, 2 and 1.
        config.actions.chunk_size = 2;
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
    assert_eq!(preview["entities"], 5, "{preview}");
    assert_eq!(preview["chunk_size"], 2, "{preview}");
    assert!(
        preview["document"]
            .as_str()
            .unwrap()
            .contains("retrySagas(ids: $ids, dryRun: $dryRun)")
    );
    assert_eq!(preview["dry_run"]["effects"], 5, "{preview}");
    let grouped: u64 = preview["dry_run"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped, 5, "every effect is in a group: {preview}");
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    let listed: Vec<&str> = detail["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids, "the entities in the order they were named");
    assert!(
        detail["entities"][0]["found"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{detail}"
    );
    assert!(
        detail["entities"][0]["planned"][0]
            .as_str()
            .unwrap()
            .starts_with("retry"),
        "each entity shows what its dry run said: {detail}"
    );
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
            "action.started",
            "action.rechecked",
            "action.succeeded"
        ]
    );

    // Each chunk was called once with its own key, naming exactly its members, so each
    // saga was applied once; every call carries the action's names.
    let calls = calls_for(&s, &id).await;
    let mut applied: Vec<(String, Value)> = calls
        .iter()
        .filter(|c| c.applied)
        .map(|c| {
            (
                c.idempotency_key.clone().unwrap(),
                c.variables["ids"].clone(),
            )
        })
        .collect();
    applied.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        applied,
        [
            (format!("runboard:{id}:0"), json!(ids[0..2])),
            (format!("runboard:{id}:1"), json!(ids[2..4])),
            (format!("runboard:{id}:2"), json!(ids[4..5])),
        ]
    );
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
        metrics.contains(r#"runboard_action_calls_total{service="onboarding",outcome="ok"} 3"#),
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

    // Someone else completes one of the sagas directly at the service meanwhile.
    s.fleet
        .force_complete_by_hand("onboarding", &ids[0..=0])
        .await;

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

/// Resumes or cancels an action: `(status, body)`.
async fn lifecycle_step(s: &Setup, client: &reqwest::Client, id: &str, step: &str) -> (u16, Value) {
    post(
        &s.app,
        client,
        &format!("/api/v1/actions/{id}/{step}"),
        json!({}),
    )
    .await
}

/// The audit kinds of an action, in order.
async fn audit_kinds(s: &Setup, id: &str) -> Vec<String> {
    get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Bob approves the action's current preview.
async fn approved_by_bob(s: &Setup, action: &Value) {
    let id = action["id"].as_str().unwrap();
    let (status, body) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": action["digest"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn resuming_after_a_failed_recheck_runs_the_dry_run_again_before_any_real_call() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 4).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;

    // Mission control cannot be reached: the dry run before executing fails, it pauses.
    s.proxy.cut();
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");
    assert!(
        detail["action"]["state_detail"]
            .as_str()
            .unwrap()
            .contains("dry run before executing failed")
    );

    // Another operator may not release the brake on alice's action; an approver may.
    let (status, body) = lifecycle_step(&s, &s.oscar, id, "resume").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs the approver role"),
        "{body}"
    );
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");

    // Resumed while still down: the dry run runs again (and fails again); nothing is sent.
    let (status, _) = lifecycle_step(&s, &s.alice, id, "resume").await;
    assert_eq!(status, 200);
    run_engine(&s.app).await;
    let kinds = audit_kinds(&s, id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "action.paused").count(),
        2,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"action.rechecked".to_owned()), "{kinds:?}");
    assert!(calls_for(&s, id).await.is_empty());

    // Back up, and the sagas changed meanwhile (one completed by hand): resumed, the dry
    // run runs again and finds it, so the action asks for approval again; no real call.
    s.proxy.restore();
    s.fleet
        .force_complete_by_hand("onboarding", &ids[0..=0])
        .await;
    let (status, _) = lifecycle_step(&s, &s.alice, id, "resume").await;
    assert_eq!(status, 200);
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "awaiting_approval", "{detail}");
    assert!(calls_for(&s, id).await.iter().all(|c| !c.applied));

    // Approved again, it runs: the dry run once more, then each saga once.
    approved_by_bob(&s, &detail["action"]).await;
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "succeeded", "{detail}");
    assert_eq!(applied_entities(&calls_for(&s, id).await), ids);
}

/// What a replica that died right after claiming an action leaves behind: the action
/// executing under a lease that has run out, nothing sent (or, with `sent`, every entity
/// marked sent and none recorded).
async fn left_by_a_dead_replica(s: &Setup, id: &str, sent: bool) {
    let url = s.app.app.config.store.effective_url();
    run_sql(
        &url,
        &format!("UPDATE action SET state = 'executing' WHERE id = '{id}'"),
    )
    .await;
    run_sql(
        &url,
        &format!("INSERT INTO action_lease (action_id, owner, epoch, expires_ms) VALUES ('{id}', 'dead-replica', 1, 1)"),
    )
    .await;
    if sent {
        run_sql(
            &url,
            &format!("UPDATE action_chunk SET sent_epoch = 1 WHERE action_id = '{id}'"),
        )
        .await;
    }
}

test_on_both_stores!(a_crash_between_claim_and_recheck_leaves_the_recheck_to_the_next_replica);

async fn a_crash_between_claim_and_recheck_leaves_the_recheck_to_the_next_replica(
    backend: Backend,
) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 3).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;
    left_by_a_dead_replica(&s, id, false).await;
    s.fleet
        .force_complete_by_hand("onboarding", &ids[1..=1])
        .await;

    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "awaiting_approval", "{detail}");
    assert!(
        calls_for(&s, id).await.iter().all(|c| !c.applied),
        "no real call"
    );
    let kinds = audit_kinds(&s, id).await;
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            "action.started",
            "action.rechecked",
            "action.preview_changed"
        ],
        "{kinds:?}"
    );
}

#[tokio::test]
async fn calls_a_dead_replica_sent_go_again_with_their_keys_and_failures_pause_the_action() {
    let s = setup(Backend::Sqlite, |config| {
        config.actions.pause_after_calls = 2;
        config.actions.pause_failure_share = 0.5;
        // The failure share is what is tested, not the canary (server/tests/pace.rs).
        config.actions.canary_entities = 0;
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 6).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;
    // A replica sent every call and died before recording one; the service is down now.
    left_by_a_dead_replica(&s, id, true).await;
    s.proxy.cut();

    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    let action_now = &detail["action"];
    assert_eq!(action_now["state"], "paused", "{detail}");
    assert!(
        action_now["state_detail"]
            .as_str()
            .unwrap()
            .contains("entities failed"),
        "{action_now}"
    );
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
    let kinds = audit_kinds(&s, id).await;
    assert!(
        !kinds.contains(&"action.rechecked".to_owned()),
        "entities sent before are not dry-run again: {kinds:?}"
    );

    // Cancelled: it ends, and its sagas are free for another action.
    let (status, cancelled) = lifecycle_step(&s, &s.alice, id, "cancel").await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, _) = lifecycle_step(&s, &s.alice, id, "resume").await;
    assert_eq!(status, 409, "an ended action stays ended");
}

test_on_both_stores!(
    a_cancel_during_execution_stops_the_calls_and_holds_the_entities_until_none_is_in_flight,
    a_cancelling_action_taken_over_holds_its_entities_while_the_old_replicas_calls_may_be_in_flight,
);

/// A replica died with calls of a cancelling action on the wire (sent, not recorded). The
/// replica that takes it over keeps the entities held until those calls have timed out
/// (a call lives up to 30 s, a lease 15 s); a lease that ran out longer ago than that frees
/// them at once. The store's clock is set by the test, through the dead lease's deadline.
async fn a_cancelling_action_taken_over_holds_its_entities_while_the_old_replicas_calls_may_be_in_flight(
    backend: Backend,
) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 3).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    left_by_a_dead_replica(&s, &id, true).await;
    let url = s.app.app.config.store.effective_url();
    let now_ms = backend.now_ms();
    run_sql(
        &url,
        &format!("UPDATE action SET state = 'cancelling' WHERE id = '{id}'"),
    )
    .await;
    let holds = format!("SELECT entity_id FROM entity_hold WHERE action_id = '{id}'");
    let held = || runboard_testkit::sql_strings(&url, &holds);

    // The dead replica's lease ran out a second ago: its calls may be in flight for 29 s more.
    run_sql(
        &url,
        &format!("UPDATE action_lease SET expires_ms = {now_ms} - 1000 WHERE action_id = '{id}'"),
    )
    .await;
    let engine = {
        let app = s.app.app.clone();
        tokio::spawn(async move { execution::step(&app).await.unwrap() })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while runboard_testkit::sql_strings(
        &url,
        &format!("SELECT owner FROM action_lease WHERE action_id = '{id}'"),
    )
    .await
        != [s.app.app.replica.clone()]
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the engine takes the action over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "cancelling", "{detail}");
    assert_eq!(
        held().await.len(),
        ids.len(),
        "held while the old calls may be in flight"
    );
    engine.abort();

    // Ran out 31 s ago: no call of it can be on the wire; the take-over frees them at once.
    run_sql(&url, &format!("UPDATE action_lease SET owner = 'dead-replica', expires_ms = {now_ms} - 31000 WHERE action_id = '{id}'")).await;
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "cancelled", "{detail}");
    assert!(
        held().await.is_empty(),
        "free once no call can be in flight"
    );
}

async fn a_cancel_during_execution_stops_the_calls_and_holds_the_entities_until_none_is_in_flight(
    backend: Backend,
) {
    // One call per saga, so that the cancel falls between calls of one action.
    let s = setup(backend, |config| {
        config.actions.concurrency = 2;
        config.actions.chunk_size = 1;
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 12).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    // Every call takes a while on the wire, so that some are in flight at the cancel.
    s.proxy.slow_down(Duration::from_millis(150));
    let engine = {
        let app = s.app.app.clone();
        tokio::spawn(async move { while execution::step(&app).await.unwrap() {} })
    };
    while !calls_for(&s, &id).await.iter().any(|c| c.applied) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Oscar, an operator who may not approve, cannot stop Alice's running action.
    let (status, body) = lifecycle_step(&s, &s.oscar, &id, "cancel").await;
    assert_eq!(status, 403, "{body}");

    let (status, cancelling) = lifecycle_step(&s, &s.alice, &id, "cancel").await;
    assert_eq!(status, 200, "{cancelling}");
    // What was let out before the cancel was recorded: nothing else may ever be sent.
    let sent_before = sent_entities(&s, &id).await;
    assert_eq!(cancelling["state"], "cancelling", "{cancelling}");
    // Its sagas stay held while calls of it may be in flight: no other action can take them.
    let held = runboard_testkit::sql_strings(
        &s.app.app.config.store.effective_url(),
        &format!("SELECT entity_id FROM entity_hold WHERE action_id = '{id}'"),
    )
    .await;
    assert_eq!(held.len(), ids.len(), "held while cancelling");
    engine.await.unwrap();
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "cancelled", "{detail}");
    let pending = detail["action"]["progress"]["pending"].as_u64().unwrap();
    assert!(
        pending > 0,
        "cancelled mid-way, not after the end: {detail}"
    );

    let called: Vec<String> = calls_for(&s, &id)
        .await
        .iter()
        .filter(|c| !c.dry_run)
        .map(|c| c.variables["ids"][0].as_str().unwrap().to_owned())
        .collect();
    for entity in &called {
        assert!(
            sent_before.contains(entity),
            "{entity} was called after the cancel was recorded (sent before it: {sent_before:?})"
        );
    }
    println!(
        "cancelled with {} of {} sagas let out before it, {} pending",
        sent_before.len(),
        ids.len(),
        pending
    );
    // Ended: the sagas are free again.
    let (status, body) = post(
        &s.app,
        &s.bob,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": &ids[..1] }, "reason": "again" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &s.app,
        &s.bob,
        &format!("/api/v1/actions/{}/submit", body["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "free once cancelled: {body}");
}

/// The entities of an action marked as sent in the store.
async fn sent_entities(s: &Setup, id: &str) -> Vec<String> {
    runboard_testkit::sql_strings(
        &s.app.app.config.store.effective_url(),
        &format!(
            "SELECT e.entity_id FROM action_entity e JOIN action_chunk c ON c.action_id = e.action_id AND c.chunk = e.chunk
             WHERE e.action_id = '{id}' AND c.sent_epoch IS NOT NULL"
        ),
    )
    .await
}

test_on_both_stores!(
    a_re_approval_after_the_money_grew_recomputes_the_money_and_the_approvals_needed,
    two_approvals_at_once_on_a_two_approval_action_end_approved,
);

async fn a_re_approval_after_the_money_grew_recomputes_the_money_and_the_approvals_needed(
    backend: Backend,
) {
    let (hook, messages) = webhook().await;
    let s = setup(backend, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.actions.extra_approval_above = ["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"]
            .map(|c| (c.to_owned(), rust_decimal::Decimal::from(100_000)))
            .into();
    })
    .await;
    let ids = failed_sagas(&s, "payments", 1).await;
    let action = submitted_retry_on(&s, "payments", &ids).await;
    let id = action["id"].as_str().unwrap();
    assert_eq!(action["approvals_needed"], 1, "small money: {action}");
    let currency = action["preview"]["money"][0]["currency"]
        .as_str()
        .unwrap()
        .to_owned();
    approved_by_bob(&s, &action).await;

    // The transfers behind the sagas grow before the action runs.
    let payments = s.fleet.service("payments");
    let grown = run_sql(
        &payments.database_url,
        &format!(
            "UPDATE transfer_event SET amount = '900000.00' WHERE amount IS NOT NULL AND transfer_id IN ('{}')",
            ids.join("', '")
        ),
    )
    .await;
    assert!(grown > 0);

    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    let now = &detail["action"];
    assert_eq!(now["state"], "awaiting_approval", "{detail}");
    assert_eq!(
        now["approvals_needed"], 2,
        "more money, one more approval: {now}"
    );
    assert_eq!(
        now["preview"]["money"],
        json!([{ "amount": "900000.00", "currency": currency }]),
        "the new money: {now}"
    );
    let said = now["state_detail"].as_str().unwrap();
    assert!(
        said.contains(&format!("now 900000.00 {currency}")),
        "{said}"
    );
    assert!(said.contains("approvals needed were 1, now 2"), "{said}");
    assert!(
        calls_for(&s, id).await.iter().all(|c| !c.applied),
        "no real call"
    );

    // The record and the webhook show the new figures and say what changed.
    let record = s
        .alice
        .get(s.app.url(&format!("/api/v1/actions/{id}/record.md")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(record.contains("900000.00"), "{record}");
    assert!(
        record.contains("approvals needed were 1, now 2"),
        "{record}"
    );
    let told = wait_for_message(&messages, "Approval is asked again").await;
    assert!(told.contains("900000.00"), "{told}");

    // Two approvers now: Bob alone does not make it run.
    approved_by_bob(&s, now).await;
    let after_bob = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(after_bob["action"]["state"], "awaiting_approval");
    let (status, body) = post(
        &s.app,
        &s.carol,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": now["digest"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
}

/// The first webhook message containing `needle`, waiting for it a while.
async fn wait_for_message(messages: &Arc<Mutex<Vec<String>>>, needle: &str) -> String {
    for _ in 0..100 {
        if let Some(found) = messages.lock().unwrap().iter().find(|m| m.contains(needle)) {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no webhook message says {needle:?}: {:?}",
        messages.lock().unwrap()
    );
}

async fn two_approvals_at_once_on_a_two_approval_action_end_approved(backend: Backend) {
    let s = setup(backend, |config| {
        for service in &mut config.services {
            service.approvals.insert("retrySagas".into(), 2);
        }
    })
    .await;
    // Several times, so that the two approvals really meet.
    for ids in failed_sagas(&s, "onboarding", 8).await.chunks(1) {
        let action = submitted_retry(&s, ids).await;
        let id = action["id"].as_str().unwrap();
        assert_eq!(action["approvals_needed"], 2);
        let path = format!("/api/v1/actions/{id}/approve");
        let body = json!({ "digest": action["digest"] });
        let (bob, carol) = tokio::join!(
            post(&s.app, &s.bob, &path, body.clone()),
            post(&s.app, &s.carol, &path, body.clone()),
        );
        assert_eq!((bob.0, carol.0), (200, 200), "{bob:?} {carol:?}");
        let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
        assert_eq!(detail["action"]["state"], "approved", "{detail}");
        assert_eq!(detail["action"]["approvals"].as_array().unwrap().len(), 2);
    }
}

/// The demo fleet checks the lease epoch as a fencing token: a real call from an older
/// epoch of an action than one it has seen (a replica that lost the lease, woken from a
/// freeze with a call already on its way) is refused and applies nothing.
#[tokio::test]
async fn the_demo_fleet_refuses_a_call_from_an_older_lease_epoch() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    let onboarding = s.fleet.service("onboarding");
    let call = |saga: &str, epoch: u32| {
        reqwest::Client::new()
            .post(&onboarding.graphql_url)
            .header("x-runboard-action", "fenced-action")
            .header("x-runboard-lease-epoch", epoch.to_string())
            .header("idempotency-key", format!("runboard:fenced-action:{saga}"))
            .json(&json!({
                "query": "mutation($ids: [ID!]!) { retrySagas(ids: $ids, dryRun: false) { dryRun } }",
                "variables": { "ids": [saga] },
            }))
            .send()
    };
    let newer: Value = call(&ids[0], 3).await.unwrap().json().await.unwrap();
    assert!(newer.get("errors").is_none(), "{newer}");
    let older: Value = call(&ids[1], 2).await.unwrap().json().await.unwrap();
    assert!(
        older["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("stale lease"),
        "{older}"
    );
    let log = s.fleet.fleet.call_log("onboarding").await.unwrap();
    let applied: Vec<Option<i64>> = log
        .iter()
        .filter(|c| c.action.as_deref() == Some("fenced-action") && c.applied)
        .map(|c| c.lease_epoch)
        .collect();
    assert_eq!(applied, [Some(3)], "only the newer epoch's call applied");
}

/// An ID is whatever a user types, so one spelled like the label of a single call's row is
/// an entity like any other: submitting holds it, and a second action on it waits.
#[tokio::test]
async fn an_entity_named_like_the_single_call_label_is_held_like_any_other() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let named = vec![runboard_core::actions::SINGLE_CALL.to_owned()];
    let first = submitted_retry(&s, &named).await;
    let (status, refused) = ask_and_submit(
        &s,
        &s.bob,
        "onboarding",
        &named,
        json!({ "reason": "INC-4712: the same saga again" }),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "is already in action {}",
            first["id"].as_str().unwrap()
        )),
        "{message}"
    );
}

/// Alice asks to retry one failed saga and submits it with `reason`; returns the action.
async fn submitted_with_reason(s: &Setup, reason: &str) -> Value {
    let ids = failed_sagas(s, "onboarding", 1).await;
    let (status, action) =
        ask_and_submit(s, &s.alice, "onboarding", &ids, json!({ "reason": reason })).await;
    assert_eq!(status, 200, "{action}");
    action
}

/// A reason is read by everyone in the channel, in a trusted bot's message: it must not
/// ping the channel, carry a link dressed as a button, or forge a line of its own.
#[tokio::test]
async fn a_reason_cannot_ping_the_channel_or_forge_a_link_or_a_line_in_the_webhook() {
    let (hook, messages) = webhook().await;
    let s = setup(Backend::Sqlite, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
    })
    .await;
    submitted_with_reason(
        &s,
        "<!channel> <https://evil.example|Approve in Runboard>\n:white_check_mark: approved by the CFO",
    )
    .await;
    let message = wait_for_message(&messages, "asks for approval").await;
    assert!(!message.contains("<!channel>"), "{message}");
    assert!(!message.contains("<https://"), "{message}");
    assert!(
        message.contains("&lt;!channel&gt; &lt;https://evil.example|Approve in Runboard&gt;"),
        "the reason is there, as text: {message}"
    );
    assert!(
        !message
            .lines()
            .any(|line| line.starts_with(":white_check_mark:")),
        "no line of the message is the reason's: {message}"
    );
}

/// The Markdown record is reviewed on a code host: what a requester or a service wrote must
/// show as typed there, not as HTML, an image, a link, a code block or extra table cells.
#[tokio::test]
async fn a_reason_shows_as_typed_in_the_markdown_record() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let reason = "<img src=x onerror=alert(1)> [approved](https://evil.example) ![](https://evil.example/t.png) `code` | forged cell |\n## Forged heading";
    let action = submitted_with_reason(&s, reason).await;
    let record = s
        .alice
        .get(s.app.url(&format!(
            "/api/v1/actions/{}/record.md",
            action["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = record
        .lines()
        .find(|line| line.starts_with("| Reason |"))
        .unwrap_or_else(|| panic!("a reason row:\n{record}"));
    assert_eq!(
        line,
        r"| Reason | \<img src=x onerror=alert(1)\> \[approved\](https://evil.example) !\[\](https://evil.example/t.png) \`code\` \| forged cell \| ## Forged heading |",
    );
    assert!(!record.contains("\n## Forged heading"), "{record}");
}

/// Every viewer sees an action's preview: a key in the endpoint's query stays on the
/// server, while the calls still go to the endpoint as configured.
#[tokio::test]
async fn the_preview_shows_the_endpoint_without_the_key_in_its_query() {
    let s = setup(Backend::Sqlite, |config| {
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.graphql_url.set_query(Some("api_key=s3cret"));
    })
    .await;
    let action = submitted_with_reason(&s, "INC-4713").await;
    let id = action["id"].as_str().unwrap();
    let seen = get(&s.app, &s.vera, &format!("/api/v1/actions/{id}")).await;
    let endpoint = seen["action"]["preview"]["endpoint"].as_str().unwrap();
    assert!(endpoint.ends_with("/graphql?…"), "{endpoint}");
    assert!(!seen.to_string().contains("s3cret"), "{seen}");
    assert_eq!(
        seen["action"]["preview"]["dry_run"]["kind"], "done",
        "the dry run went through the configured URL: {seen}"
    );
}

/// A service's endpoint with a key in its query, unreachable: the preview's error, the
/// pause reason, the Slack message and the registry each say where it failed, never the key.
#[tokio::test]
async fn an_unreachable_endpoints_key_is_in_no_error_pause_reason_or_slack_message() {
    let (hook, messages) = webhook().await;
    let s = setup(Backend::Sqlite, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.graphql_url.set_query(Some("key=s3cret-key"));
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;

    s.proxy.cut();
    run_engine(&s.app).await;
    let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");
    let reason = detail["action"]["state_detail"].as_str().unwrap();
    assert!(
        reason.contains("/graphql?…"),
        "the reason says where: {reason}"
    );
    assert!(!detail.to_string().contains("s3cret"), "{detail}");
    let paused = wait_for_message(&messages, "paused").await;
    assert!(paused.contains("/graphql?…"), "{paused}");

    // A preview asked for while it is down fails, saying where, not with what key.
    let (_, refused) = post(
        &s.app,
        &s.alice,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert!(
        refused.to_string().contains("/graphql?… cannot be reached"),
        "{refused}"
    );

    let services = get(&s.app, &s.vera, "/api/v1/services").await;
    for seen in [refused.to_string(), services.to_string()]
        .into_iter()
        .chain(messages.lock().unwrap().iter().cloned())
    {
        assert!(!seen.contains("s3cret"), "{seen}");
    }
}

/// Seconds the provider's client-credentials tokens live in the test below.
const ENGINE_TOKEN_LIFETIME: u32 = 3;

fn engine_client() -> MachineClient<'static> {
    MachineClient {
        client_id: "runboard-engine",
        client_secret: "engine-s3cret",
        token_lifetime_secs: ENGINE_TOKEN_LIFETIME,
    }
}

/// The OpenID provider with Runboard's machine client, on `port` (0: any).
fn token_provider(port: u16) -> OidcProvider {
    OidcProvider::start(
        port,
        "runboard-web",
        "unused",
        "http://127.0.0.1:1/cb",
        &[],
        Some(&engine_client()),
    )
}

#[tokio::test]
async fn calls_to_a_service_that_takes_provider_tokens_carry_runboards_own_and_a_new_one_after_expiry()
 {
    let provider = token_provider(0);
    let issuer: url::Url = provider.issuer.parse().unwrap();
    let audience = "urn:demo-fleet:mission-control";
    let fleet = start_fleet_checking(
        Backend::Sqlite,
        runboard_fleet::CallerCheck::ProviderTokens {
            issuer: issuer.clone(),
            audience: audience.to_owned(),
        },
    )
    .await;
    // The service takes no call without the provider's token.
    let refused = reqwest::Client::new()
        .post(&fleet.service("onboarding").graphql_url)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let s = setup_with(fleet, Backend::Sqlite, |config| {
        config.mission_control_tokens = Some(runboard_core::config::MissionControlTokens {
            token_url: issuer.join("/token").unwrap(),
            client_id: engine_client().client_id.to_owned(),
            client_secret: Some(engine_client().client_secret.into()),
        });
        for service in &mut config.services {
            service.token_audience = Some(audience.to_owned());
        }
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 9).await;
    let (first, second, third) = (&ids[0..3], &ids[3..6], &ids[6..9]);
    let ran = |id: String| {
        let s = &s;
        async move {
            run_engine(&s.app).await;
            let detail = get(&s.app, &s.alice, &format!("/api/v1/actions/{id}")).await;
            (
                detail["action"]["state"].as_str().unwrap().to_owned(),
                detail,
            )
        }
    };

    // Previewed, approved and run: every call, dry run and real, names Runboard's client.
    let action = submitted_retry(&s, first).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    let calls = calls_for(&s, &id).await;
    assert_eq!(applied_entities(&calls), first);
    assert!(
        calls
            .iter()
            .all(|c| c.caller.as_deref() == Some("runboard-engine")),
        "{:?}",
        calls.iter().map(|c| &c.caller).collect::<Vec<_>>()
    );

    // Past the token's expiry (the service refuses an expired token at once): the next
    // action gets a new one before its first call.
    tokio::time::sleep(Duration::from_secs(u64::from(ENGINE_TOKEN_LIFETIME) + 1)).await;
    let action = submitted_retry(&s, second).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    assert_eq!(applied_entities(&calls_for(&s, &id).await), second);

    // Approved, then the provider goes down and the token expires: the action pauses
    // saying why, and nothing reaches the service.
    let action = submitted_retry(&s, third).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let port = provider.port();
    drop(provider);
    tokio::time::sleep(Duration::from_secs(u64::from(ENGINE_TOKEN_LIFETIME) + 1)).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "paused", "{detail}");
    let reason = detail["action"]["state_detail"].as_str().unwrap();
    assert!(
        reason.contains("could not get its token for urn:demo-fleet:mission-control"),
        "{reason}"
    );
    assert!(calls_for(&s, &id).await.is_empty());

    // Back (with new signing keys), and resumed: each saga applied once.
    let _provider = token_provider(port);
    let (status, body) = lifecycle_step(&s, &s.alice, &id, "resume").await;
    assert_eq!(status, 200, "{body}");
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    assert_eq!(applied_entities(&calls_for(&s, &id).await), third);
}
