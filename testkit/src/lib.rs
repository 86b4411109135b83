//! Test support shared by the crates' integration tests.
//!
//! Every test gets a store of its own: an SQLite file in a temporary directory, or a
//! PostgreSQL database created for it on the machine's server and dropped afterwards,
//! so tests run in parallel and leave nothing behind.

mod chaos_proxy;
mod kubernetes;
mod oidc_provider;
mod postgres;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runboard_core::config::StoreConfig;
use runboard_core::store::Store;

pub use chaos_proxy::ChaosProxy;
pub use kubernetes::{Answered, FakeKubernetes};
pub use oidc_provider::{DeviceClient, MachineClient, OidcProvider, ProviderPerson};
pub use postgres::{TestDatabase, admin_url};

/// The store backends every store-touching test runs on: the dialect layer's databases.
pub use runboard_dialect::Dialect as Backend;

/// A migrated, empty store of one backend, and what keeps it alive.
pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    /// The PostgreSQL database behind the store, dropped with it.
    pub database: Option<TestDatabase>,
    /// Holds the SQLite file; also a scratch directory for the test.
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (config, database) = match backend {
            Backend::Sqlite => (
                StoreConfig {
                    data_dir: dir.path().join("data"),
                    ..StoreConfig::default()
                },
                None,
            ),
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                (
                    StoreConfig {
                        url: Some(database.url().into()),
                        ..StoreConfig::default()
                    },
                    Some(database),
                )
            }
        };
        Self::open(config, database, dir).await
    }

    /// A PostgreSQL store reached through a [`ChaosProxy`], so the test can cut it.
    pub async fn postgres_behind_proxy() -> (Self, Arc<ChaosProxy>) {
        let database = TestDatabase::create().await;
        let proxy = ChaosProxy::start(SocketAddr::from(([127, 0, 0, 1], database.port()))).await;
        let config = StoreConfig {
            url: Some(database.url_via_port(proxy.port()).into()),
            acquire_timeout: Duration::from_secs(1),
            ..StoreConfig::default()
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        (Self::open(config, Some(database), dir).await, proxy)
    }

    async fn open(
        config: StoreConfig,
        database: Option<TestDatabase>,
        dir: tempfile::TempDir,
    ) -> Self {
        let store = Store::connect(&config)
            .await
            .expect("connect the test store");
        store.migrate().await.expect("migrate the test store");
        Self {
            store,
            config,
            database,
            dir,
        }
    }
}

/// Declares `mod $name { sqlite, postgres }`: one `#[tokio::test]` per backend, each
/// calling `$test(Backend)`, so the same assertions hold on both stores.
#[macro_export]
macro_rules! test_on_both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

/// Runs one statement on the database at `url` behind Runboard's back, as an operator
/// with a SQL console would; returns the rows it changed.
pub async fn run_sql(url: &str, sql: &str) -> u64 {
    let pool = console(url).await;
    let done = pool.execute(sql, &[]).await.expect("the statement runs");
    pool.close().await;
    done
}

/// The single text column of every row `sql` selects on the database at `url`.
pub async fn sql_strings(url: &str, sql: &str) -> Vec<String> {
    let pool = console(url).await;
    let strings = runboard_dialect::on_pool!(pool, |pool| sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .expect("the query runs"));
    pool.close().await;
    strings
}

/// A connection to a database as a SQL console has one.
async fn console(url: &str) -> runboard_dialect::Pool {
    let settings = runboard_dialect::PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        // It writes, as a console does (not owned, SQLite would open read-only).
        owned: true,
        lazy: false,
        statement_timeout: None,
    };
    runboard_dialect::Pool::open(url, &settings)
        .await
        .expect("the database opens")
}
