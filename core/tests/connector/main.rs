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

mod faults;
mod reads;
