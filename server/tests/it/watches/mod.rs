//! Watches against the demo fleet: alerts fire from the polls, are told once to the team's
//! webhook (a real HTTP receiver on loopback), remind once, keep quiet when acknowledged or
//! silenced, resolve by themselves, and are told once however many replicas judge.

use crate::support as common;

use std::time::Duration;

use common::{
    TestApp, bearer_client, database_behind_proxy, registered, spawn_app_configured, start_fleet,
    start_fleet_working, webhook, webhook_keeping,
};
use runboard_core::App;
use runboard_core::poller::poll_once;
use runboard_model::{AlertBoard, AlertState, Role, Watch};
use runboard_testkit::{Backend, TestStore};
use serde_json::json;

mod money;
mod outages;

/// Every currency the demo fleet's payments service may hold, each watched from 0.
fn any_money_held() -> std::collections::BTreeMap<String, rust_decimal::Decimal> {
    ["EUR", "USD", "GBP", "CHF"]
        .into_iter()
        .map(|c| (c.to_owned(), rust_decimal::Decimal::ZERO))
        .collect()
}

async fn board(app: &TestApp) -> AlertBoard {
    let response = app.get("/api/v1/alerts").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The alerts as every page shows them (the navigation's count, a service's alerts).
async fn alerts_on_page(app: &TestApp) -> AlertBoard {
    let response = app
        .client
        .post(app.url("/rpc/alerts_on_page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The currencies payments holds money in, as Runboard's funds answer says.
async fn currencies_held(app: &TestApp) -> Vec<String> {
    let funds: serde_json::Value = app.get("/api/v1/funds").await.json().await.unwrap();
    let mut currencies: Vec<String> = funds["services"]
        .as_array()
        .expect("the funds answer lists services")
        .iter()
        .filter(|s| s["service"] == "payments")
        .flat_map(|s| s["withheld_funds"].as_array().unwrap().clone())
        .map(|m| m["currency"].as_str().unwrap().to_owned())
        .collect();
    currencies.sort();
    currencies
}

/// Polls until the alert board shows `done`: what takes the demo fleet real time (a worker
/// finishing items, or not) is waited for with a generous deadline, never guessed.
async fn poll_until(app: &TestApp, done: impl Fn(&AlertBoard) -> bool) -> AlertBoard {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        poll_once(&app.app).await.unwrap();
        let now = board(app).await;
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached in 2 minutes: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Payouts' batches, as the API lists them.
async fn payout_batches(app: &TestApp) -> Vec<serde_json::Value> {
    let batches: serde_json::Value = app
        .get("/api/v1/services/payouts/batches")
        .await
        .json()
        .await
        .unwrap();
    batches["batches"].as_array().unwrap().clone()
}

/// Returns once the payout worker finished another item of the running batch.
async fn items_finish(app: &TestApp) {
    let finished = || async {
        payout_batches(app)
            .await
            .iter()
            .filter(|b| b["finished_at"].is_null())
            .map(|b| b["done"].as_u64().unwrap() + b["failed"].as_u64().unwrap())
            .sum::<u64>()
    };
    let before = finished().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while finished().await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payout worker finished no item in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every watch but `watch`: the tests below hear of one watch at a time.
fn all_but(watch: Watch) -> Vec<Watch> {
    Watch::ALL.into_iter().filter(|w| *w != watch).collect()
}

/// Takes what the webhook got, once every message `app` sent (on the side) was answered:
/// none is missed however slow the machine, and "nothing was said" is known, not guessed.
async fn messages_after_poll<T>(app: &App, received: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
    app.notifier.settled().await;
    std::mem::take(&mut *received.lock().unwrap())
}
