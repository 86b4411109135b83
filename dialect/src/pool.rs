//! One pool over either database, and transactions on it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::{Arg, Dialect, Row, bind_args};

/// A pool on an SQLite file or a PostgreSQL database; [`on_pool!`](crate::on_pool) runs
/// one query text on either.
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either database.
pub enum Transaction {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// A store connection back in the pool for less than this is not pinged again before use.
const RECENTLY_USED: Duration = Duration::from_secs(1);

/// The page cache of one connection to a service's SQLite file, in KiB.
const SERVICE_CACHE_KIB: u32 = 128;

/// A connection to a service's PostgreSQL unused this long is closed: a poll's or a page's
/// reads are done within it, so that between polls (15 s apart) a service holds none.
const SERVICE_IDLE: Duration = Duration::from_secs(2);

/// How a pool connects; the store writes, connectors only read.
pub struct PoolSettings {
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
pub enum OpenError {
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
    /// Opens a pool on the database at `url` as `settings` say.
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<Self, OpenError> {
        if Dialect::of_url(url) == Dialect::Sqlite {
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
                // A service's file is read by polls and pages, each a few statements a poll
                // interval apart: a page cache of SQLite's default 2 MB per connection kept
                // most of the file in memory for each of a service's connections (7 MB a
                // service in all, 1.4 GB at 200), while the OS caches the file once for all.
                options = options
                    .read_only(true)
                    .pragma("cache_size", format!("-{SERVICE_CACHE_KIB}"));
            }
            let mut pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(settings.owned);
            if !settings.owned {
                // A connection to a service's file closes as its read ends: opening one is
                // cheap (no server, no network), while each open one is a thread with its
                // page cache. Kept idle for 2 s, the connections of every service polled in
                // that time were open together: 330-400 threads at 200 services.
                pool = pool.after_release(|_, _| Box::pin(async { Ok(false) }));
            }
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
            if !settings.owned {
                // A service's database is only read: its session refuses writes from the
                // start (after any options in the URL, so that none turns it off), as the
                // SQLite file is opened read-only.
                options = options.options([("default_transaction_read_only", "on")]);
            }
            if let Some(timeout) = settings.statement_timeout {
                options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
            }
            // A service's pool skips the ping before each read: the read itself tells, and a
            // slow database then shows as slow, not as a pool that timed out. The store's
            // pool pings only a connection that sat idle: sqlx pings each one as it comes
            // back to the pool, so one used a moment ago is known to work, and a page view
            // (several short store reads) is spared a round trip per read.
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false);
            let pool = if settings.owned {
                pool.before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for > RECENTLY_USED {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
            } else {
                pool.idle_timeout(SERVICE_IDLE)
            };
            Ok(Self::Postgres(if settings.lazy {
                pool.connect_lazy_with(options)
            } else {
                pool.connect_with(options)
                    .await
                    .map_err(OpenError::Connect)?
            }))
        }
    }

    /// Which database it is.
    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Begins a write transaction ([`BeginWrite`]).
    pub async fn begin(&self) -> Result<Transaction, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Transaction::Sqlite(pool.begin_write().await?),
            Pool::Postgres(pool) => Transaction::Postgres(pool.begin_write().await?),
        })
    }

    /// Begins a transaction that only reads, so it takes no write lock.
    pub async fn begin_read(&self) -> Result<Transaction, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Transaction::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Transaction::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction for one read of a service's database. On PostgreSQL it is
    /// `READ ONLY` and stops its statements after `timeout` whatever the session's settings
    /// say by then (a query can change those); both in the one round trip of `BEGIN`. An
    /// SQLite service's file is opened read-only, and its reads are timed by the caller.
    pub async fn begin_read_only(&self, timeout: Duration) -> Result<Transaction, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Transaction::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Transaction::Postgres(
                pool.begin_with(format!(
                    "BEGIN READ ONLY; SET LOCAL statement_timeout = {}",
                    timeout.as_millis()
                ))
                .await?,
            ),
        })
    }

    /// Begins a transaction for an export of a service's list: like
    /// [`Pool::begin_read_only`], and on PostgreSQL `REPEATABLE READ`, so that every page
    /// of the list is read from one snapshot. An SQLite read transaction keeps its snapshot
    /// from its first read to its end already.
    pub async fn begin_snapshot(&self, timeout: Duration) -> Result<Transaction, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Transaction::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Transaction::Postgres(
                pool.begin_with(format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {}",
                    timeout.as_millis()
                ))
                .await?,
            ),
        })
    }

    /// Runs one statement; the rows it changed.
    pub async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        crate::on_pool!(self, |pool| Ok(bind_args!(sqlx::query(sql), args)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    /// Every row one query selects.
    pub async fn fetch_all<T: Row>(&self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error> {
        crate::on_pool!(self, |pool| bind_args!(sqlx::query_as::<_, T>(sql), args)
            .fetch_all(pool)
            .await)
    }

    /// Runs several `;`-separated statements without parameters (DDL).
    pub async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        crate::on_pool!(self, |pool| sqlx::raw_sql(sql)
            .execute(pool)
            .await
            .map(drop))
    }

    pub async fn close(&self) {
        crate::on_pool!(self, |pool| pool.close().await)
    }
}

/// Beginning a write transaction on either concrete pool, for code inside
/// [`on_pool!`](crate::on_pool). SQLite takes its write lock at once (`BEGIN IMMEDIATE`),
/// so a transaction that reads before it writes never fails on a writer that came in
/// between (a deferred one would fail at once with "database is locked", past the busy
/// timeout). Every write transaction begins here, never with sqlx's `begin`.
pub trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl Transaction {
    /// Runs one statement; the rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Transaction::Sqlite(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Transaction::Postgres(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Every row one query selects.
    pub async fn fetch_all<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<T>, sqlx::Error> {
        self.fetch_all_with(sql, args, true).await
    }

    /// Every row one query selects, the statement unnamed on PostgreSQL, planned for its
    /// values each time: for the reads of a service's database. A statement prepared and run
    /// again gets a generic plan after five runs, and a service's data is skewed (one error
    /// group may hold a million of its sagas): the generic plan of a selection's page read
    /// the whole group through its error-message index and sorted it, for every page of
    /// 5,000 (42 s of a million-entity preview's 179 s). Unnamed statements also pass a
    /// PgBouncer in transaction mode, which a service may sit behind.
    pub async fn fetch_all_unnamed<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<T>, sqlx::Error> {
        self.fetch_all_with(sql, args, false).await
    }

    /// Every row one query selects, the statement prepared once and kept on PostgreSQL if
    /// `persistent`, else sent unnamed.
    async fn fetch_all_with<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
        persistent: bool,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Transaction::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **tx)
                    .await
            }
            Transaction::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql).persistent(persistent), args)
                    .fetch_all(&mut **tx)
                    .await
            }
        }
    }

    /// The row one query selects, if any.
    pub async fn fetch_optional<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Transaction::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
            Transaction::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Transaction::Sqlite(tx) => tx.commit().await,
            Transaction::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Transaction::Sqlite(tx) => tx.rollback().await,
            Transaction::Postgres(tx) => tx.rollback().await,
        }
    }
}
