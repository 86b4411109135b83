//! Runboard reading the demo fleet, on SQLite and on PostgreSQL: what the API says must be
//! what direct SQL on each service's database says, also while one service is stopped
//! and another answers only after its timeout.

use crate::support as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{TestApp, database_behind_proxy, registered, spawn_app_on, start_fleet};
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

test_on_both_stores!(
    the_api_says_what_each_service_database_says,
    one_stopped_and_one_slow_service_break_nothing_else
);

async fn the_api_says_what_each_service_database_says(backend: Backend) {
    let fleet = start_fleet(backend).await;
    for service in fleet.fleet.services() {
        runboard_fleet::seed(&service.database_url, &service.name, 2_000)
            .await
            .unwrap();
    }
    let configs = fleet.fleet.services().iter().map(registered).collect();
    let app = spawn_app_on(TestStore::new(backend).await, configs).await;

    assert_eq!(
        poll_once(&app.app).await.unwrap(),
        3,
        "every service answers"
    );
    let listed = services(&app).await;
    assert_eq!(listed.len(), 3);
    for service in fleet.fleet.services() {
        let row = listed
            .iter()
            .find(|s| s["name"] == service.name.as_str())
            .unwrap();
        assert_eq!(row["reachable"], true, "{row}");
        assert_eq!(row["error"], Value::Null);
        let polled_at: DateTime<Utc> = row["polled_at"].as_str().unwrap().parse().unwrap();
        let expected = truth(service, polled_at).await;
        assert!(
            expected.counts.values().sum::<u64>() >= 2_000,
            "{}: seeded sagas are there",
            service.name
        );
        assert_eq!(
            api_view(&app, row).await,
            expected,
            "service {}",
            service.name
        );
    }
    let payments = listed.iter().find(|s| s["name"] == "payments").unwrap();
    assert!(
        !payments["withheld_funds"].as_array().unwrap().is_empty(),
        "payments withholds money"
    );
}

async fn one_stopped_and_one_slow_service_break_nothing_else(backend: Backend) {
    let fleet = start_fleet(backend).await;
    let info = |name: &str| {
        fleet
            .fleet
            .services()
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .clone()
    };
    let (payments, payouts, onboarding) = (info("payments"), info("payouts"), info("onboarding"));
    let timeout = Duration::from_secs(1);

    let mut slow = registered(&payouts);
    slow.query_timeout = timeout;
    let mut stopped = registered(&onboarding);
    stopped.query_timeout = timeout;
    // Kept alive for the whole test: cutting or slowing them is what the test is about.
    let mut _proxies = Vec::new();
    match backend {
        Backend::Sqlite => {
            // A stopped SQLite service is one whose file is gone; a slow one, a query that
            // takes longer than its timeout.
            fleet.fleet.stop_service("onboarding").await;
            let path = onboarding.database_url.trim_start_matches("sqlite://");
            let moved: PathBuf = fleet.dir.path().join("onboarding-moved-away.db");
            std::fs::rename(path, &moved).unwrap();
            slow.queries.supervisor_view =
                "SELECT * FROM supervisor_view WHERE (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL \
                 SELECT x + 1 FROM c WHERE x < 30000000) SELECT COUNT(*) FROM c) > 0"
                    .to_string();
        }
        Backend::Postgres => {
            for (config, cut) in [(&mut slow, false), (&mut stopped, true)] {
                let proxy = database_behind_proxy(config).await;
                if cut {
                    proxy.cut();
                }
                _proxies.push(proxy);
            }
        }
    }
    let app = spawn_app_on(
        TestStore::new(backend).await,
        vec![registered(&payments), slow, stopped],
    )
    .await;
    if let Some(slow_proxy) = _proxies.first() {
        // Slowed once its connections are open: a server too busy to answer in time,
        // rather than one that cannot be reached at all.
        assert_eq!(
            poll_once(&app.app).await.unwrap(),
            2,
            "payments and payouts answer before"
        );
        slow_proxy.slow_down(timeout * 3);
    }

    let started = Instant::now();
    assert_eq!(
        poll_once(&app.app).await.unwrap(),
        1,
        "only payments answers"
    );
    let took = started.elapsed();
    assert!(
        took < timeout * 3,
        "a poll waits for no service longer than its timeout: took {took:?}"
    );

    let listed = services(&app).await;
    let row = |name: &str| listed.iter().find(|s| s["name"] == name).unwrap().clone();
    let (ok, slow_row, stopped_row) = (row("payments"), row("payouts"), row("onboarding"));
    let polled_at: DateTime<Utc> = ok["polled_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(api_view(&app, &ok).await, truth(&payments, polled_at).await);

    assert_eq!(slow_row["reachable"], false);
    let slow_error = slow_row["error"].as_str().unwrap();
    assert!(
        slow_error.contains("did not answer within 1s") || slow_error.contains("statement timeout"),
        "{slow_error}"
    );
    assert_eq!(stopped_row["reachable"], false);
    let stopped_error = stopped_row["error"].as_str().unwrap();
    assert!(
        stopped_error.contains("its database is unreachable"),
        "{stopped_error}"
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"runboard_service_up{service="payments"} 1"#,
        r#"runboard_service_up{service="onboarding"} 0"#,
        r#"runboard_service_polls_total{service="onboarding",outcome="unreachable"} "#,
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }

    // Live reads say the same, with the service named and a status that says whose fault it is.
    let response = app
        .get("/api/v1/services/onboarding/sagas?status=failed")
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unreachable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("service onboarding:")
    );
    let response = app
        .get("/api/v1/services/payments/sagas?status=failed&limit=5")
        .await;
    assert_eq!(response.status(), 200);
}

