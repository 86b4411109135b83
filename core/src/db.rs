//! One pool type over the databases sqlx reaches, for Runboard's store and for the
//! services' own databases alike. Queries are written once and compiled for each
//! database through [`on_pool!`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, so one query text and one
/// row mapping serve both databases.
macro_rules! on_pool {
    ($pool_enum:expr, |$pool:ident| $body:expr) => {
        match &$pool_enum {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// How a pool connects; the store writes, connectors only read.
pub(crate) struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Runboard's own store: create the SQLite file, journal in WAL mode.
    pub owned: bool,
    /// A service's database: connect on first use, so a service that is down does not stop start-up.
    pub lazy: bool,
    /// PostgreSQL stops a statement after this long, so a timed-out read does not keep working.
    pub statement_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("the URL is not valid: {0}")]
    Url(sqlx::Error),
    #[error("cannot create the directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Connect(sqlx::Error),
}

impl Pool {
    pub(crate) async fn open(url: &str, settings: &PoolSettings) -> Result<Self, OpenError> {
        if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(url)
                .map_err(OpenError::Url)?
                .busy_timeout(Duration::from_secs(5));
            if settings.owned {
                options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true);
                if let Some(dir) = options.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            } else {
                options = options.read_only(true);
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(settings.owned);
            Ok(Self::Sqlite(if settings.lazy {
                pool.connect_lazy_with(options)
            } else {
                pool.connect_with(options)
                    .await
                    .map_err(OpenError::Connect)?
            }))
        } else {
            // Named, so that a service's DBA can see which connections are Runboard's.
            let mut options = PgConnectOptions::from_str(url)
                .map_err(OpenError::Url)?
                .application_name("runboard");
            if let Some(timeout) = settings.statement_timeout {
                options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
            }
            // A service's pool skips the ping before each read: the read itself tells, and a
            // slow database then shows as slow, not as a pool that timed out.
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(settings.owned);
            Ok(Self::Postgres(if settings.lazy {
                pool.connect_lazy_with(options)
            } else {
                pool.connect_with(options)
                    .await
                    .map_err(OpenError::Connect)?
            }))
        }
    }

    /// The database's clock in milliseconds since the Unix epoch, as an SQL expression:
    /// leases and poll slots are timed by the store, so that replicas whose own clocks
    /// drift still agree on them.
    pub(crate) fn now_ms(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Self::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// A lock on the rows of `table` (an alias in the query) that a concurrent UPDATE of
    /// them must wait for, as a locking clause; SQLite has one writer at a time and needs none.
    pub(crate) fn share_lock(&self, table: &str) -> String {
        match self {
            Self::Sqlite(_) => String::new(),
            Self::Postgres(_) => format!("FOR SHARE OF {table}"),
        }
    }

    pub(crate) async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}
