//! A service's own database: an SQLite file or a PostgreSQL database, through the one
//! dialect layer (`runboard-dialect`); where the dialects differ (DDL, numeric parameters,
//! series, random numbers) [`Dialect`] says how.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub(crate) use runboard_dialect::{Arg, Dialect, Pool as Db, Transaction as Tx};

use crate::FleetError;

/// Connects to a service database, creating it (SQLite file or PostgreSQL database) if missing.
pub(crate) async fn connect(url: &str) -> Result<Db, FleetError> {
    if Dialect::of_url(url) == Dialect::Sqlite {
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