/// PostgreSQL only: an SQLite service's file is opened read-only, and SQLite has no
/// functions in SQL that write.
#[tokio::test]
async fn a_contract_query_that_calls_a_writing_function_writes_nothing_and_the_poll_says_why() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    // The service's own database user may write (as the URL a team registers often can);
    // the function writes with it whenever it is called.
    run_sql(
        &payments.database_url,
        "CREATE TABLE poll_visit (at TIMESTAMPTZ NOT NULL)",
    )
    .await;
    run_sql(
        &payments.database_url,
        "CREATE FUNCTION note_poll() RETURNS INTEGER LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO poll_visit VALUES (now()); RETURN 1; END $$",
    )
    .await;
    let mut config = registered(payments);
    config.queries.supervisor_view =
        "SELECT v.* FROM supervisor_view v, note_poll() AS noted".into();
    assert_eq!(
        config.check(false),
        Ok(()),
        "a plain SELECT to the parser: the function's body is not in the query"
    );
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;

    assert_eq!(
        poll_once(&app.app).await.unwrap(),
        0,
        "payments is not read"
    );
    assert_eq!(
        poll_once(&app.app).await.unwrap(),
        0,
        "nor on the next poll"
    );
    let visits = runboard_testkit::sql_strings(
        &payments.database_url,
        "SELECT CAST(COUNT(*) AS TEXT) FROM poll_visit",
    )
    .await;
    assert_eq!(visits, ["0"], "the polls wrote nothing");

    let listed = services(&app).await;
    let row = listed.iter().find(|s| s["name"] == "payments").unwrap();
    assert_eq!(row["reachable"], false, "{row}");
    let error = row["error"].as_str().unwrap();
    assert!(
        error.contains("supervisor_view") && error.contains("read-only transaction"),
        "the service says which query the database refused, and why: {error}"
    );
    let overview = app.get("/").await.text().await.unwrap();
    assert!(
        overview.contains("cannot execute INSERT in a read-only transaction"),
        "{overview}"
    );
}

#[tokio::test]
async fn bad_filters_are_refused_with_what_to_do() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let configs = fleet.fleet.services().iter().map(registered).collect();
    let app = spawn_app_on(TestStore::new(Backend::Sqlite).await, configs).await;
    for (query, says) in [
        ("status=broken", "use running, stuck, failed or completed"),
        ("older_than=yesterday", "use e.g. 30m, 2h or 3d"),
        ("limit=100000", "use 1 to 500"),
        ("sort=random", "use newest or oldest"),
        ("stauts=failed", "unknown field `stauts`"),
        ("after=not-a-cursor", "is not one Runboard gave out"),
    ] {
        let response = app
            .get(&format!("/api/v1/services/payments/sagas?{query}"))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(status, 400, "{query}");
        assert!(message.contains(says), "{query}: {message}");
    }
    let response = app.get("/api/v1/services/nope/sagas").await;
    assert_eq!(response.status(), 404);
}

/// Runboard's open connections to one service database (it names itself `runboard`).
async fn runboard_connections(admin: &PgPool, database: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'runboard'",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap();
    n
}

