//! A service's own database: an SQLite file or a PostgreSQL database.
//!
//! Both run the same query texts (`$n` placeholders, which both accept); where the
//! dialects differ (DDL, numeric parameters, series, random numbers) [`Backend`] says how.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::FleetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A bound decimal parameter headed for a numeric column: PostgreSQL needs the cast
    /// from text; SQLite keeps the text as it is, so no float ever touches the amount.
    pub(crate) fn numeric(self, param: &str) -> String {
        match self {
            Backend::Sqlite => param.to_owned(),
            Backend::Postgres => format!("CAST({param} AS NUMERIC)"),
        }
    }

    /// A random amount of money from a float expression: rounded to cents in SQL, so the
    /// stored value is an exact decimal (numeric on PostgreSQL, decimal text on SQLite).
    pub(crate) fn money(self, expr: &str) -> String {
        match self {
            Backend::Sqlite => format!("printf('%.2f', {expr})"),
            Backend::Postgres => format!("round(CAST({expr} AS NUMERIC), 2)"),
        }
    }

    /// A uniformly random number in [0, 1) per row.
    pub(crate) fn random(self) -> &'static str {
        match self {
            Backend::Sqlite => "(abs(random()) / 9223372036854775808.0)",
            Backend::Postgres => "random()",
        }
    }

    /// The integer part of a non-negative number.
    pub(crate) fn floor(self, expr: &str) -> String {
        match self {
            Backend::Sqlite => format!("CAST({expr} AS INTEGER)"),
            Backend::Postgres => format!("CAST(floor({expr}) AS INTEGER)"),
        }
    }

    /// The time `seconds` (an SQL expression) before now, as each backend stores timestamps:
    /// SQLite gets RFC 3339 UTC text with microseconds, like sqlx's own encoding.
    pub(crate) fn ago(self, seconds: &str) -> String {
        match self {
            // printf keeps tiny and huge numbers out of exponent notation, which SQLite's
            // date modifiers would not read.
            Backend::Sqlite => format!(
                "(strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || printf('%.3f', {seconds}) || ' seconds') \
                 || printf('%03d', abs(random()) % 1000) || '+00:00')"
            ),
            Backend::Postgres => format!("(now() - make_interval(secs => {seconds}))"),
        }
    }

    /// A lowercase, hyphenated version-4 UUID per row.
    pub(crate) fn uuid(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' \
                 || substr(lower(hex(randomblob(2))), 2) || '-' \
                 || substr('89ab', 1 + abs(random()) % 4, 1) || substr(lower(hex(randomblob(2))), 2) \
                 || '-' || lower(hex(randomblob(6))))"
            }
            Backend::Postgres => "CAST(gen_random_uuid() AS TEXT)",
        }
    }

    /// `SELECT i FROM <series>` yields 1..=`count` (an SQL expression).
    pub(crate) fn series(self, count: &str) -> String {
        match self {
            Backend::Sqlite => format!(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
                 SELECT i FROM n) AS series"
            ),
            Backend::Postgres => {
                format!("generate_series(1, CAST({count} AS BIGINT)) AS series(i)")
            }
        }
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    Int(i64),
    OptInt(Option<i64>),
    Time(DateTime<Utc>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(v)
    }
}

/// Binds `$args` to `$query` for whichever backend the surrounding match arm is on.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v.clone()),
                Arg::OptText(v) => query.bind(v.clone()),
                Arg::Bool(v) => query.bind(*v),
                Arg::Int(v) => query.bind(*v),
                Arg::OptInt(v) => query.bind(*v),
                Arg::Time(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// A row type both backends can decode.
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}
impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Db {
    /// Connects to a service database, creating it (SQLite file or PostgreSQL database) if missing.
    pub(crate) async fn connect(url: &str) -> Result<Db, FleetError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                // WAL lets Runboard read while the fleet writes; the timeout rides out writers.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                // Seeding's scratch tables stay in memory; a bigger page cache than the
                // 2 MB default keeps a million-row insert off the disk until it commits.
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-65536");
            Ok(Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await?,
            ))
        } else {
            create_postgres_database(url).await?;
            Ok(Db::Postgres(
                PgPoolOptions::new().max_connections(4).connect(url).await?,
            ))
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a write transaction. SQLite takes its write lock at once, so a transaction
    /// that reads before it writes never fails on a writer that came in between.
    pub(crate) async fn begin(&self) -> Result<Tx, FleetError> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction that only reads, so it takes no write lock.
    pub(crate) async fn begin_read(&self) -> Result<Tx, FleetError> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(crate) async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, FleetError> {
        Ok(match self {
            Db::Sqlite(pool) => bind_args!(sqlx::query(sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
            Db::Postgres(pool) => bind_args!(sqlx::query(sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T: Row>(
        &self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<T>, FleetError> {
        Ok(match self {
            Db::Sqlite(pool) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// Runs several `;`-separated statements without parameters (DDL).
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), FleetError> {
        match self {
            Db::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
            Db::Postgres(pool) => {
                sqlx::raw_sql(sql).execute(pool).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, FleetError> {
        Ok(match self {
            Tx::Sqlite(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<T>, FleetError> {
        Ok(match self {
            Tx::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **tx)
                    .await?
            }
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **tx)
                    .await?
            }
        })
    }

    pub(crate) async fn fetch_optional<T: Row>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<T>, FleetError> {
        Ok(match self {
            Tx::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        })
    }

    pub(crate) async fn commit(self) -> Result<(), FleetError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<(), FleetError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Creates the database a PostgreSQL URL names, through the server's `postgres` database.
async fn create_postgres_database(url: &str) -> Result<(), FleetError> {
    let mut parsed = url::Url::parse(url).map_err(|e| FleetError::DatabaseUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(FleetError::DatabaseUrl {
            url: url.to_owned(),
            reason: "the database name must be lowercase letters, digits and underscores"
                .to_owned(),
        });
    }
    parsed.set_path("/postgres");
    let mut admin = PgConnection::connect(parsed.as_str()).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        match sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
        {
            // Another process created it in between: just as good.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            other => {
                other?;
            }
        }
    }
    admin.close().await?;
    Ok(())
}
