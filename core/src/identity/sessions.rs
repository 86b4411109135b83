//! Browser sessions kept server-side in Runboard's store, on whichever database it runs.
//!
//! tower-sessions' sqlx stores do the work; this only picks the one for the store's
//! database. Their table is created by our migrations, so it is versioned with the rest.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use sqlx::{PgPool, SqlitePool};

use crate::db::Pool;
use crate::store::Store;

const TABLE: &str = "session";

/// tower-sessions' store for the store's database, with that database's pool for the one
/// write done here.
#[derive(Debug, Clone)]
pub enum SessionStore {
    Sqlite(SqliteStore, SqlitePool),
    Postgres(PostgresStore, PgPool),
}

impl SessionStore {
    pub fn new(store: &Store) -> Self {
        match &store.pool {
            Pool::Sqlite(pool) => Self::Sqlite(
                SqliteStore::new(pool.clone())
                    .with_table_name(TABLE)
                    .expect("a valid table name"),
                pool.clone(),
            ),
            Pool::Postgres(pool) => Self::Postgres(
                PostgresStore::new(pool.clone())
                    .with_schema_name("public")
                    .and_then(|s| s.with_table_name(TABLE))
                    .expect("valid schema and table names"),
                pool.clone(),
            ),
        }
    }
}

macro_rules! on_store {
    ($self:expr, |$store:ident, $pool:ident| $body:expr) => {
        match $self {
            SessionStore::Sqlite($store, $pool) => $body,
            SessionStore::Postgres($store, $pool) => $body,
        }
    };
}

#[async_trait]
impl session_store::SessionStore for SessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        on_store!(self, |store, _pool| store.create(record).await)
    }

    /// An update, never an insert (the library's upsert): a session ended while a request
    /// of it was in flight (signed out, revoked by an admin) stays ended when that request
    /// writes it back. A new session's row comes from `create` alone.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data =
            rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let update = format!("UPDATE {TABLE} SET data = $1, expiry_date = $2 WHERE id = $3");
        on_store!(self, |_store, pool| {
            sqlx::query(&update)
                .bind(&data)
                .bind(record.expiry_date)
                .bind(record.id.to_string())
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(|e| session_store::Error::Backend(e.to_string()))
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        on_store!(self, |store, _pool| store.load(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_store!(self, |store, _pool| store.delete(id).await)
    }
}

#[async_trait]
impl ExpiredDeletion for SessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        on_store!(self, |store, _pool| store.delete_expired().await)
    }
}
