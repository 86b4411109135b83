//! The fleet's services honour the service contract: real GraphQL over HTTP against real
//! databases, on SQLite and on PostgreSQL.

mod support;

use std::collections::BTreeSet;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{Backend, TestFleet, single};

const RETRY: &str = "mutation($ids: [ID!]!, $dryRun: Boolean!) {
    retrySagas(ids: $ids, dryRun: $dryRun) {
        dryRun effects { entityId description amount currency } } }";

const FORCE_COMPLETE: &str = "mutation($ids: [ID!]!, $reason: String!, $dryRun: Boolean!) {
    forceCompleteSagas(ids: $ids, reason: $reason, dryRun: $dryRun) {
        dryRun effects { entityId description amount currency } } }";

const TRANSFER: &str =
    "mutation($amount: String!, $currency: String!, $reference: String!, $dryRun: Boolean!) {
    transferFunds(fromAccount: \"acct-10001\", toAccount: \"acct-20002\", amount: $amount,
                  currency: $currency, reference: $reference, dryRun: $dryRun) {
        dryRun effects { entityId description amount currency } } }";

/// `(saga_id, completed, error_message, updated_at)` of every saga, as text.
async fn supervisor_rows(fleet: &TestFleet, service: &str) -> Vec<Vec<Option<String>>> {
    fleet
        .rows(
            service,
            "SELECT saga_id, CASE WHEN completed THEN 'yes' ELSE 'no' END, error_message, \
             CAST(updated_at AS TEXT) FROM supervisor_view ORDER BY saga_id",
        )
        .await
}

async fn failed_ids(fleet: &TestFleet, service: &str, limit: usize) -> Vec<String> {
    let ids: Vec<String> = fleet
        .rows(
            service,
            "SELECT saga_id FROM supervisor_view WHERE NOT completed \
             AND error_message IS NOT NULL ORDER BY saga_id",
        )
        .await
        .into_iter()
        .filter_map(|r| r[0].clone())
        .take(limit)
        .collect();
    assert_eq!(ids.len(), limit, "the seeded history has failed sagas");
    ids
}

async fn completed_id(fleet: &TestFleet, service: &str) -> String {
    single(
        fleet
            .rows(
                service,
                "SELECT saga_id FROM supervisor_view WHERE completed ORDER BY saga_id LIMIT 1",
            )
            .await,
    )
}

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

async fn transfer_funds_appends_events(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let variables = |amount: &str, currency: &str, dry_run: bool| json!({ "amount": amount, "currency": currency, "reference": "INC-42 refund", "dryRun": dry_run });
    let events = "SELECT CAST(COUNT(*) AS TEXT) FROM transfer_event WHERE transfer_id IN \
                  (SELECT transfer_id FROM transfer_event WHERE reference = 'INC-42 refund')";

    let preview = fleet
        .graphql("payments", TRANSFER, variables("12.34", "EUR", true))
        .await;
    assert_eq!(
        preview["transferFunds"]["effects"],
        json!([{ "entityId": "INC-42 refund", "description": "transfer 12.34 EUR from acct-10001 to acct-20002",
                 "amount": "12.34", "currency": "EUR" }])
    );
    assert_eq!(single(fleet.rows("payments", events).await), "0");

    let applied = fleet
        .graphql("payments", TRANSFER, variables("12.34", "EUR", false))
        .await;
    assert_eq!(
        applied["transferFunds"]["effects"],
        preview["transferFunds"]["effects"]
    );
    assert_eq!(single(fleet.rows("payments", events).await), "4");
    let amounts = fleet
        .rows(
            "payments",
            "SELECT CAST(amount AS TEXT) FROM transfer_event \
             WHERE kind = 'initiated' AND reference = 'INC-42 refund'",
        )
        .await;
    assert_eq!(single(amounts), "12.34");
    let folded = fleet
        .graphql(
            "payments",
            "{ transfer(reference: \"INC-42 refund\") { id stage amount held currency events } }",
            json!({}),
        )
        .await;
    let transfer = &folded["transfer"];
    assert_eq!(transfer["stage"], "SETTLED");
    assert_eq!(transfer["amount"], "12.34");
    assert_eq!(transfer["held"], "0");
    assert_eq!(transfer["currency"], "EUR");
    assert_eq!(transfer["events"], 4);
    let id = transfer["id"].as_str().unwrap();
    let row = fleet
        .rows(
            "payments",
            &format!(
                "SELECT saga_type, CASE WHEN completed THEN 'yes' ELSE 'no' END \
                 FROM supervisor_view WHERE saga_id = '{id}'"
            ),
        )
        .await;
    assert_eq!(
        row,
        vec![vec![Some("manual_transfer".into()), Some("yes".into())]]
    );

    for (amount, currency, expected) in [
        ("12,34", "EUR", "is not a decimal number"),
        ("1e3", "EUR", "is not a decimal number"),
        ("1.234", "EUR", "more than 2 decimal places"),
        ("-5", "EUR", "greater than zero"),
        ("5", "XYZ", "is not one of EUR, USD"),
    ] {
        let (status, body) = fleet
            .graphql_with(
                "payments",
                TRANSFER,
                json!({ "amount": amount, "currency": currency, "reference": "bad", "dryRun": false }),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{amount} {currency}: {body}");
    }
    let (_, reused) = fleet
        .graphql_with("payments", TRANSFER, variables("1.00", "USD", true), &[])
        .await;
    assert!(
        reused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already used by transfer"),
        "{reused}"
    );
    assert_eq!(single(fleet.rows("payments", events).await), "4");

    // An account on legal hold: its dry run passes, the real call is refused and says why.
    fleet
        .graphql(
            "payments",
            "mutation { setLegalHold(ids: [\"acct-20002\"]) }",
            json!({}),
        )
        .await;
    let held = |dry_run: bool| json!({ "amount": "1.00", "currency": "EUR", "reference": "INC-43", "dryRun": dry_run });
    let (_, dry) = fleet
        .graphql_with("payments", TRANSFER, held(true), &[])
        .await;
    assert_eq!(dry["data"]["transferFunds"]["dryRun"], true, "{dry}");
    let (_, refused) = fleet
        .graphql_with("payments", TRANSFER, held(false), &[])
        .await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("acct-20002 is on legal hold"),
        "{refused}"
    );
    assert_eq!(single(fleet.rows("payments", events).await), "4");

    let log = fleet.fleet.call_log("payments").await.unwrap();
    assert_eq!(log.iter().filter(|c| c.applied).count(), 1);
    assert_eq!(log.iter().filter(|c| c.error.is_some()).count(), 7);
}

