//! What the API says is what each service's database says, on both stores: stopped and slow
//! services break nothing else, a contract query that writes writes nothing, bad filters
//! are refused, pasted ids are found, and the first poll fills the trend.

use super::*;

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
    let service = "payments".parse().unwrap();
    let trend = app.app.store.trend(&service, since).await.unwrap();
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
