//! The contract's actions: a dry run changes nothing and a retry moves sagas on, an
//! idempotency key applies once, a bearer token is required, batch items are retried, and
//! introspection lists the actions with their dry runs.

use super::*;

on_both_backends!(
    dry_run_changes_nothing_and_retry_moves_sagas_on,
    same_idempotency_key_applies_once,
    bearer_token_is_required,
    failed_batch_items_are_retried,
    introspection_lists_actions_with_dry_run,
    stopped_service_is_unreachable
);

async fn dry_run_changes_nothing_and_retry_moves_sagas_on(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let failed = failed_ids(&fleet, "onboarding", 3).await;
    let done = completed_id(&fleet, "onboarding").await;
    let mut ids = failed.clone();
    ids.push(done.clone());
    let before = supervisor_rows(&fleet, "onboarding").await;

    let preview = fleet
        .graphql("onboarding", RETRY, json!({ "ids": ids, "dryRun": true }))
        .await;
    let preview = &preview["retrySagas"];
    assert_eq!(preview["dryRun"], true);
    let effects = preview["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 4);
    for (effect, id) in effects.iter().zip(&failed) {
        assert_eq!(effect["entityId"], id.as_str());
        assert!(
            effect["description"]
                .as_str()
                .unwrap()
                .starts_with("retry "),
            "{effect}"
        );
    }
    assert_eq!(effects[3]["entityId"], done.as_str());
    assert!(
        effects[3]["description"]
            .as_str()
            .unwrap()
            .starts_with("skipped: ")
    );
    assert_eq!(supervisor_rows(&fleet, "onboarding").await, before);

    let applied = fleet
        .graphql("onboarding", RETRY, json!({ "ids": ids, "dryRun": false }))
        .await;
    assert_eq!(applied["retrySagas"]["dryRun"], false);
    assert_eq!(
        applied["retrySagas"]["effects"], preview["effects"],
        "a real call does what its dry run said"
    );
    let after = supervisor_rows(&fleet, "onboarding").await;
    for id in &failed {
        let row = after.iter().find(|r| r[0].as_deref() == Some(id)).unwrap();
        let was = before.iter().find(|r| r[0].as_deref() == Some(id)).unwrap();
        assert_eq!(row[1].as_deref(), Some("no"));
        assert_eq!(row[2], None, "the error is cleared");
        assert_ne!(row[3], was[3], "updated_at moves");
    }
    let untouched = |rows: &Vec<Vec<Option<String>>>| {
        rows.iter()
            .filter(|r| !failed.contains(r[0].as_ref().unwrap()))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(untouched(&after), untouched(&before));

    let log = fleet.fleet.call_log("onboarding").await.unwrap();
    assert_eq!(log.len(), 2);
    assert!(log[0].dry_run && !log[0].applied);
    assert!(!log[1].dry_run && log[1].applied);
    assert_eq!(log[1].mutation, "retrySagas");
    assert_eq!(log[1].variables["ids"], json!(ids));
}

async fn same_idempotency_key_applies_once(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    fleet.fleet.set_fix_deployed(true);
    let failed = failed_ids(&fleet, "payouts", 2).await;
    let headers = [
        ("Idempotency-Key", "action-7:batch-1"),
        ("X-Runboard-Action", "action-7"),
        ("X-Runboard-Requester", "alice"),
        ("X-Runboard-Approvers", "bob"),
    ];
    let variables = json!({ "ids": failed, "dryRun": false });
    let (status, first) = fleet
        .graphql_with("payouts", RETRY, variables.clone(), &headers)
        .await;
    assert_eq!(status, 200, "{first}");
    let after_first = supervisor_rows(&fleet, "payouts").await;
    for id in &failed {
        let row = after_first
            .iter()
            .find(|r| r[0].as_deref() == Some(id))
            .unwrap();
        assert_eq!(
            row[1].as_deref(),
            Some("yes"),
            "with the fix deployed a retry completes"
        );
    }

    let (status, second) = fleet
        .graphql_with("payouts", RETRY, variables, &headers)
        .await;
    assert_eq!(status, 200);
    assert_eq!(second, first, "the first response, replayed");
    assert_eq!(supervisor_rows(&fleet, "payouts").await, after_first);

    let log = fleet.fleet.call_log("payouts").await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log.iter().filter(|c| c.applied).count(), 1);
    assert!(log.iter().all(|c| {
        c.idempotency_key.as_deref() == Some("action-7:batch-1")
            && c.action.as_deref() == Some("action-7")
            && c.requester.as_deref() == Some("alice")
            && c.approvers.as_deref() == Some("bob")
    }));
}

async fn bearer_token_is_required(backend: Backend) {
    let fleet = TestFleet::start(backend, Some("s3cret")).await;
    let query = json!({ "query": "{ health }" });
    let url = &fleet.service("payments").graphql_url;
    for authorization in [None, Some("Bearer wrong"), Some("s3cret")] {
        let mut request = fleet.http.post(url).json(&query);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
    }
    let (status, body) = fleet
        .graphql_with(
            "payments",
            "{ health }",
            json!({}),
            &[("Authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!((status, &body["data"]["health"]), (200, &json!("ok")));
    assert!(
        fleet.fleet.call_log("payments").await.unwrap().is_empty(),
        "refused calls never reach mission control"
    );
}

async fn failed_batch_items_are_retried(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let failed = fleet
        .rows(
            "payouts",
            "SELECT i.batch_id, i.item_id, i.error FROM batch_item i \
             JOIN batch_run r ON r.batch_id = i.batch_id \
             WHERE i.status = 'failed' AND r.finished_at IS NOT NULL ORDER BY i.item_id LIMIT 2",
        )
        .await;
    assert_eq!(failed.len(), 2, "last week's batch has failed items");
    let batch_id = failed[0][0].clone().unwrap();
    let items: Vec<String> = failed.iter().map(|r| r[1].clone().unwrap()).collect();
    let retry = "mutation($batch: ID!, $items: [ID!]!, $dryRun: Boolean!) {
        retryBatchItems(batchId: $batch, itemIds: $items, dryRun: $dryRun) {
            effects { entityId description amount currency } } }";
    let sql = format!(
        "SELECT status FROM batch_item WHERE item_id IN ('{}', '{}') ORDER BY item_id",
        items[0], items[1]
    );
    let status_of = async |fleet: &TestFleet| {
        fleet
            .rows("payouts", &sql)
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect::<Vec<_>>()
    };

    let preview = fleet
        .graphql(
            "payouts",
            retry,
            json!({ "batch": batch_id, "items": items, "dryRun": true }),
        )
        .await;
    let effects = preview["retryBatchItems"]["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 2);
    assert!(effects.iter().all(|e| e["amount"].is_string()));
    assert_eq!(status_of(&fleet).await, ["failed", "failed"]);

    fleet
        .graphql(
            "payouts",
            retry,
            json!({ "batch": batch_id, "items": items, "dryRun": false }),
        )
        .await;
    assert_eq!(status_of(&fleet).await, ["pending", "pending"]);
    let reopened = fleet
        .rows(
            "payouts",
            &format!(
                "SELECT name FROM batch_run WHERE batch_id = '{batch_id}' AND finished_at IS NULL"
            ),
        )
        .await;
    assert_eq!(reopened.len(), 1, "the batch runs again");

    let (_, unknown) = fleet
        .graphql_with(
            "payouts",
            retry,
            json!({ "batch": "no-such-batch", "items": items, "dryRun": true }),
            &[],
        )
        .await;
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no batch")
    );
}

async fn introspection_lists_actions_with_dry_run(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let query = "{ __schema { mutationType { fields { name args { name type { kind ofType { name } } } } } } }";
    let mut found = Vec::new();
    for service in ["payments", "payouts", "onboarding"] {
        let data = fleet.graphql(service, query, json!({})).await;
        let fields = data["__schema"]["mutationType"]["fields"]
            .as_array()
            .unwrap()
            .clone();
        let actions: BTreeSet<String> = fields
            .iter()
            .filter(|f| {
                f["args"].as_array().unwrap().iter().any(|a| {
                    a["name"] == "dryRun"
                        && a["type"]["kind"] == "NON_NULL"
                        && a["type"]["ofType"]["name"] == "Boolean"
                })
            })
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        let all: BTreeSet<String> = fields
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(all.contains("setFixDeployed") && !actions.contains("setFixDeployed"));
        found.push((service, actions));
    }
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        found,
        vec![
            (
                "payments",
                names(&["forceCompleteSagas", "retrySagas", "transferFunds"])
            ),
            (
                "payouts",
                names(&["forceCompleteSagas", "retryBatchItems", "retrySagas"])
            ),
            ("onboarding", names(&["forceCompleteSagas", "retrySagas"])),
        ]
    );
}

async fn stopped_service_is_unreachable(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    fleet.fleet.stop_service("payouts").await;
    let url = &fleet.service("payouts").graphql_url;
    let refused = fleet
        .http
        .post(url)
        .json(&json!({ "query": "{ health }" }))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let data: Value = fleet.graphql("payments", "{ health }", json!({})).await;
    assert_eq!(data["health"], "ok", "the rest of the fleet still answers");
    fleet.fleet.shutdown().await;
}
