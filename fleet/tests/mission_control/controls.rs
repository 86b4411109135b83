//! The demo's controls: an injected error and a stopped payout worker.

use super::*;

on_both_backends!(demo_controls_inject_an_error_and_stop_the_payout_worker);

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
