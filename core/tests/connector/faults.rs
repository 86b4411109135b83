//! A service that goes wrong is named and breaks only its own read: a missing column, a
//! malformed row, a stopped or slow service, a query that turns its session writable.

use super::*;

test_on_both_stores!(
    a_query_without_a_required_column_is_named,
    a_malformed_row_is_named_and_breaks_only_its_read
);

async fn a_query_without_a_required_column_is_named(backend: Backend) {
    let db = service_db(backend).await;
    let config = service_config(
        &db.url,
        "[services.queries]\nsupervisor_view = \"SELECT saga_id, saga_type, completed, error_message, created_at, updated_at FROM saga\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let error = connector
        .sagas(
            &SagaFilter {
                limit: 10,
                ..SagaFilter::default()
            },
            now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.problem,
            ReadProblem::MissingColumn { .. } | ReadProblem::Query { .. }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.starts_with("service payments:"), "{message}");
    assert!(message.contains("current_step"), "{message}");
}

#[tokio::test]
async fn a_stopped_service_is_unreachable_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite://{}", dir.path().join("gone.db").display()),
        "postgres://postgres@127.0.0.1:9/payments".to_owned(),
    ] {
        let connector = Connector::new(&service_config(&url, ""), Duration::from_secs(60))
            .await
            .unwrap();
        let error = connector.saga_counts(now()).await.unwrap_err();
        assert!(
            matches!(error.problem, ReadProblem::Unreachable(_)),
            "{url}: {error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("service payments: its database is unreachable")
        );
    }
}

#[tokio::test]
async fn a_slow_service_times_out_within_its_bound() {
    let db = service_db(Backend::Postgres).await;
    let config = service_config(
        &db.url,
        "[services.queries]\nsupervisor_view = \"SELECT s.* FROM supervisor_view s, pg_sleep(10)\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = connector.saga_counts(now()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error.problem,
            ReadProblem::Timeout(_) | ReadProblem::Query { .. }
        ),
        "{error}"
    );
}

/// A query cannot make its session writable for the reads after it: each read is a `READ
/// ONLY` transaction of its own, rolled back after. (PostgreSQL: SQLite files are opened
/// read-only, and SQLite has no functions in SQL that write.)
#[tokio::test]
async fn a_query_that_turns_its_session_writable_still_writes_nothing() {
    let db = service_db(Backend::Postgres).await;
    run_sql(&db.url, "CREATE TABLE poll_visit (at TIMESTAMPTZ NOT NULL)").await;
    run_sql(
        &db.url,
        "CREATE FUNCTION note_poll() RETURNS INTEGER LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO poll_visit VALUES (now()); RETURN 1; END $$",
    )
    .await;
    // One connection, so that every read is in the same session: the first turns the
    // session's read-only default off, and each read after it would write.
    let config = service_config(
        &db.url,
        "max_connections = 1\n[services.queries]\nsupervisor_view = \"SELECT v.* FROM supervisor_view v, \
         (SELECT CASE WHEN current_setting('default_transaction_read_only') = 'on' \
         THEN set_config('default_transaction_read_only', 'off', false) = 'off' \
         ELSE note_poll() = 1 END) AS noted\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(30 * 60))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(connector.saga_counts(now()).await.unwrap().failed, 12);
    }
    let visits = sql_strings(&db.url, "SELECT CAST(COUNT(*) AS TEXT) FROM poll_visit").await;
    assert_eq!(visits, ["0"], "no read wrote");
}

async fn a_malformed_row_is_named_and_breaks_only_its_read(backend: Backend) {
    let db = service_db(backend).await;
    let config = service_config(
        &db.url,
        "[services.queries]\nwithheld_funds = \"SELECT saga_id, 'twelve' AS amount, currency FROM held\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(30 * 60))
        .await
        .unwrap();
    let error = connector.withheld_funds().await.unwrap_err();
    assert!(
        matches!(error.problem, ReadProblem::MalformedRow { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("withheld_funds"), "{message}");
    assert!(
        message.contains("\"twelve\" is not a decimal number"),
        "{message}"
    );
    // The other reads of the same service still answer.
    assert_eq!(connector.saga_counts(now()).await.unwrap().failed, 12);
}
