//! Runboard's own store: SQLite by default, PostgreSQL in production.
//!
//! Both run the same queries (written with `$n` placeholders, which both accept);
//! only the DDL differs, so each has its own migrations directory. Domain modules
//! write their queries once for both through [`crate::db::on_pool!`].

use std::time::Duration;

use runboard_dialect::Dialect;

use crate::config::StoreConfig;
use crate::db::{OpenError, Pool, PoolSettings, on_pool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error("the store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

impl StoreError {
    /// A stored value that does not parse: the store only ever receives parsed values,
    /// so someone edited it by hand.
    pub(crate) fn corrupt(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Query(sqlx::Error::Decode(Box::new(error)))
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        Self::Open(e.to_string())
    }
}

pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Connects (creating the SQLite file and its directory on first run); does not migrate.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let settings = PoolSettings {
            max_connections: config.max_connections,
            acquire_timeout: config.acquire_timeout,
            owned: true,
            lazy: false,
            statement_timeout: None,
        };
        let pool = Pool::open(&config.effective_url(), &settings).await?;
        Ok(Self { pool })
    }

    /// Which database the store runs on.
    pub fn kind(&self) -> Dialect {
        self.pool.dialect()
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
            on_pool!(self.pool, |pool| sqlx::query("SELECT 1")
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
        self.pool.close().await
    }
}
