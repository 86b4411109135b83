//! The two SQL dialects Runboard speaks, SQLite and PostgreSQL, behind one layer used by
//! its store, the connectors that read the services' databases, the demo fleet and the
//! tests: one [`Pool`], one bind argument ([`Arg`]), one [`Transaction`], and [`Dialect`]
//! for the few SQL texts that differ. Query texts are written once with `$n` placeholders,
//! which both databases accept.

mod dialect;
mod pool;

pub use dialect::Dialect;
pub use pool::{BeginWrite, OpenError, Pool, PoolSettings, Transaction};

/// Runs `$body` with `$pool` bound to the concrete sqlx pool, so one query text and one
/// row mapping serve both databases.
#[macro_export]
macro_rules! on_pool {
    ($pool_enum:expr, |$pool:ident| $body:expr) => {
        match &$pool_enum {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$connection` bound to the concrete connection of a `&mut`
/// [`Transaction`], as [`on_pool!`] does for a pool.
#[macro_export]
macro_rules! on_transaction {
    ($transaction:expr, |$connection:ident| $body:expr) => {
        match $transaction {
            $crate::Transaction::Sqlite(transaction) => {
                let $connection = &mut **transaction;
                $body
            }
            $crate::Transaction::Postgres(transaction) => {
                let $connection = &mut **transaction;
                $body
            }
        }
    };
}

/// A value bound to a `$n` placeholder, so that statements can be assembled at run time
/// for either database.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Bool(bool),
    Int(i64),
    OptInt(Option<i64>),
    Time(chrono::DateTime<chrono::Utc>),
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
impl From<chrono::DateTime<chrono::Utc>> for Arg {
    fn from(v: chrono::DateTime<chrono::Utc>) -> Self {
        Arg::Time(v)
    }
}

/// Binds `$args` (a slice of [`Arg`]) to `$query` for whichever database the surrounding
/// [`on_pool!`] arm is on.
#[macro_export]
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::Arg::Text(v) => query.bind(v.clone()),
                $crate::Arg::OptText(v) => query.bind(v.clone()),
                $crate::Arg::Bool(v) => query.bind(*v),
                $crate::Arg::Int(v) => query.bind(*v),
                $crate::Arg::OptInt(v) => query.bind(*v),
                $crate::Arg::Time(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// A row type both databases can decode.
pub trait Row:
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
