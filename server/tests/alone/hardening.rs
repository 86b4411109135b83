//! A stranger's stream of made-up methods and paths (#14) adds no series to `/metrics` and
//! keeps Runboard's memory, which this process holds, flat.

use runboard_core::config::LimitsConfig;

use crate::support::{TestApp, series, spawn_with_limits};
use crate::{ALONE, resident_kb};

/// Sends request `i` of a stranger's made-up stream: a method no one uses, to a probe, a
/// route with an id or a path no route knows, `at_once` at a time.
async fn made_up_requests(app: &TestApp, ids: std::ops::Range<usize>, at_once: usize) {
    use futures_util::StreamExt;
    let stranger = reqwest::Client::new();
    futures_util::stream::iter(ids)
        .map(|i| {
            let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
            let path = match i % 4 {
                0 => "/healthz".to_owned(),
                1 => format!("/api/v1/actions/made-up-{i}"),
                2 => format!("/made/up/{i}"),
                _ => format!("/services/made-up-{i}"),
            };
            let request = stranger.request(method, app.url(&path)).send();
            async move { request.await.unwrap().status() }
        })
        .buffer_unordered(at_once)
        .for_each(|_| async {})
        .await;
}

/// An app whose pace no test reaches, so that every answer depends on the request alone.
async fn spawn_unlimited() -> TestApp {
    spawn_with_limits(LimitsConfig {
        per_person_per_second: 1_000_000,
        per_person_burst: 1_000_000,
        ..LimitsConfig::default()
    })
    .await
}

#[tokio::test]
async fn ten_thousand_made_up_methods_and_paths_add_no_series_and_keep_memory_flat() {
    let _alone = ALONE.lock().await;
    let app = spawn_unlimited().await;
    // One round first, so that every answer the stream gets (405, 404, 401…) has its series
    // and the allocator its pools.
    made_up_requests(&app, 0..1_000, 8).await;
    // A scrape is counted once answered: the first one's series appear in the second.
    app.metrics().await;
    let before = series(&app.metrics().await);
    let memory_before = resident_kb();

    made_up_requests(&app, 1_000..11_000, 8).await;

    let after = series(&app.metrics().await);
    let grown = resident_kb().saturating_sub(memory_before);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(
        added.is_empty(),
        "{} series added (resident memory grew by {grown} kB), e.g. {:?}",
        added.len(),
        &added[..added.len().min(3)]
    );
    assert_eq!(before, after);
    assert!(
        after.iter().any(|s| s.contains(r#"method="other""#)),
        "made-up methods are counted as other"
    );
    assert!(!after.iter().any(|s| s.contains("made-up")), "no raw path");
    assert!(grown < 5 * 1024, "resident memory grew by {grown} kB");
}
