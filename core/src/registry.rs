//! The service registry: which services Runboard watches, kept in the store so that
//! every replica, snapshot and action refers to the same list.

use std::time::Duration;

use chrono::{DateTime, Utc};

use runboard_model::{DiscoveryNote, RegisteredService, ServiceName, ServiceSource};

use crate::App;
use crate::config::{Config, ServiceConfig};
use crate::db::on_pool;
use crate::error_text::shown_url;
use crate::services::Discovered;
use crate::store::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct ServiceRow {
    name: String,
    team: String,
    graphql_url: String,
    stuck_after_seconds: i64,
    registered_at: DateTime<Utc>,
    source: String,
}

/// One service as a source registers it.
pub struct Registration<'a> {
    pub service: &'a ServiceConfig,
    pub stuck_after: Duration,
    pub source: ServiceSource,
}

impl Store {
    /// Makes the registry match the config's services: adds new ones, updates changed ones
    /// (keeping when they were first registered) and retires those no longer configured.
    pub async fn register_configured_services(
        &self,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let registrations: Vec<_> = config
            .services
            .iter()
            .map(|service| Registration {
                service,
                stuck_after: config.stuck_after(service),
                source: ServiceSource::Config,
            })
            .collect();
        self.register("config", &registrations, now).await
    }

    /// Makes the registry's services found in the cluster match `found`. A name the config
    /// file also registers stays the config's.
    pub async fn register_discovered_services(
        &self,
        found: &[Registration<'_>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.register("cluster:%", found, now).await
    }

    /// Registers `services` for one source, whose registrations are those whose `source`
    /// is `LIKE source_pattern`; a source only ever retires its own.
    async fn register(
        &self,
        source_pattern: &str,
        services: &[Registration<'_>],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_pool!(self.pool, |pool| {
            let mut tx = pool.begin().await?;
            let known: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM service WHERE source LIKE $1")
                    .bind(source_pattern)
                    .fetch_all(&mut *tx)
                    .await?;
            for (name,) in known {
                if !services.iter().any(|s| s.service.name.as_str() == name) {
                    sqlx::query("DELETE FROM service WHERE name = $1")
                        .bind(&name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for registration in services {
                let service = registration.service;
                let stuck_after =
                    i64::try_from(registration.stuck_after.as_secs()).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO service (name, team, graphql_url, stuck_after_seconds, source, registered_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (name) DO UPDATE SET
                        team = excluded.team,
                        graphql_url = excluded.graphql_url,
                        stuck_after_seconds = excluded.stuck_after_seconds,
                        source = excluded.source,
                        updated_at = excluded.updated_at
                     WHERE excluded.source = 'config' OR service.source <> 'config'",
                )
                .bind(service.name.as_str())
                .bind(&service.team)
                // Every reader sees it: without the key its query may carry.
                .bind(shown_url(&service.graphql_url))
                .bind(stuck_after)
                .bind(registration.source.stored())
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
                "SELECT name, team, graphql_url, stuck_after_seconds, registered_at, source
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
                    source: ServiceSource::from_stored(&row.source).map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }
}

impl App {
    /// Makes the fleet and the registry hold the services found in the cluster, with what
    /// discovery had to say about them on the overview.
    pub async fn register_discovered(
        &self,
        found: &[Discovered],
        notes: Vec<DiscoveryNote>,
    ) -> Result<(), StoreError> {
        let accepted = self.fleet.apply_discovered(found, notes).await;
        let registrations: Vec<_> = accepted
            .iter()
            .map(|discovered| Registration {
                service: &discovered.service,
                stuck_after: self.config.stuck_after(&discovered.service),
                source: discovered.source.clone(),
            })
            .collect();
        self.store
            .register_discovered_services(&registrations, chrono::Utc::now())
            .await
    }
}