/// A retry with the fix deployed walks a transfer through every step it had left: its
/// events say so (settled, nothing held) and its saga row ends completed at the last step.
async fn a_retried_transfer_settles_once_the_fix_is_deployed(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    fleet.fleet.set_fix_deployed(true);
    let failed = failed_ids(&fleet, "payments", 3).await;
    let data = fleet
        .graphql("payments", RETRY, json!({ "ids": failed, "dryRun": false }))
        .await;
    let effects = data["retrySagas"]["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 3, "{data}");
    for id in &failed {
        let transfer = fleet
            .graphql(
                "payments",
                "query($id: ID) { transfer(id: $id) { stage error held } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            transfer["transfer"],
            json!({ "stage": "SETTLED", "error": null, "held": "0" }),
            "{id}"
        );
        let row = fleet
            .rows(
                "payments",
                &format!(
                    "SELECT current_step, CASE WHEN completed THEN 'yes' ELSE 'no' END, \
                     error_message FROM saga WHERE saga_id = '{id}'"
                ),
            )
            .await;
        assert_eq!(
            row,
            vec![vec![
                Some("settle".to_owned()),
                Some("yes".to_owned()),
                None
            ]],
            "{id}"
        );
    }
    fleet.fleet.shutdown().await;
}

/// The withheld-funds query agrees with the transfers' fold, to the cent, and a
/// force-complete releases what it reports.
async fn withheld_funds_match_the_fold(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let query = fleet
        .service("payments")
        .withheld_funds_query
        .clone()
        .expect("payments holds money");
    let sql = format!("SELECT saga_id, CAST(amount AS TEXT), currency FROM ({query}) AS withheld");
    let withheld = async |fleet: &TestFleet| {
        fleet
            .rows("payments", &sql)
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap(),
                    Decimal::from_str(r[1].as_deref().unwrap()).unwrap(),
                    r[2].clone().unwrap(),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let reported = withheld(&fleet).await;
    assert!(
        !reported.is_empty(),
        "the history has failed transfers holding money"
    );

    let troubled = fleet
        .rows(
            "payments",
            &format!(
                "SELECT saga_id FROM supervisor_view WHERE NOT completed \
                 AND (error_message IS NOT NULL OR updated_at < {})",
                fleet.stuck_since()
            ),
        )
        .await;
    let mut folded = BTreeSet::new();
    for id in troubled.into_iter().filter_map(|r| r[0].clone()) {
        let data = fleet
            .graphql(
                "payments",
                "query($id: ID) { transfer(id: $id) { held currency } }",
                json!({ "id": id }),
            )
            .await;
        let held = Decimal::from_str(data["transfer"]["held"].as_str().unwrap()).unwrap();
        if !held.is_zero() {
            let currency = data["transfer"]["currency"].as_str().unwrap().to_owned();
            folded.insert((id, held, currency));
        }
    }
    assert_eq!(reported, folded);
    assert!(reported.iter().all(|(_, amount, _)| amount.scale() == 2));

    let (id, amount, currency) = reported.iter().next().unwrap().clone();
    let data = fleet
        .graphql(
            "payments",
            FORCE_COMPLETE,
            json!({ "ids": [id], "reason": "refunded by hand, INC-7", "dryRun": false }),
        )
        .await;
    let effect = &data["forceCompleteSagas"]["effects"][0];
    assert_eq!(effect["amount"], amount.to_string());
    assert_eq!(effect["currency"], currency);
    let after = withheld(&fleet).await;
    assert_eq!(after.len(), reported.len() - 1);
    assert!(!after.iter().any(|(saga, _, _)| *saga == id));
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

/// The demo controls the watches' tests use: an error nobody has seen, and a payout worker
/// that stops.
async fn demo_controls_inject_an_error_and_stop_the_payout_worker(backend: Backend) {
    let fleet = TestFleet::start(backend, None).await;
    let data = fleet
        .graphql(
            "onboarding",
            "mutation { injectError(message: \"kyc vendor: certificate expired\", count: 2) }",
            json!({}),
        )
        .await;
    let ids: Vec<String> = serde_json::from_value(data["injectError"].clone()).unwrap();
    assert_eq!(ids.len(), 2);
    let rows = fleet
        .rows(
            "onboarding",
            "SELECT saga_id FROM supervisor_view WHERE NOT completed \
             AND error_message = 'kyc vendor: certificate expired' ORDER BY saga_id",
        )
        .await;
    let mut failed: Vec<String> = rows.into_iter().filter_map(|r| r[0].clone()).collect();
    let mut expected = ids.clone();
    failed.sort();
    expected.sort();
    assert_eq!(
        failed, expected,
        "both injected sagas are failed with the message"
    );

    let (_, refused) = fleet
        .graphql_with(
            "onboarding",
            "mutation { injectError(message: \" \") }",
            json!({}),
            &[],
        )
        .await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("message must say what failed"),
        "{refused}"
    );

    // Failing at a later step, the steps before it done: a transfer holds its money.
    let data = fleet
        .graphql(
            "payments",
            "mutation { injectError(message: \"ledger down\", atStep: \"post_to_ledger\") }",
            json!({}),
        )
        .await;
    let id = data["injectError"][0].as_str().unwrap().to_owned();
    let transfer = fleet
        .graphql(
            "payments",
            "query($id: ID) { transfer(id: $id) { stage error amount held } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        transfer["transfer"]["stage"], "FUNDS_RESERVED",
        "{transfer}"
    );
    assert_eq!(transfer["transfer"]["error"], "ledger down");
    assert_eq!(
        transfer["transfer"]["held"], transfer["transfer"]["amount"],
        "it holds what it reserved"
    );
    let (_, unknown_step) = fleet
        .graphql_with(
            "payments",
            "mutation { injectError(message: \"x\", atStep: \"post_to_ledgr\") }",
            json!({}),
            &[],
        )
        .await;
    let message = unknown_step["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("no step \"post_to_ledgr\"")
            && message.contains("reserve_funds, post_to_ledger, settle"),
        "{unknown_step}"
    );

    let data = fleet
        .graphql(
            "payouts",
            "mutation { setPayoutWorker(running: false) }",
            json!({}),
        )
        .await;
    assert_eq!(data["setPayoutWorker"], false);
    let (_, elsewhere) = fleet
        .graphql_with(
            "payments",
            "mutation { setPayoutWorker(running: false) }",
            json!({}),
            &[],
        )
        .await;
    assert!(
        elsewhere["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("payments has no payout batch"),
        "{elsewhere}"
    );
    fleet.fleet.shutdown().await;
}

on_both_backends!(
    demo_controls_inject_an_error_and_stop_the_payout_worker,
    dry_run_changes_nothing_and_retry_moves_sagas_on,
    same_idempotency_key_applies_once,
    bearer_token_is_required,
    transfer_funds_appends_events,
    withheld_funds_match_the_fold,
    a_retried_transfer_settles_once_the_fix_is_deployed,
    failed_batch_items_are_retried,
    introspection_lists_actions_with_dry_run,
    stopped_service_is_unreachable,
);
