//! Runboard's own store: SQLite by default, PostgreSQL in production.
//!
//! Both run the same queries (written with `$n` placeholders, which both accept);
//! only the DDL differs, so each has its own migrations directory. Domain modules
//! write their queries against [`Pool`] through [`on_pool!`], once for both.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::StoreConfig;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store's data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store URL is not valid: {0}")]
    Url(sqlx::Error),
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, so one query text and one
/// row mapping serve both databases.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Connects (creating the SQLite file and its directory on first run); does not migrate.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.effective_url();
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(&url)
                .map_err(StoreError::Url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options)
                    .await?,
            )
        } else {
            let options = url.parse().map_err(StoreError::Url)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.acquire_timeout)
                    .connect_with(options)
                    .await?,
            )
        };
        Ok(Self { pool })
    }

    pub fn kind(&self) -> StoreKind {
        match self.pool {
            Pool::Sqlite(_) => StoreKind::Sqlite,
            Pool::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// Applies the migrations not yet applied; safe to run on every start and from several replicas.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Answers whether the store takes a query within `within`: readiness, not liveness.
    pub async fn check(&self, within: Duration) -> Result<(), StoreError> {
        let ping = async {
            on_pool!(self, |pool| sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(drop))?;
            Ok(())
        };
        tokio::time::timeout(within, ping)
            .await
            .map_err(|_| StoreError::Timeout(within))?
    }

    /// Waits for queries in flight and closes every connection.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}
