//! The service registry: which services Runboard watches, kept in the store so that
//! every replica, snapshot and action refers to the same list.

use chrono::{DateTime, Utc};
use runboard_model::{RegisteredService, ServiceName};

use crate::config::Config;
use crate::db::on_pool;
use crate::store::{Store, StoreError};

/// Where a registration came from; a source only ever retires its own services.
const SOURCE_CONFIG: &str = "config";

#[derive(sqlx::FromRow)]
struct ServiceRow {
    name: String,
    team: String,
    graphql_url: String,
    stuck_after_seconds: i64,
    registered_at: DateTime<Utc>,
}

impl Store {
    /// Makes the registry match the config's services: adds new ones, updates changed ones
    /// (keeping when they were first registered) and retires those no longer configured.
    pub async fn register_configured_services(
        &self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let known: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM service WHERE source = $1")
                    .bind(SOURCE_CONFIG)
                    .fetch_all(&mut *tx)
                    .await?;
            for (name,) in known {
                if !config.services.iter().any(|s| s.name.as_str() == name) {
                    sqlx::query("DELETE FROM service WHERE name = $1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for service in &config.services {
                let stuck_after =
                    i64::try_from(config.stuck_after(service).as_secs()).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO service (name, team, graphql_url, stuck_after_seconds, source, registered_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (name) DO UPDATE SET
                        team = excluded.team,
                        graphql_url = excluded.graphql_url,
                        stuck_after_seconds = excluded.stuck_after_seconds,
                        source = excluded.source,
                        updated_at = excluded.updated_at",
                )
                .bind(service.name.as_str())
                .bind(&service.team)
                .bind(service.graphql_url.as_str())
                .bind(stuck_after)
                .bind(SOURCE_CONFIG)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every registered service, by name.
    pub async fn registered_services(&self) -> Result<Vec<RegisteredService>, StoreError> {
        let rows: Vec<ServiceRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT name, team, graphql_url, stuck_after_seconds, registered_at
                 FROM service ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                let name: ServiceName = row.name.parse().map_err(StoreError::corrupt)?;
                Ok(RegisteredService {
                    name,
                    team: row.team,
                    graphql_url: row.graphql_url,
                    stuck_after_seconds: row.stuck_after_seconds,
                    registered_at: row.registered_at,
                })
            })
            .collect()
    }
}
