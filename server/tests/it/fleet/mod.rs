//! Runboard reading the demo fleet, on SQLite and on PostgreSQL: what the API says must be
//! what direct SQL on each service's database says, also while one service is stopped
//! and another answers only after its timeout.

use crate::support as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{
    TestApp, database_behind_proxy, registered, runboard_connections, spawn_app_on, start_fleet,
};
use runboard_core::poller::poll_once;
use runboard_core::snapshots::TrendPoint;
use runboard_fleet::ServiceInfo;
use runboard_model::{Role, SagaStatus};
use runboard_testkit::{Backend, TestStore, admin_url, run_sql, test_on_both_stores};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgPool, SqlitePool};

/// What a service's database says, read with plain SQL and derived here, not by the connector.
#[derive(Debug, PartialEq)]
struct Truth {
    counts: BTreeMap<&'static str, u64>,
    error_groups: BTreeMap<String, u64>,
    batches: BTreeMap<String, (u64, u64, u64)>,
    funds: BTreeMap<String, Decimal>,
}

macro_rules! read_truth {
    ($pool:expr, $service:expr, $stuck_before:expr) => {{
        let pool = $pool;
        let rows: Vec<(bool, Option<String>, DateTime<Utc>)> =
            sqlx::query_as("SELECT completed, error_message, updated_at FROM supervisor_view")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut counts = BTreeMap::new();
        let mut error_groups = BTreeMap::new();
        for (completed, error, updated_at) in rows {
            let status = SagaStatus::derive(completed, error.as_deref(), updated_at, $stuck_before);
            *counts.entry(status.as_str()).or_insert(0) += 1;
            if status == SagaStatus::Failed {
                *error_groups.entry(error.unwrap()).or_insert(0) += 1;
            }
        }
        let items: Vec<(String, String)> =
            sqlx::query_as("SELECT batch_id, status FROM batch_item")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut batches: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for (batch, status) in items {
            let entry = batches.entry(batch).or_default();
            match status.as_str() {
                "done" => entry.0 += 1,
                "failed" => entry.1 += 1,
                "pending" => entry.2 += 1,
                other => panic!("batch item status {other}"),
            }
        }
        let mut funds = BTreeMap::new();
        if let Some(query) = &$service.withheld_funds_query {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT CAST(amount AS TEXT), currency FROM ({query}) AS w"
            ))
            .fetch_all(&pool)
            .await
            .unwrap();
            for (amount, currency) in rows {
                *funds.entry(currency).or_insert(Decimal::ZERO) +=
                    amount.parse::<Decimal>().unwrap();
            }
        }
        Truth {
            counts,
            error_groups,
            batches,
            funds,
        }
    }};
}

async fn truth(service: &ServiceInfo, at: DateTime<Utc>) -> Truth {
    let stuck_before = at - chrono::Duration::from_std(service.stuck_after).unwrap();
    if service.database_url.starts_with("sqlite:") {
        read_truth!(
            SqlitePool::connect(&service.database_url).await.unwrap(),
            service,
            stuck_before
        )
    } else {
        read_truth!(
            PgPool::connect(&service.database_url).await.unwrap(),
            service,
            stuck_before
        )
    }
}

/// What the API says about one service, in the same shape.
async fn api_view(app: &TestApp, service: &Value) -> Truth {
    let name = service["name"].as_str().unwrap();
    let mut counts = BTreeMap::new();
    for status in ["running", "stuck", "failed", "completed"] {
        let n = service["sagas"][status].as_u64().unwrap();
        if n > 0 {
            counts.insert(status, n);
        }
    }
    let groups: Value = app
        .get_json(&format!("/api/v1/services/{name}/errors?live=true"))
        .await;
    let error_groups = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["error_message"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let batches: Value = app
        .get_json(&format!("/api/v1/services/{name}/batches"))
        .await;
    let batches = batches["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_u64().unwrap();
            (
                b["batch_id"].as_str().unwrap().to_owned(),
                (n("done"), n("failed"), n("pending")),
            )
        })
        .filter(|(_, (done, failed, pending))| done + failed + pending > 0)
        .collect();
    let funds = service["withheld_funds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["currency"].as_str().unwrap().to_owned(),
                m["amount"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    Truth {
        counts,
        error_groups,
        batches,
        funds,
    }
}

async fn services(app: &TestApp) -> Vec<Value> {
    let body: Value = app.get_json("/api/v1/services").await;
    body["services"].as_array().unwrap().clone()
}

mod load;
mod reads;