#[tokio::test]
async fn connections_to_a_service_stay_within_its_bound_under_load() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    let mut config = registered(&payments);
    config.max_connections = 3;
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    let database = payments.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = PgPool::connect(&admin_url()).await.unwrap();
    let runboard_connections = || runboard_connections(&admin, &database);

    // A crowd during an incident: ten people, thirty reads each (within one person's limit).
    let mut crowd = Vec::new();
    for person in 0..10 {
        crowd.push(common::bearer_client(
            &app.token_for(&format!("viewer-{person}"), &[Role::Viewer])
                .await,
        ));
    }
    let requests = (0..300).map(|i| {
        let path = if i % 2 == 0 {
            "/api/v1/services/payments/sagas?status=failed&limit=20"
        } else {
            "/api/v1/services/payments/errors"
        };
        crowd[i % crowd.len()].get(app.url(path)).send()
    });
    let (responses, peak) = tokio::join!(futures_util::future::join_all(requests), async {
        let mut peak = 0;
        for _ in 0..20 {
            peak = peak.max(runboard_connections().await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200)),
        "all 300 reads answered"
    );
    assert!(
        peak <= 3,
        "at most max_connections = 3 connections, saw {peak}"
    );
    assert!(runboard_connections().await <= 3);
}

#[tokio::test]
async fn lookup_finds_pasted_ids_in_the_right_services() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let configs = fleet.fleet.services().iter().map(registered).collect();
    let app = spawn_app_on(TestStore::new(Backend::Sqlite).await, configs).await;
    let first_saga = |service: &str| {
        let app = &app;
        let service = service.to_owned();
        async move {
            let page: Value = app
                .get_json(&format!("/api/v1/services/{service}/sagas?limit=1"))
                .await;
            page["sagas"][0]["saga_id"].as_str().unwrap().to_owned()
        }
    };
    let payment = first_saga("payments").await;
    let signup = first_saga("onboarding").await;
    let batches: Value = app.get_json("/api/v1/services/payouts/batches").await;
    let batch = batches["batches"][0]["batch_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let items: Value = app
        .get_json(&format!(
            "/api/v1/services/payouts/batches/{batch}/items?limit=1"
        ))
        .await;
    let item = items["items"][0]["item_id"].as_str().unwrap().to_owned();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let text = format!(
        "2026-11-24T08:30:01Z ERROR transfer {} failed: timeout\n\
         {{\"saga\": \"{signup}\", \"again\": \"{payment}\"}}\n\
         item;amount\n{item};12.30\n{unknown}",
        payment.to_uppercase()
    );

    let response = app
        .post_json("/api/v1/lookup", &serde_json::json!({ "text": text }))
        .await;
    assert_eq!(response.status(), 200);
    let found: Value = response.json().await.unwrap();
    assert_eq!(
        found["ids"], 4,
        "four distinct IDs, whatever their case: {found}"
    );
    let in_service = |name: &str| {
        found["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    let ids = |s: &Value, key: &str, id: &str| -> Vec<String> {
        s[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.pointer(id).unwrap().as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&in_service("payments"), "sagas", "/saga_id"),
        std::slice::from_ref(&payment)
    );
    assert_eq!(
        ids(&in_service("onboarding"), "sagas", "/saga_id"),
        [signup]
    );
    assert_eq!(
        ids(&in_service("payouts"), "batch_items", "/1/item_id"),
        [item]
    );
    assert_eq!(found["not_found"], serde_json::json!([unknown]));

    // Ten thousand IDs in one paste work; one more is refused with what to do.
    let many: String = (0..10_000u32)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}\n"))
        .chain([payment.clone()])
        .collect();
    let started = Instant::now();
    let response = app
        .post_json("/api/v1/lookup", &serde_json::json!({ "text": many }))
        .await;
    assert_eq!(response.status(), 400, "10,001 IDs are one too many");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10000")
    );
    let many: String = (1..10_000u32)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}\n"))
        .chain([payment])
        .collect();
    let response = app
        .post_json("/api/v1/lookup", &serde_json::json!({ "text": many }))
        .await;
    assert_eq!(response.status(), 200);
    let found: Value = response.json().await.unwrap();
    assert_eq!(found["ids"], 10_000);
    assert_eq!(found["not_found"].as_array().unwrap().len(), 9_999);
    println!(
        "two lookups of 10,000 IDs in 3 services took {:?}",
        started.elapsed()
    );
}

