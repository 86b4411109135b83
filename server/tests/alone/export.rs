//! A filtered CSV export of 100,000 failed sagas (#31) is streamed from one snapshot while
//! Runboard's memory, which this process holds, stays flat.

use runboard_testkit::{Backend, TestStore, test_on_both_stores};

use crate::support::{registered, spawn_app_configured, start_fleet, urlencode};
use crate::{ALONE, resident_kb};

/// An order-sensitive digest of saga ids, so that 100,000 of them need not be kept.
#[derive(Default, PartialEq, Debug)]
struct Digest {
    count: u64,
    hash: u64,
}

impl Digest {
    fn add(&mut self, id: &str) {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.hash, id).hash(&mut hasher);
        self.hash = hasher.finish();
        self.count += 1;
    }
}

const OUTAGE: u64 = 100_000;
const OUTAGE_ERROR: &str = "upstream provider outage: connection refused";

async fn a_filtered_export_of_100000_failed_sagas_streams_in_flat_memory(backend: Backend) {
    let _alone = ALONE.lock().await;
    let fleet = start_fleet(backend).await;
    runboard_fleet::seed_outage(
        &fleet.service("onboarding").database_url,
        "onboarding",
        OUTAGE,
    )
    .await
    .unwrap();
    let services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(backend).await, |config, _| {
        config.services = services;
    })
    .await;
    let path = format!(
        "/api/v1/services/onboarding/sagas?status=failed&error={}",
        urlencode(OUTAGE_ERROR)
    );
    // Warm: the first request sets up what every later one shares.
    assert_eq!(app.get(&format!("{path}&limit=1")).await.status(), 200);
    let reads_before = app.service_reads("onboarding", "supervisor_view").await;

    let before = resident_kb();
    let mut peak = before;
    let mut response = app.get(&format!("{path}&format=csv")).await;
    assert_eq!(response.status(), 200);
    let mut csv = Digest::default();
    let mut partial = Vec::new();
    let mut header = true;
    while let Some(chunk) = response.chunk().await.unwrap() {
        partial.extend_from_slice(&chunk);
        let complete = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in partial[..complete]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let line = std::str::from_utf8(line).unwrap();
            if std::mem::take(&mut header) {
                assert!(line.starts_with("saga_id,"), "{line}");
                continue;
            }
            let mut cells = line.trim_end_matches('\r').split(',');
            csv.add(cells.next().unwrap());
            assert_eq!(cells.nth(2), Some("failed"), "{line}");
        }
        partial.drain(..complete);
        peak = peak.max(resident_kb());
    }
    assert!(partial.is_empty(), "the file ends with a whole line");
    let grown_mb = (peak - before) as f64 / 1024.0;
    println!(
        "{backend:?}: {} sagas exported; RSS {before} kB before, {peak} kB at most: +{grown_mb:.1} MB",
        csv.count
    );
    assert!(
        grown_mb < 30.0,
        "RSS grew by {grown_mb:.1} MB while exporting {} sagas",
        csv.count
    );
    let statements = app.service_reads("onboarding", "supervisor_view").await - reads_before;
    assert!(
        statements > OUTAGE / 5_000,
        "each page of the export is a statement counted in runboard_service_reads_total: {statements}"
    );

    // The same sagas, in the same order, as the JSON pages walked to the end.
    let mut json = Digest::default();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(after) => format!("{path}&limit=500&after={}", urlencode(after)),
            None => format!("{path}&limit=500"),
        };
        let page: runboard_model::SagaPage = app.get(&url).await.json().await.unwrap();
        for saga in &page.sagas {
            json.add(&saga.saga_id);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(json.count >= OUTAGE, "{json:?}");
    assert_eq!(csv, json);
}

test_on_both_stores!(a_filtered_export_of_100000_failed_sagas_streams_in_flat_memory);
