//! Browser sessions kept server-side in Runboard's store, on whichever database it runs.
//!
//! tower-sessions' sqlx stores do the work; this only picks the one for the store's
//! database. Their table is created by our migrations, so it is versioned with the rest.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::db::Pool;
use crate::store::Store;

const TABLE: &str = "session";

#[derive(Debug, Clone)]
pub enum SessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionStore {
    pub fn new(store: &Store) -> Self {
        match &store.pool {
            Pool::Sqlite(pool) => Self::Sqlite(
                SqliteStore::new(pool.clone())
                    .with_table_name(TABLE)
                    .expect("a valid table name"),
            ),
            Pool::Postgres(pool) => Self::Postgres(
                PostgresStore::new(pool.clone())
                    .with_schema_name("public")
                    .and_then(|s| s.with_table_name(TABLE))
                    .expect("valid schema and table names"),
            ),
        }
    }
}

macro_rules! on_store {
    ($self:expr, |$store:ident| $body:expr) => {
        match $self {
            SessionStore::Sqlite($store) => $body,
            SessionStore::Postgres($store) => $body,
        }
    };
}

#[async_trait]
impl session_store::SessionStore for SessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        on_store!(self, |store| store.create(record).await)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        on_store!(self, |store| store.save(record).await)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        on_store!(self, |store| store.load(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_store!(self, |store| store.delete(id).await)
    }
}

#[async_trait]
impl ExpiredDeletion for SessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        on_store!(self, |store| store.delete_expired().await)
    }
}
