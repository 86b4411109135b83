//! Keyset pagination over a million sagas in a PostgreSQL service database: the deepest
//! page of failed sagas costs what the first does.

use crate::support as common;

use std::time::{Duration, Instant};

use common::{TestApp, registered, spawn_app_on, start_fleet, urlencode};
use runboard_testkit::{Backend, TestStore};
use serde_json::Value;

const SAGAS: u64 = 1_000_000;
const PAGE: usize = 500;

async fn page(app: &TestApp, after: Option<&str>) -> (Value, Duration) {
    let mut path = format!("/api/v1/services/onboarding/sagas?status=failed&limit={PAGE}");
    if let Some(after) = after {
        path.push_str(&format!("&after={}", urlencode(after)));
    }
    let started = Instant::now();
    let response = app.get(&path).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    (body, started.elapsed())
}

/// The median of `runs` timings of the same page.
async fn median(app: &TestApp, after: Option<&str>, runs: usize) -> Duration {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(page(app, after).await.1);
    }
    times.sort();
    times[runs / 2]
}

#[tokio::test]
async fn the_deepest_page_of_a_million_failed_sagas_costs_what_the_first_does() {
    let fleet = start_fleet(Backend::Postgres).await;
    let onboarding = fleet.service("onboarding").clone();
    let report = runboard_fleet::seed(&onboarding.database_url, "onboarding", SAGAS)
        .await
        .unwrap();
    println!(
        "seeded {} sagas into PostgreSQL in {:.1?}",
        report.sagas, report.elapsed
    );
    let app = spawn_app_on(
        TestStore::new(Backend::Postgres).await,
        vec![registered(&onboarding)],
    )
    .await;

    // Walk every page of failed sagas, remembering where each full page starts.
    let mut starts: Vec<Option<String>> = vec![None];
    let mut seen = 0;
    let walk = Instant::now();
    loop {
        let (body, _) = page(&app, starts.last().unwrap().as_deref()).await;
        let sagas = body["sagas"].as_array().unwrap();
        seen += sagas.len();
        match body["next"].as_str() {
            Some(next) if sagas.len() == PAGE => starts.push(Some(next.to_owned())),
            _ => break,
        }
    }
    let failed_pages = starts.len();
    println!(
        "walked {seen} failed sagas in {failed_pages} pages of {PAGE} in {:.1?}",
        walk.elapsed()
    );
    assert!(
        seen as u64 > SAGAS / 100,
        "about 2.5% of a million sagas failed: {seen}"
    );

    // The deepest page that is still full, against the first, each timed as a median of 7.
    let deepest = starts.iter().rev().nth(1).unwrap().clone();
    let first_time = median(&app, None, 7).await;
    let deepest_time = median(&app, deepest.as_deref(), 7).await;
    println!(
        "first page: {:.1} ms, deepest page (page {}): {:.1} ms",
        first_time.as_secs_f64() * 1e3,
        failed_pages - 1,
        deepest_time.as_secs_f64() * 1e3
    );
    // The bound: the deepest page takes at most twice the first page plus 25 ms of noise.
    // An OFFSET scan would need tens of times longer at this depth.
    assert!(
        deepest_time <= first_time * 2 + Duration::from_millis(25),
        "deepest {deepest_time:?} vs first {first_time:?}"
    );
}