/// However many replicas share the store, each service is read once per interval: the
/// replica that claims a service's slot of the store's clock reads it, the others skip it.
#[tokio::test]
async fn two_replicas_polling_three_services_write_one_snapshot_per_service_per_interval() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
    let interval = Duration::from_millis(500);
    let (first, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.services = services;
            config.poller.interval = interval;
        })
        .await;
    let config = first.app.config.clone();
    let second = first.second_replica().await;
    assert_ne!(first.app.replica, second.replica);

    // Each replica looks five times an interval, out of step with the other.
    let run = Duration::from_secs(3);
    let started = Instant::now();
    async fn replica(
        app: &runboard_core::App,
        offset: Duration,
        started: Instant,
        run: Duration,
        interval: Duration,
    ) {
        tokio::time::sleep(offset).await;
        while started.elapsed() < run {
            runboard_core::poller::poll_claimed(app).await.unwrap();
            tokio::time::sleep(interval / 5).await;
        }
    }
    tokio::join!(
        replica(&first.app, Duration::ZERO, started, run, interval),
        replica(&second, Duration::from_millis(37), started, run, interval)
    );
    let intervals = run.as_millis() / interval.as_millis();
    let url = config.store.effective_url();
    for service in ["onboarding", "payments", "payouts"] {
        let count = |reconstructed: bool| {
            let url = &url;
            async move {
                runboard_testkit::sql_strings(
                    url,
                    &format!(
                        "SELECT CAST(COUNT(*) AS TEXT) FROM service_snapshot
                         WHERE service = '{service}' AND reconstructed = {reconstructed}"
                    ),
                )
                .await[0]
                    .parse::<u128>()
                    .unwrap()
            }
        };
        let snapshots = count(false).await;
        assert_eq!(
            count(true).await,
            24,
            "{service}: the trend before the first poll is filled once, by one replica"
        );
        println!(
            "{service}: {snapshots} snapshots in {intervals} intervals, 2 replicas looking 5 times each"
        );
        assert!(
            (intervals - 1..=intervals + 1).contains(&snapshots),
            "{service}: {snapshots} snapshots in {intervals} intervals"
        );
    }
}

/// A crowd asking a slow service many different things at once (no two reads shareable)
/// holds at most all but one of its connections: the poll still reads it in time.
#[tokio::test]
async fn a_crowd_of_viewers_cannot_starve_the_poll_of_connections() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    let mut config = registered(&payments);
    config.max_connections = 2;
    let proxy = database_behind_proxy(&mut config).await;
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    proxy.slow_down(Duration::from_millis(300));

    let mut crowd = Vec::new();
    for person in 0..12 {
        crowd.push(common::bearer_client(
            &app.token_for(&format!("viewer-{person}"), &[Role::Viewer])
                .await,
        ));
    }
    let asked = (1..=60).map(|limit| {
        crowd[limit % crowd.len()]
            .get(app.url(&format!(
                "/api/v1/services/payments/sagas?status=failed&limit={limit}"
            )))
            .send()
    });
    let poll = async {
        // Once the crowd has taken what it may, and more of it waits.
        tokio::time::sleep(Duration::from_secs(1)).await;
        poll_once(&app.app).await.unwrap()
    };
    let (answers, polled) = tokio::join!(futures_util::future::join_all(asked), poll);
    assert_eq!(polled, 1, "the poll read the service beside the crowd");
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|a| a.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| [200, 502, 503].contains(s)),
        "answered, or told why not (busy for viewers, or slow): {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// The load test of #14, bounded and on loopback: one viewer's script hammers the most
