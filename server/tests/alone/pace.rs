//! Execution that paces itself (#33), against the demo fleet over real HTTP: a canary
//! first, a pace that holds and that an operator changes mid-run, the brake when the
//! service slows down, and the ETA. Rates are read from the service's own call log, and
//! by the wall clock: here, one test at a time (each holds [`ALONE`]), so that on a small
//! machine no other test's work slows the pace they measure.

use crate::ALONE;
use crate::support as common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Setup, setup_with, start_fleet};
use reqwest::Method;
use runboard_core::config::Config;
use runboard_core::execution;
use runboard_fleet::CallRecord;
use runboard_testkit::Backend;
use serde_json::{Value, json};

const OUTAGE: &str = "upstream provider outage: connection refused";

/// The shared setup over a demo fleet with `outage` failed onboarding sagas in one error
/// group, and Runboard configured by `configure`.
async fn setup(backend: Backend, outage: u64, configure: impl FnOnce(&mut Config)) -> Setup {
    let fleet = start_fleet(backend).await;
    let onboarding = fleet.service("onboarding").clone();
    runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", outage)
        .await
        .unwrap();
    setup_with(fleet, backend).configure(configure).await
}

async fn action(s: &Setup, id: &str) -> Value {
    let path = format!("/api/v1/actions/{id}?limit=1");
    s.alice.get(&path).await["action"].clone()
}

