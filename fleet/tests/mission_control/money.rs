//! Money: a transfer appends its events, a retried one settles once the fix is deployed,
//! and withheld funds are the fold of the events.

use super::*;

on_both_backends!(
    transfer_funds_appends_events,
    a_retried_transfer_settles_once_the_fix_is_deployed,
    withheld_funds_match_the_fold
);

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
