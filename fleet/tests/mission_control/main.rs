//! The fleet's services honour the service contract: real GraphQL over HTTP against real
//! databases, on SQLite and on PostgreSQL.

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use support::{Backend, TestFleet, single};

mod actions;
mod controls;
mod money;

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