/// Alice asks for a retry of the outage's sagas (with `extra` merged into the request),
/// submits it, and Bob approves it; returns its id.
async fn approved(s: &Setup, extra: Value) -> String {
    let mut request = json!({
        "service": "onboarding", "mutation": "retrySagas", "arguments": {},
        "selection": { "error_group": OUTAGE },
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let asked = s.alice.post_ok("/api/v1/actions", request).await;
    let id = asked["id"].as_str().unwrap().to_owned();
    let reason = json!({ "reason": "INC-33: the provider is back" });
    s.alice
        .post_ok(&format!("/api/v1/actions/{id}/submit"), reason)
        .await;
    let (status, approved) = s.bob.approve(&id, &asked["digest"]).await;
    assert!((200..300).contains(&status), "{status} {approved}");
    id
}

/// The engine, working on its own task as `runboard serve` runs it, until aborted.
fn engine(s: &Setup) -> tokio::task::JoinHandle<()> {
    let app: Arc<runboard_core::App> = s.app.app.clone();
    tokio::spawn(async move {
        loop {
            if !execution::work_on_next_due(&app).await.unwrap() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

/// The action once `done` says so about it, read every 100 ms; a generous deadline.
async fn wait_for(s: &Setup, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let now = action(s, id).await;
        if done(&now) {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for the action to be {what}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ended(action: &Value) -> bool {
    !matches!(
        action["state"].as_str(),
        Some("approved" | "executing" | "cancelling")
    )
}

/// The real calls onboarding received for the action, oldest first.
async fn real_calls(s: &Setup, id: &str) -> Vec<CallRecord> {
    common::real_calls_of(&s.fleet, "onboarding", id).await
}

fn entities_in(call: &CallRecord) -> usize {
    call.variables["ids"].as_array().unwrap().len()
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap() as f64 / 1e6
}

async fn canary_goes_alone_and_the_next_waits_for_its_result(backend: Backend) {
    let _alone = ALONE.lock().await;
    let s = setup(backend, 60, |config| {
        config.actions.chunk_size = 20;
        config.actions.canary_entities = 5;
    })
    .await;
    let id = approved(&s, json!({})).await;
    // Every answer now takes 400 ms: a second call sent before the canary's result would
    // reach the service less than that after it.
    let latency = Duration::from_millis(400);
    s.fleet.fleet.set_latency("onboarding", latency).unwrap();
    let engine = engine(&s);
    let done = wait_for(&s, &id, "done", ended).await;
    engine.abort();
    assert_eq!(done["state"], "succeeded", "{done}");

    let calls = real_calls(&s, &id).await;
    let sizes: Vec<usize> = calls.iter().map(entities_in).collect();
    assert_eq!(sizes[0], 5, "the canary goes first, alone: {sizes:?}");
    // The rest leave side by side, in whatever order they arrive.
    let mut rest = sizes[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(
        rest,
        [5, 10, 20, 20],
        "then calls that double up to the chunk size: {sizes:?}"
    );
    let gap = seconds_between(calls[0].received_at, calls[1].received_at);
    assert!(
        gap >= latency.as_secs_f64(),
        "the second call left {gap:.3}s after the canary reached the service, before its answer could have come back"
    );
}

#[tokio::test]
async fn the_first_call_is_a_canary_and_the_second_leaves_after_its_result_sqlite() {
    canary_goes_alone_and_the_next_waits_for_its_result(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_first_call_is_a_canary_and_the_second_leaves_after_its_result_postgres() {
    canary_goes_alone_and_the_next_waits_for_its_result(Backend::Postgres).await;
}

#[tokio::test]
async fn a_refused_canary_pauses_the_action_with_one_call_sent() {
    let _alone = ALONE.lock().await;
    let s = setup(Backend::Sqlite, 40, |config| {
        config.actions.chunk_size = 10;
        config.actions.canary_entities = 4;
    })
    .await;
    let id = approved(&s, json!({})).await;
    let path = format!("/api/v1/actions/{id}?limit=4");
    let first_entities = s.alice.get(&path).await;
    let held = first_entities["entities"][2]["entity_id"].clone();
    s.fleet
        .fleet
        .set_legal_hold("onboarding", vec![held.as_str().unwrap().to_owned()])
        .unwrap();

    while execution::work_on_next_due(&s.app.app).await.unwrap() {}
    let paused = action(&s, &id).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    let why = paused["state_detail"].as_str().unwrap();
    assert!(
        why.contains("canary") && why.contains("legal hold"),
        "paused with the service's words: {why}"
    );
    let calls = real_calls(&s, &id).await;
    assert_eq!(calls.len(), 1, "one call sent: {calls:?}");
    assert_eq!(entities_in(&calls[0]), 4);
    assert!(!calls[0].applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_paced_at_1000_a_second_on_20000_sagas_takes_20s_and_its_eta_holds() {
    let _alone = ALONE.lock().await;
    const SAGAS: u64 = 20_000;
    // On SQLite: there the demo service (a debug build, on two cores) answers faster than
    // 1,000 sagas a second, so what is measured is the pace, not the service.
    let s = setup(Backend::Sqlite, SAGAS, |_| ()).await;
    let id = approved(&s, json!({ "pace": { "entities_per_second": 1000 } })).await;
    let asked = action(&s, &id).await;
    assert_eq!(asked["pace"]["entities_per_second"], 1000.0, "{asked}");
    let estimate = asked["estimated_seconds"].as_u64().unwrap();
    // At least what the pace allows; longer if the dry run of the same calls took longer.
    assert!(
        estimate >= 19,
        "the preview estimates the run at the pace: {estimate}s"
    );

    let engine = engine(&s);
    let quarter = wait_for(&s, &id, "a quarter done", |a| {
        ended(a) || a["progress"]["succeeded"].as_u64().unwrap() >= SAGAS / 4
    })
    .await;
    let read_at = Utc::now();
    let eta: DateTime<Utc> = serde_json::from_value(quarter["progress"]["eta"].clone())
        .unwrap_or_else(|_| panic!("an ETA at a quarter: {quarter}"));
    let rate = quarter["progress"]["execution"]["entities_per_second"]
        .as_f64()
        .unwrap();
    let done = wait_for(&s, &id, "done", ended).await;
    engine.abort();
    assert_eq!(done["state"], "succeeded", "{done}");

    let calls = real_calls(&s, &id).await;
    let (first, last) = (calls[0].received_at, calls[calls.len() - 1].received_at);
    let took = seconds_between(first, last);
    println!(
        "{SAGAS} sagas at 1,000/s, estimated at {estimate}s: {took:.1}s from the first call to the last, {} calls; at a quarter: {rate:.0} entities/s, ETA {:.1}s after the end",
        calls.len(),
        seconds_between(last, eta)
    );
    assert!(
        (17.0..=23.0).contains(&took),
        "20 s ± 15 %, by the service's call log: {took:.1}s"
    );
    let left = seconds_between(read_at, last);
    let off = seconds_between(last, eta).abs();
    assert!(
        off <= 0.25 * seconds_between(first, last).max(left),
        "the ETA read at a quarter ({eta}) is within 25 % of the end ({last}): {off:.1}s off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_repaced_mid_run_changes_its_rate_within_two_calls() {
    let _alone = ALONE.lock().await;
    let s = setup(Backend::Sqlite, 3_000, |config| {
        config.actions.chunk_size = 100;
    })
    .await;
    let id = approved(&s, json!({ "pace": { "entities_per_second": 1000 } })).await;
    let engine = engine(&s);
    wait_for(&s, &id, "a third done", |a| {
        ended(a) || a["progress"]["succeeded"].as_u64().unwrap() >= 1_000
    })
    .await;
    let repace = json!({ "entities_per_second": 200 });
    let path = format!("/api/v1/actions/{id}/pace");
    let repaced = s.alice.post_ok(&path, repace).await;
    let at = Utc::now();
    assert_eq!(repaced["pace"]["entities_per_second"], 200.0, "{repaced}");
    // Four calls of 100 after the change: two seconds at the new pace.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let calls = loop {
        let calls = real_calls(&s, &id).await;
        if calls.iter().filter(|c| c.received_at > at).count() >= 4 {
            break calls;
        }
        assert!(std::time::Instant::now() < deadline, "{calls:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let path = format!("/api/v1/actions/{id}/cancel");
    s.alice.call(Method::POST, &path, None).await;
    wait_for(&s, &id, "cancelled", ended).await;
    engine.abort();

    let before: Vec<&CallRecord> = calls.iter().filter(|c| c.received_at <= at).collect();
    let after: Vec<&CallRecord> = calls.iter().filter(|c| c.received_at > at).collect();
    // Before: 1,000 a second, calls of 100 ten a second (more slowly if the machine is slow).
    let span = seconds_between(before[0].received_at, before[before.len() - 1].received_at);
    let sent: usize = before[1..].iter().map(|c| entities_in(c)).sum();
    let rate_before = sent as f64 / span;
    assert!(rate_before > 400.0, "{rate_before:.0} entities/s before");
    // After: from the second call after the change on, each leaves at 200 a second.
    let span_after = seconds_between(after[0].received_at, after[after.len() - 1].received_at);
    let sent_after: usize = after[1..].iter().map(|c| entities_in(c)).sum();
    println!(
        "re-paced from 1,000 to 200 entities/s: {rate_before:.0} before, {:.0} after, by the call log",
        sent_after as f64 / span_after
    );
    for pair in after.windows(2) {
        let gap = seconds_between(pair[0].received_at, pair[1].received_at);
        let due = entities_in(pair[1]) as f64 / 200.0;
        assert!(
            gap >= 0.9 * due,
            "a call of {} left {gap:.3}s after the one before, at 200/s it is due after {due:.3}s",
            entities_in(pair[1])
        );
    }
    let audit = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    let paced: Vec<&Value> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "action.paced")
        .collect();
    assert_eq!(paced.len(), 2, "the pace asked for and the change: {audit}");
    assert_eq!(paced[1]["actor"], "test:alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_latency_injected_the_engine_halves_its_calls_in_flight_and_the_page_says_so() {
    let _alone = ALONE.lock().await;
    let s = setup(Backend::Postgres, 400, |config| {
        config.actions.chunk_size = 10;
        config.actions.concurrency = 4;
        config.actions.brake_latency = Duration::from_millis(300);
    })
    .await;
    let id = approved(&s, json!({})).await;
    s.fleet
        .fleet
        .set_latency("onboarding", Duration::from_millis(700))
        .unwrap();
    let engine = engine(&s);
    let braked = wait_for(&s, &id, "braked", |a| {
        ended(a)
            || a["progress"]["execution"]["in_flight"]
                .as_u64()
                .is_some_and(|n| n < 4)
    })
    .await;
    let execution = &braked["progress"]["execution"];
    assert_eq!(execution["in_flight"], 2, "{braked}");
    assert_eq!(execution["concurrency"], 4);
    let brake = execution["brake"].as_str().unwrap().to_owned();
    assert!(brake.contains("2 of 4 calls in flight"), "{brake}");
    let page = s
        .app
        .get(&format!("/actions/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("2 of 4 calls in flight") && page.contains("braking"),
        "the action page says so: {page}"
    );

    // Fast again: it widens back while the answers stay healthy.
    s.fleet
        .fleet
        .set_latency("onboarding", Duration::ZERO)
        .unwrap();
    let widened = wait_for(&s, &id, "widened", |a| {
        ended(a) || a["progress"]["execution"]["in_flight"] == 4
    })
    .await;
    engine.abort();
    assert_eq!(
        widened["progress"]["execution"]["in_flight"], 4,
        "{widened}"
    );
    assert!(
        widened["progress"]["execution"]["brake"].is_null(),
        "{widened}"
    );
}
