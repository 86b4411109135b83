//! `seed` makes large, realistically distributed data sets quickly.

mod support;

use std::collections::BTreeMap;

use support::{Backend, DropDatabases, admin_url, rows, stuck_since};

const SAGAS: u64 = 100_000;

async fn seed_distributes_statuses_as_documented(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _databases) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("payments.db").display()),
            None,
        ),
        Backend::Postgres => {
            let name = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
            let mut url = url::Url::parse(&admin_url()).unwrap();
            url.set_path(&name);
            (url.to_string(), Some(DropDatabases(vec![name])))
        }
    };
    let report = runboard_fleet::seed(&url, "payments", SAGAS).await.unwrap();
    eprintln!(
        "{backend:?}: seeded {} sagas, {} events in {:?}",
        report.sagas, report.transfer_events, report.elapsed
    );
    assert_eq!(report.sagas, SAGAS);

    let counts: BTreeMap<String, f64> = rows(
        &url,
        &format!(
            "SELECT CASE WHEN completed THEN 'completed' WHEN error_message IS NOT NULL THEN 'failed' \
             WHEN updated_at < {} THEN 'stuck' ELSE 'running' END AS status, \
             CAST(COUNT(*) AS TEXT) FROM supervisor_view GROUP BY 1",
            stuck_since(backend)
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        let share = r[1].as_deref().unwrap().parse::<f64>().unwrap() / SAGAS as f64;
        (r[0].clone().unwrap(), share)
    })
    .collect();
    let share = |status: &str| counts.get(status).copied().unwrap_or_default();
    assert!((0.020..0.030).contains(&share("failed")), "{counts:?}");
    assert!((0.007..0.013).contains(&share("stuck")), "{counts:?}");
    assert!((0.003..0.007).contains(&share("running")), "{counts:?}");
    assert!((0.955..0.975).contains(&share("completed")), "{counts:?}");

    let errors = rows(
        &url,
        "SELECT error_message, CAST(COUNT(*) AS TEXT) FROM supervisor_view \
         WHERE error_message IS NOT NULL GROUP BY error_message",
    )
    .await;
    assert_eq!(errors.len(), 5, "failures spread over the five errors");

    let span_days = match backend {
        Backend::Sqlite => "julianday(MAX(created_at)) - julianday(MIN(created_at))",
        Backend::Postgres => "EXTRACT(EPOCH FROM MAX(created_at) - MIN(created_at)) / 86400",
    };
    let days: f64 = rows(
        &url,
        &format!("SELECT CAST({span_days} AS TEXT) FROM supervisor_view"),
    )
    .await[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29.0..=30.0).contains(&days), "created over {days} days");

    // Every transfer's events start with `initiated` and carry an exact decimal amount.
    let initiated = rows(
        &url,
        "SELECT CAST(COUNT(*) AS TEXT) FROM transfer_event WHERE seq = 1 AND kind = 'initiated' \
         AND amount IS NOT NULL",
    )
    .await;
    assert_eq!(initiated[0][0].as_deref(), Some(SAGAS.to_string().as_str()));
}

on_both_backends!(seed_distributes_statuses_as_documented);
