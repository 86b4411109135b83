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

/// The medians of `runs` timings of page `a` and of page `b`, read in turns, so that
/// whatever else the machine does meanwhile weighs on both alike.
async fn medians(
    app: &TestApp,
    (a, b): (Option<&str>, Option<&str>),
    runs: usize,
) -> (Duration, Duration) {
    let (mut times_a, mut times_b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        times_a.push(page(app, a).await.1);
        times_b.push(page(app, b).await.1);
    }
    times_a.sort();
    times_b.sort();
    (times_a[runs / 2], times_b[runs / 2])
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
    let (first_time, deepest_time) = medians(&app, (None, deepest.as_deref()), 7).await;
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
