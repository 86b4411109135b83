//! Test support: a fleet on SQLite or on PostgreSQL databases of its own (dropped after
//! the test), GraphQL over HTTP, and plain SQL against a service database.

#![allow(dead_code)] // each test binary uses part of it

use runboard_fleet::{CallerCheck, Fleet, FleetConfig, ServiceInfo, Storage};
use serde_json::{Value, json};
use sqlx::{Connection, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn admin_url() -> String {
    std::env::var("RUNBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// PostgreSQL databases made for one test, dropped when it ends, pass or fail.
pub struct DropDatabases(pub Vec<String>);

impl Drop for DropDatabases {
    fn drop(&mut self) {
        // Drop runs outside any async context we could await in: a thread with its own runtime.
        let names = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url()).await?;
                    for name in names {
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await?;
                    }
                    Ok::<_, sqlx::Error>(())
                })
                .map_err(|e| eprintln!("could not drop test databases: {e}"))
        })
        .join();
    }
}

pub struct TestFleet {
    pub fleet: Fleet,
    pub http: reqwest::Client,
    pub backend: Backend,
    // Dropped after the fleet: the databases outlive their pools.
    _databases: Option<DropDatabases>,
    _dir: tempfile::TempDir,
}

impl TestFleet {
    pub async fn start(backend: Backend, bearer_token: Option<&str>) -> TestFleet {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (storage, databases) = match backend {
            Backend::Sqlite => (
                Storage::Sqlite {
                    dir: dir.path().join("fleet"),
                },
                None,
            ),
            Backend::Postgres => {
                let prefix = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
                let names = ["payments", "payouts", "onboarding"]
                    .iter()
                    .map(|s| format!("{prefix}_{s}"))
                    .collect();
                (
                    Storage::Postgres {
                        admin_url: admin_url(),
                        database_prefix: prefix,
                    },
                    Some(DropDatabases(names)),
                )
            }
        };
        let fleet = Fleet::start(FleetConfig {
            storage,
            callers: bearer_token.map_or(CallerCheck::Anyone, |t| CallerCheck::Token(t.to_owned())),
            load: false,
        })
        .await
        .expect("fleet starts");
        TestFleet {
            fleet,
            http: reqwest::Client::new(),
            backend,
            _databases: databases,
            _dir: dir,
        }
    }

    pub fn service(&self, name: &str) -> &ServiceInfo {
        self.fleet
            .services()
            .iter()
            .find(|s| s.name == name)
            .expect("service in the fleet")
    }

    /// Posts a GraphQL document; returns the HTTP status and the JSON body.
    pub async fn graphql_with(
        &self,
        service: &str,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(&self.service(service).graphql_url)
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GraphQL endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a GraphQL document that must succeed; returns its `data`.
    pub async fn graphql(&self, service: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql_with(service, query, variables, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "GraphQL errors: {body}");
        body["data"].clone()
    }

    /// Runs SQL on a service's database; every column must be text (cast it in the SQL).
    pub async fn rows(&self, service: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        rows(&self.service(service).database_url, sql).await
    }

    /// `updated_at` older than this SQL expression means stuck (10 minutes).
    pub fn stuck_since(&self) -> &'static str {
        stuck_since(self.backend)
    }
}

pub fn stuck_since(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-600 seconds')",
        Backend::Postgres => "now() - interval '600 seconds'",
    }
}

pub async fn rows(database_url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    fn texts<R: Row>(row: &R) -> Vec<Option<String>>
    where
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        (0..row.len())
            .map(|i| row.try_get::<Option<String>, _>(i).expect("a text column"))
            .collect()
    }
    if database_url.starts_with("sqlite:") {
        let mut db = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("open the SQLite database");
        let rows = sqlx::query(sql).fetch_all(&mut db).await.expect(sql);
        rows.iter().map(texts).collect()
    } else {
        let mut db = sqlx::PgConnection::connect(database_url)
            .await
            .expect("connect to the PostgreSQL database");
        let rows = sqlx::query(sql).fetch_all(&mut db).await.expect(sql);
        rows.iter().map(texts).collect()
    }
}

/// The one text value a query returns.
pub fn single(rows: Vec<Vec<Option<String>>>) -> String {
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
        .expect("one value")
}

/// Declares `mod $name { sqlite, postgres }`, one `#[tokio::test]` per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )+
    };
}
