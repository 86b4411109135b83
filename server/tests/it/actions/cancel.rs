//! Cancelling a running action: the calls stop, and its entities stay held while a call may
//! be in flight.

use super::*;

test_on_both_stores!(
    a_cancel_during_execution_stops_the_calls_and_holds_the_entities_until_none_is_in_flight,
    a_cancelling_action_taken_over_holds_its_entities_while_the_old_replicas_calls_may_be_in_flight
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
        tokio::spawn(async move { execution::work_on_next_due(&app).await.unwrap() })
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
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
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
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
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
    s.proxy().slow_down(Duration::from_millis(150));
    let engine = {
        let app = s.app.app.clone();
        tokio::spawn(async move { while execution::work_on_next_due(&app).await.unwrap() {} })
    };
    while !s
        .fleet
        .keyed_calls("onboarding", &id)
        .await
        .iter()
        .any(|c| c.applied)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Oscar, an operator who may not approve, cannot stop Alice's running action.
    let (status, body) = lifecycle_step(&s.oscar, &id, "cancel").await;
    assert_eq!(status, 403, "{body}");

    let (status, cancelling) = lifecycle_step(&s.alice, &id, "cancel").await;
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
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "cancelled", "{detail}");
    let pending = detail["action"]["progress"]["pending"].as_u64().unwrap();
    assert!(
        pending > 0,
        "cancelled mid-way, not after the end: {detail}"
    );

    let called: Vec<String> = s
        .fleet
        .keyed_calls("onboarding", &id)
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
    let (status, body) = s.bob.post("/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": &ids[..1] }, "reason": "again" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .bob
        .post(
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
