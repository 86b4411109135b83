//! Corrective actions through the API against the demo fleet (real GraphQL over HTTP):
//! preview with the service's dry run, the two-person rule, approvals bound to the
//! preview, expiry, and execution that calls each entity once.

use crate::support as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Person, Setup, TestApp, applied_entities, entity_ids, start_fleet_checking, webhook};
use runboard_core::execution;
use runboard_testkit::{Backend, MachineClient, OidcProvider, run_sql, test_on_both_stores};
use serde_json::{Value, json};

mod approval;
mod asking;
mod cancel;
mod provider_tokens;
mod takeover;
mod words;

/// The shared setup as every test here has it: onboarding's mission control behind a
/// proxy the test can cut or slow down, Runboard's config changed by `configure`.
async fn setup(
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    common::setup(backend)
        .onboarding_behind_proxy()
        .configure(configure)
        .await
}

/// [`setup`] over a demo fleet the test started.
async fn setup_with(
    fleet: common::TestFleet,
    backend: Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config),
) -> Setup {
    common::setup_with(fleet, backend)
        .onboarding_behind_proxy()
        .configure(configure)
        .await
}

/// Failed sagas of a service, oldest first, as the API lists them.
async fn failed_sagas(s: &Setup, service: &str, n: usize) -> Vec<String> {
    common::failed_saga_ids(&s.app.address, &s.alice.client, service, n).await
}

/// Alice asks to retry `ids` and submits it; returns the action.
async fn submitted_retry(s: &Setup, ids: &[String]) -> Value {
    submitted_retry_on(s, "onboarding", ids).await
}

/// Alice asks to retry `ids` of `service` and submits it; returns the action.
async fn submitted_retry_on(s: &Setup, service: &str, ids: &[String]) -> Value {
    let (status, action) = ask_and_submit(
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

/// `person` asks to retry `ids` of `service` and submits the action with `submission`;
/// the submission's status and answer.
async fn ask_and_submit(
    person: &Person,
    service: &str,
    ids: &[String],
    submission: Value,
) -> (u16, Value) {
    let (status, action) = person
        .post(
            "/api/v1/actions",
            json!({ "service": service, "mutation": "retrySagas", "arguments": { "ids": ids } }),
        )
        .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap();
    person
        .post(&format!("/api/v1/actions/{id}/submit"), submission)
        .await
}

/// Runs the execution engine until it has nothing left to do.
async fn run_engine(app: &TestApp) {
    for _ in 0..200 {
        if !execution::work_on_next_due(&app.app).await.unwrap() {
            return;
        }
    }
    panic!("the engine kept finding work");
}

/// `person` resumes or cancels an action: `(status, body)`.
async fn lifecycle_step(person: &Person, id: &str, step: &str) -> (u16, Value) {
    person
        .post(&format!("/api/v1/actions/{id}/{step}"), json!({}))
        .await
}

/// The audit kinds of an action, in order.
async fn audit_kinds(s: &Setup, id: &str) -> Vec<String> {
    s.alice.get(&format!("/api/v1/actions/{id}")).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Bob approves the action's current preview.
async fn approved_by_bob(s: &Setup, action: &Value) {
    let id = action["id"].as_str().unwrap();
    let (status, body) = s.bob.approve(id, &action["digest"]).await;
    assert_eq!(status, 200, "{body}");
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
