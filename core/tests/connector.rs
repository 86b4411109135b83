//! The connector against a service database built here to the letter of the contract,
//! on SQLite and on PostgreSQL, with known rows so every number can be checked.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use runboard_core::actions::runbook::template::Template;
use runboard_core::actions::runbook::values::entity_values;
use runboard_core::config::{Config, Overrides, ServiceConfig};
use runboard_core::connector::{Connector, ReadProblem, SagaFilter};
use runboard_model::{ActionSpec, ArgumentSpec, BatchItemStatus, SagaStatus};
use runboard_testkit::{Backend, TestDatabase, run_sql, sql_strings, test_on_both_stores};
use sqlx::Connection;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

/// A service database: its URL and what keeps it alive.
struct ServiceDb {
    url: String,
    _database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

const SAGAS: usize = 120;
const ERRORS: [&str; 3] = [
    "NullPointerException in ReserveFundsStep.apply",
    "timeout calling ledger-service after 30s",
    "<img src=x onerror=alert(1)>",
];

/// Saga `i`: every 10th failed (errors in turn), every 15th (not failed) stuck,
/// every 3rd of the rest completed, the others running. Created one minute apart.
fn saga(
    i: usize,
) -> (
    String,
    bool,
    Option<&'static str>,
    DateTime<Utc>,
    DateTime<Utc>,
) {
    let created = now() - chrono::Duration::minutes(i as i64 + 1);
    let id = format!("saga-{i:04}");
    if i.is_multiple_of(10) {
        (id, false, Some(ERRORS[(i / 10) % 3]), created, created)
    } else if i.is_multiple_of(15) {
        (id, false, None, created, now() - chrono::Duration::hours(2))
    } else if i.is_multiple_of(3) {
        (id, true, None, created, created)
    } else {
        (
            id,
            false,
            None,
            created,
            now() - chrono::Duration::seconds(30),
        )
    }
}

fn expected_status(i: usize) -> SagaStatus {
    let (_, completed, error, _, updated) = saga(i);
    SagaStatus::derive(
        completed,
        error,
        updated,
        now() - chrono::Duration::minutes(30),
    )
}

macro_rules! fill {
    ($conn:expr, $ddl:expr, $insert_held:expr) => {{
        let conn = $conn;
        for statement in $ddl {
            sqlx::query(statement).execute(&mut *conn).await.unwrap();
        }
        for i in 0..SAGAS {
            let (id, completed, error, created, updated) = saga(i);
            sqlx::query("INSERT INTO saga VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&id)
                .bind(if i % 2 == 0 { "payout" } else { "refund" })
                .bind(if error.is_some() {
                    "reserve_funds"
                } else {
                    "notify"
                })
                .bind(completed)
                .bind(error)
                .bind(created)
                .bind(updated)
                .execute(&mut *conn)
                .await
                .unwrap();
            if error.is_some() || expected_status(i) == SagaStatus::Stuck {
                let (amount, currency) = if i % 20 == 0 {
                    ("10.10", "USD")
                } else {
                    ("0.10", "EUR")
                };
                sqlx::query($insert_held)
                    .bind(&id)
                    .bind(amount)
                    .bind(currency)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }
        sqlx::query("INSERT INTO batch_run VALUES ('friday-payout', 'Friday payout', $1, NULL)")
            .bind(now() - chrono::Duration::hours(1))
            .execute(&mut *conn)
            .await
            .unwrap();
        for i in 0..50 {
            let (status, error) = match i % 5 {
                0 => ("failed", Some("IBAN checksum mismatch")),
                1 | 2 => ("done", None),
                _ => ("pending", None),
            };
            sqlx::query("INSERT INTO batch_item VALUES ('friday-payout', $1, $2, $3, $4)")
                .bind(format!("item-{i:03}"))
                .bind(status)
                .bind(error)
                .bind(now())
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    }};
}

const COMMON_DDL: [&str; 2] = [
    "CREATE VIEW supervisor_view AS SELECT * FROM saga",
    "CREATE INDEX saga_by_age ON saga (created_at, saga_id)",
];

async fn service_db(backend: Backend) -> ServiceDb {
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("payments.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            let ddl = [
                "CREATE TABLE saga (saga_id TEXT PRIMARY KEY, saga_type TEXT, current_step TEXT, completed BOOLEAN, error_message TEXT, created_at TEXT, updated_at TEXT)",
                "CREATE TABLE held (saga_id TEXT, amount TEXT, currency TEXT)",
                "CREATE TABLE batch_run (batch_id TEXT, name TEXT, started_at TEXT, finished_at TEXT)",
                "CREATE TABLE batch_item (batch_id TEXT, item_id TEXT, status TEXT, error TEXT, updated_at TEXT)",
            ];
            fill!(
                &mut conn,
                ddl.iter().chain(&COMMON_DDL).copied(),
                "INSERT INTO held VALUES ($1, $2, $3)"
            );
            ServiceDb {
                url,
                _database: None,
                _dir: dir,
            }
        }
        Backend::Postgres => {
            let database = TestDatabase::create().await;
            let url = database.url();
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let ddl = [
                "CREATE TABLE saga (saga_id TEXT PRIMARY KEY, saga_type TEXT, current_step TEXT, completed BOOLEAN, error_message TEXT, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ)",
                "CREATE TABLE held (saga_id TEXT, amount NUMERIC, currency TEXT)",
                "CREATE TABLE batch_run (batch_id TEXT, name TEXT, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ)",
                "CREATE TABLE batch_item (batch_id TEXT, item_id TEXT, status TEXT, error TEXT, updated_at TIMESTAMPTZ)",
            ];
            // Amounts are bound as text; PostgreSQL needs to be told they are numeric.
            let insert_held = "INSERT INTO held VALUES ($1, $2::numeric, $3)";
            fill!(
                &mut conn,
                ddl.iter().chain(&COMMON_DDL).copied(),
                insert_held
            );
            ServiceDb {
                url,
                _database: Some(database),
                _dir: dir,
            }
        }
    }
}

fn service_config(url: &str, extra: &str) -> ServiceConfig {
    let text = format!(
        "[[services]]\nname = \"payments\"\nteam = \"payments\"\ndatabase_url = \"{url}\"\n\
         graphql_url = \"http://127.0.0.1:1/graphql\"\nquery_timeout = \"2s\"\n{extra}"
    );
    Config::parse(&text, Path::new("test.toml"), &Overrides::default())
        .unwrap()
        .services
        .remove(0)
}

async fn connector(db: &ServiceDb) -> Connector {
    let config = service_config(
        &db.url,
        "[services.queries]\nwithheld_funds = \"SELECT saga_id, amount, currency FROM held\"\n",
    );
    Connector::new(&config, Duration::from_secs(30 * 60))
        .await
        .unwrap()
}

test_on_both_stores!(
    counts_follow_the_status_derivation,
    pages_walk_every_failed_saga_once_in_order,
    filters_narrow_by_type_step_error_and_age,
    errors_are_grouped_by_message,
    batches_count_their_items,
    withheld_funds_sum_exactly_per_currency,
    facts_about_a_saga_come_from_its_own_rows,
    a_runbook_step_is_filled_in_from_each_sagas_own_data,
    a_query_without_a_required_column_is_named,
    a_malformed_row_is_named_and_breaks_only_its_read,
);

async fn counts_follow_the_status_derivation(backend: Backend) {
    let db = service_db(backend).await;
    let counts = connector(&db).await.saga_counts(now()).await.unwrap();
    let of = |status| (0..SAGAS).filter(|&i| expected_status(i) == status).count() as u64;
    assert_eq!(counts.failed, of(SagaStatus::Failed));
    assert_eq!(counts.stuck, of(SagaStatus::Stuck));
    assert_eq!(counts.completed, of(SagaStatus::Completed));
    assert_eq!(counts.running, of(SagaStatus::Running));
    assert_eq!(counts.failed, 12);
    assert!(counts.stuck > 0 && counts.running > 0);
}

async fn pages_walk_every_failed_saga_once_in_order(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    for oldest_first in [false, true] {
        let mut filter = SagaFilter {
            status: Some(SagaStatus::Failed),
            oldest_first,
            limit: 5,
            ..SagaFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = connector.sagas(&filter, now()).await.unwrap();
            assert!(page.sagas.len() <= 5);
            assert!(page.sagas.iter().all(|s| s.status == SagaStatus::Failed));
            seen.extend(page.sagas.into_iter().map(|s| s.saga_id));
            match page.next {
                Some(next) => filter.after = Some(next.parse().unwrap()),
                None => break,
            }
        }
        let mut expected: Vec<_> = (0..SAGAS)
            .filter(|i| i % 10 == 0)
            .map(|i| format!("saga-{i:04}"))
            .collect();
        // Newest first means the smallest index first: saga i was created i minutes ago.
        if oldest_first {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

async fn filters_narrow_by_type_step_error_and_age(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    let filter = SagaFilter {
        saga_type: Some("payout".into()),
        error_message: Some(ERRORS[2].into()),
        step: Some("reserve_funds".into()),
        older_than: Some(Duration::from_secs(30 * 60)),
        limit: 100,
        ..SagaFilter::default()
    };
    let page = connector.sagas(&filter, now()).await.unwrap();
    let ids: Vec<_> = page.sagas.iter().map(|s| s.saga_id.as_str()).collect();
    // ERRORS[2] fails sagas 20, 50, 80 and 110 (all payouts); saga 20 is only 21 minutes old.
    assert_eq!(ids, ["saga-0050", "saga-0080", "saga-0110"]);

    let newer = SagaFilter {
        newer_than: Some(Duration::from_secs(5 * 60 + 30)),
        limit: 100,
        ..SagaFilter::default()
    };
    let ids: Vec<_> = connector
        .sagas(&newer, now())
        .await
        .unwrap()
        .sagas
        .into_iter()
        .map(|s| s.saga_id)
        .collect();
    assert_eq!(
        ids,
        [
            "saga-0000",
            "saga-0001",
            "saga-0002",
            "saga-0003",
            "saga-0004"
        ]
    );
}

async fn errors_are_grouped_by_message(backend: Backend) {
    let db = service_db(backend).await;
    let groups = connector(&db).await.error_groups().await.unwrap();
    let summary: Vec<_> = groups
        .iter()
        .map(|g| (g.error_message.as_str(), g.count))
        .collect();
    // 12 failed sagas, errors in turn: 4 each; ties are ordered by message.
    assert_eq!(summary, [(ERRORS[2], 4), (ERRORS[0], 4), (ERRORS[1], 4)]);
    let npe = groups
        .iter()
        .find(|g| g.error_message == ERRORS[0])
        .unwrap();
    assert_eq!(
        npe.last_seen,
        now() - chrono::Duration::minutes(1),
        "saga 0 failed last"
    );
    assert_eq!(
        npe.first_seen,
        now() - chrono::Duration::minutes(91),
        "saga 90 failed first"
    );
}

async fn batches_count_their_items(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    let batches = connector.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!((batch.done, batch.failed, batch.pending), (20, 10, 20));
    assert_eq!(batch.name, "Friday payout");
    assert_eq!(batch.finished_at, None);
    assert_eq!(connector.failed_batches().await.unwrap(), 1);
    assert!(
        connector
            .batches(Some("no-such-batch"))
            .await
            .unwrap()
            .is_empty()
    );

    let mut after = None;
    let mut failed = Vec::new();
    loop {
        let page = connector
            .batch_items(
                "friday-payout",
                Some(BatchItemStatus::Failed),
                after.as_deref(),
                4,
            )
            .await
            .unwrap();
        assert!(
            page.items
                .iter()
                .all(|i| i.error.as_deref() == Some("IBAN checksum mismatch"))
        );
        failed.extend(page.items.into_iter().map(|i| i.item_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..50).step_by(5).map(|i| format!("item-{i:03}")).collect();
    assert_eq!(failed, expected);
}

async fn withheld_funds_sum_exactly_per_currency(backend: Backend) {
    let db = service_db(backend).await;
    let funds = connector(&db).await.withheld_funds().await.unwrap();
    let held: Vec<usize> = (0..SAGAS)
        .filter(|&i| matches!(expected_status(i), SagaStatus::Failed | SagaStatus::Stuck))
        .collect();
    let usd = held.iter().filter(|&&i| i % 20 == 0).count();
    let eur = held.len() - usd;
    let text: Vec<_> = funds.iter().map(|m| m.to_string()).collect();
    // 0.10 added n times stays exact: no float anywhere on the way.
    assert_eq!(
        text,
        [
            format!("{}.{:02} EUR", eur / 10, (eur % 10) * 10),
            format!("{}.{:02} USD", usd * 10 + usd / 10, (usd % 10) * 10)
        ]
    );
}

/// A saga's facts come by name from the service's `entity_facts` query, only that saga's; a
/// service without the query says it offers none rather than "no facts".
async fn facts_about_a_saga_come_from_its_own_rows(backend: Backend) {
    let db = service_db(backend).await;
    let facts = "SELECT saga_id, 'reference' AS name, saga_type AS value FROM saga \
                 UNION ALL SELECT saga_id, 'currency', currency FROM held";
    let config = service_config(
        &db.url,
        &format!("[services.queries]\nentity_facts = \"{facts}\"\n"),
    );
    let with_facts = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    // Saga 10: failed, a payout, holding 0.10 EUR (see `saga` and `fill!`).
    let saga = saga(10).0;
    let read = with_facts.saga_facts(&saga).await.unwrap().unwrap();
    let named: Vec<(&str, &str)> = read
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(named, [("currency", "EUR"), ("reference", "payout")]);
    assert!(
        connector(&db)
            .await
            .saga_facts(&saga)
            .await
            .unwrap()
            .is_none(),
        "no entity_facts query: none offered"
    );
    let bad = Config::parse(
        &format!(
            "[[services]]\nname = \"payments\"\nteam = \"payments\"\ndatabase_url = \"{}\"\n\
             graphql_url = \"http://127.0.0.1:1/graphql\"\n\
             [services.queries]\nentity_facts = \"DELETE FROM saga\"\n",
            db.url
        ),
        Path::new("test.toml"),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("queries.entity_facts"), "{bad}");
}

/// A runbook step's arguments, filled in for each saga from the service's own rows: its
/// supervisor row, the money it holds and its facts, read once for all of them; a saga
/// lacking a value (a completed one holds no money) is refused by name, never sent a blank.
async fn a_runbook_step_is_filled_in_from_each_sagas_own_data(backend: Backend) {
    let db = service_db(backend).await;
    let config = service_config(
        &db.url,
        "[services.queries]\nwithheld_funds = \"SELECT saga_id, amount, currency FROM held\"\n\
         entity_facts = \"SELECT saga_id, 'account' AS name, 'acct-' || saga_type AS value FROM saga\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let spec = ActionSpec {
        mutation: "transferFunds".into(),
        description: None,
        arguments: ["fromAccount", "amount", "currency", "reference", "note"]
            .map(|name| ArgumentSpec {
                name: name.into(),
                description: None,
                type_name: "String".into(),
                list: false,
                required: true,
            })
            .into(),
        dry_run: true,
    };
    let step = Template::parse(
        serde_json::json!({
            "fromAccount": "{{ facts.account }}",
            "amount": "{{ funds.amount }}",
            "currency": "{{ funds.currency }}",
            "reference": "RB-{{ entity.id }}",
            "note": "{{ saga.status }} at {{ saga.step }}: {{ param.ticket }}",
        })
        .as_object()
        .unwrap(),
    )
    .unwrap();
    step.check(&spec).unwrap();

    // Saga 10: failed, a payout, holding 0.10 EUR; saga 3: completed, holding nothing.
    let (failed, completed) = (saga(10).0, saga(3).0);
    let params = [("ticket".to_owned(), "INC-7".to_owned())].into();
    let values = entity_values(
        &connector,
        &[failed.clone(), completed.clone()],
        &step.placeholders(),
        &params,
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(step.render(&spec, &values[&failed]).unwrap()),
        serde_json::json!({
            "fromAccount": "acct-payout",
            "amount": "0.10",
            "currency": "EUR",
            "reference": "RB-saga-0010",
            "note": "failed at reserve_funds: INC-7",
        })
    );
    assert_eq!(
        step.render(&spec, &values[&completed])
            .unwrap_err()
            .to_string(),
        "argument \"amount\": no value for funds.amount: it holds no money"
    );
}

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