/// expensive read (error groups over 20,000 failed sagas, read live) at 200 requests a
/// second for 30 seconds while the poller polls every second and an operator asks for a
/// preview. The viewer is slowed with 429s; the others do not notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_viewer_hammering_the_most_expensive_read_is_slowed_and_starves_nobody() {
    const RATE: u32 = 200;
    const WINDOW: Duration = Duration::from_secs(30);
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    runboard_fleet::seed_outage(&payments.database_url, "payments", 20_000)
        .await
        .unwrap();
    let config = registered(&payments);
    let max_connections = i64::from(config.max_connections);
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    let limits = app.app.config.limits.clone();
    let database = payments.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = PgPool::connect(&admin_url()).await.unwrap();
    let operator = common::bearer_client(&app.token_for("olga", &[Role::Operator]).await);
    let script = common::bearer_client(&app.token_for("vic", &[Role::Viewer]).await);
    let failed: Value = app
        .get_json("/api/v1/services/payments/sagas?status=failed&limit=5")
        .await;
    let ids: Vec<&str> = failed["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{failed}");

    let started = Instant::now();
    let hammer = async {
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / RATE);
        let mut sent = Vec::new();
        while started.elapsed() < WINDOW {
            ticks.tick().await;
            let request = script
                .get(app.url("/api/v1/services/payments/errors?live=true"))
                .send();
            sent.push(tokio::spawn(async move {
                let response = request.await.unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                (response.status().as_u16(), retry_after)
            }));
        }
        let answers = futures_util::future::join_all(sent).await;
        (answers, started.elapsed())
    };
    let polls = async {
        let mut polls = Vec::new();
        while started.elapsed() < WINDOW {
            let began = Instant::now();
            polls.push((poll_once(&app.app).await, began.elapsed()));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        polls
    };
    let preview = async {
        tokio::time::sleep(WINDOW / 2).await;
        let response = operator
            .post(app.url("/api/v1/actions"))
            .json(&serde_json::json!({
                "service": "payments",
                "mutation": "retrySagas",
                "arguments": { "ids": ids },
            }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let peak = async {
        let mut peak = 0;
        while started.elapsed() < WINDOW {
            peak = peak.max(runboard_connections(&admin, &database).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    };
    let ((answers, answered_within), polls, (preview_status, preview), peak) =
        tokio::join!(hammer, polls, preview, peak);

    let answers: Vec<(u16, bool)> = answers.into_iter().map(Result::unwrap).collect();
    let count = |status: u16| answers.iter().filter(|(s, _)| *s == status).count();
    let (ok, refused) = (count(200), count(429));
    println!(
        "{} requests from one viewer in {WINDOW:?}: {ok} answered, {refused} refused with 429, {} busy (503); {} polls, the slowest {:?}; peak connections {peak} of {max_connections}",
        answers.len(),
        count(503),
        polls.len(),
        polls.iter().map(|(_, took)| *took).max().unwrap(),
    );
    assert!(
        answers.len() as u32 >= RATE * 25,
        "the script sent about {RATE} a second: {}",
        answers.len()
    );
    assert!(refused > 0, "the viewer is slowed");
    assert!(
        answers
            .iter()
            .all(|(s, retry_after)| *s != 429 || *retry_after),
        "every 429 says when to come back"
    );
    // The burst, and the pace for as long as requests kept arriving (on a loaded machine
    // the last may arrive after the 30 s), plus a second of slack.
    let allowed = limits.per_person_burst
        + limits.per_person_per_second * (answered_within.as_secs() as u32 + 1);
    assert!(
        ok <= allowed as usize,
        "at most the burst and the pace got through: {ok} > {allowed}"
    );
    assert!(
        answers.iter().all(|(s, _)| [200, 429, 503].contains(s)),
        "answered, slowed or told the service is busy, never failed"
    );
    assert!(polls.len() >= 10, "{} polls", polls.len());
    for (polled, took) in &polls {
        assert_eq!(
            polled.as_ref().ok(),
            Some(&1),
            "every poll read the service (took {took:?})"
        );
    }
    assert_eq!(preview_status, 201, "the operator's preview: {preview}");
    assert!(
        peak <= max_connections,
        "at most max_connections = {max_connections} connections, saw {peak}"
    );
}

#[tokio::test]
async fn the_first_poll_fills_the_trend_before_it_from_the_services_own_timestamps() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let app = spawn_app_on(
        TestStore::new(Backend::Postgres).await,
        vec![registered(payments)],
    )
    .await;
    let since = Utc::now() - chrono::Duration::hours(25);
    poll_once(&app.app).await.unwrap();
    poll_once(&app.app).await.unwrap();
    let trend = app.app.store.trend("payments", since).await.unwrap();
    let (before, measured): (Vec<TrendPoint>, Vec<TrendPoint>) =
        trend.iter().partition(|p| p.reconstructed);
    assert_eq!(
        before.len(),
        24,
        "an hourly point for each hour before the first poll"
    );
    assert_eq!(
        measured.len(),
        2,
        "and the polls, the second filling nothing more"
    );
    assert!(before.last().unwrap().at < measured[0].at);
    assert!(
        before
            .windows(2)
            .all(|w| w[0].failed <= w[1].failed && w[0].stuck <= w[1].stuck),
        "counts from timestamps only grow towards now: {before:?}"
    );

    // Each point is what the service's own database says for that time.
    let service_db = PgPool::connect(&payments.database_url).await.unwrap();
    for point in [before[0], before[12], before[23]] {
        let (failed,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM supervisor_view
             WHERE NOT completed AND error_message IS NOT NULL AND updated_at <= $1",
        )
        .bind(point.at)
        .fetch_one(&service_db)
        .await
        .unwrap();
        assert_eq!(point.failed, failed as u64, "failed at {}", point.at);
    }
    assert!(before[23].failed <= measured[0].failed);

    let chart = app
        .get("/charts/services/payments/trend.svg")
        .await
        .text()
        .await
        .unwrap();
    assert!(chart.contains("first poll"), "{chart}");
}
