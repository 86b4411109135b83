//! An action left by a replica that died is taken over: the recheck runs again, calls in
//! flight go again with their keys, and an older lease epoch is refused.

use super::*;

#[tokio::test]
async fn resuming_after_a_failed_recheck_runs_the_dry_run_again_before_any_real_call() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 4).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;

    // Mission control cannot be reached: the dry run before executing fails, it pauses.
    s.proxy().cut();
    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");
    assert!(
        detail["action"]["state_detail"]
            .as_str()
            .unwrap()
            .contains("dry run before executing failed")
    );

    // Another operator may not release the brake on alice's action; an approver may.
    let (status, body) = lifecycle_step(&s.oscar, id, "resume").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs the approver role"),
        "{body}"
    );
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");

    // Resumed while still down: the dry run runs again (and fails again); nothing is sent.
    let (status, _) = lifecycle_step(&s.alice, id, "resume").await;
    assert_eq!(status, 200);
    run_engine(&s.app).await;
    let kinds = audit_kinds(&s, id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "action.paused").count(),
        2,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"action.rechecked".to_owned()), "{kinds:?}");
    assert!(s.fleet.keyed_calls("onboarding", id).await.is_empty());

    // Back up, and the sagas changed meanwhile (one completed by hand): resumed, the dry
    // run runs again and finds it, so the action asks for approval again; no real call.
    s.proxy().restore();
    s.fleet
        .force_complete_by_hand("onboarding", &ids[0..=0])
        .await;
    let (status, _) = lifecycle_step(&s.alice, id, "resume").await;
    assert_eq!(status, 200);
    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "awaiting_approval", "{detail}");
    assert!(
        s.fleet
            .keyed_calls("onboarding", id)
            .await
            .iter()
            .all(|c| !c.applied)
    );

    // Approved again, it runs: the dry run once more, then each saga once.
    approved_by_bob(&s, &detail["action"]).await;
    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "succeeded", "{detail}");
    assert_eq!(
        applied_entities(&s.fleet.keyed_calls("onboarding", id).await),
        ids
    );
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
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "awaiting_approval", "{detail}");
    assert!(
        s.fleet
            .keyed_calls("onboarding", id)
            .await
            .iter()
            .all(|c| !c.applied),
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
        // The failure share is what is tested, not the canary (server/tests/it/pace.rs).
        config.actions.canary_entities = 0;
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 6).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;
    // A replica sent every call and died before recording one; the service is down now.
    left_by_a_dead_replica(&s, id, true).await;
    s.proxy().cut();

    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
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
    let (status, cancelled) = lifecycle_step(&s.alice, id, "cancel").await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["state"], "cancelled");
    let (status, _) = lifecycle_step(&s.alice, id, "resume").await;
    assert_eq!(status, 409, "an ended action stays ended");
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
