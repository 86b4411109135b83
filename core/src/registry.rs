//! The service registry: which services Runboard watches, kept in the store so that
//! every replica, snapshot and action refers to the same list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use runboard_model::{DiscoveryNote, RegisteredService, ServiceName, ServiceSource};

use crate::App;
use crate::config::{Config, ServiceConfig};
use crate::db::{BeginWrite, on_pool};
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
    /// (keeping when they were first registered) and retires those no longer configured
    /// (their history stays for the retention period).
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
            let mut tx = pool.begin_write().await?;
            let known: Vec<(String,)> = sqlx::query_as(
                "SELECT name FROM service WHERE source LIKE $1 AND retired_at IS NULL",
            )
            .bind(source_pattern)
            .fetch_all(&mut *tx)
            .await?;
            for (name,) in known {
                if !services.iter().any(|s| s.service.name.as_str() == name) {
                    sqlx::query("UPDATE service SET retired_at = $2 WHERE name = $1")
                        .bind(&name)
                        .bind(now)
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
                        updated_at = excluded.updated_at,
                        retired_at = NULL
                     WHERE excluded.source = 'config' OR service.source <> 'config'
                        OR service.retired_at IS NOT NULL",
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

    /// Binds each name claimed to its namespace where no namespace holds it yet (the first
    /// replica to bind it wins), and returns the namespace holding each name bound.
    pub async fn bind_names(
        &self,
        claims: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let bindings: Vec<(String, String)> = on_pool!(self.pool, |pool| {
            for (name, namespace) in claims {
                sqlx::query(
                    "INSERT INTO service_name_binding (name, namespace, bound_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(namespace)
                .bind(now)
                .execute(pool)
                .await?;
            }
            sqlx::query_as("SELECT name, namespace FROM service_name_binding")
                .fetch_all(pool)
                .await?
        });
        Ok(bindings.into_iter().collect())
    }

    /// Every registered service, by name.
    pub async fn registered_services(&self) -> Result<Vec<RegisteredService>, StoreError> {
        let rows: Vec<ServiceRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT name, team, graphql_url, stuck_after_seconds, registered_at, source
                 FROM service WHERE retired_at IS NULL ORDER BY name",
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
        let now = chrono::Utc::now();
        let (found, notes) = self.bound_to_their_namespaces(found, notes, now).await?;
        let accepted = self.fleet.apply_discovered(&found, notes).await;
        let registrations: Vec<_> = accepted
            .iter()
            .map(|discovered| Registration {
                service: &discovered.service,
                stuck_after: self.config.stuck_after(&discovered.service),
                source: discovered.source.clone(),
            })
            .collect();
        self.store
            .register_discovered_services(&registrations, now)
            .await
    }

    /// The services of `found` whose namespace holds their name; a Service claiming a name
    /// another namespace holds is left out with a note naming both. A name no namespace
    /// holds yet goes to the namespace claiming it, where only one does: between two new
    /// claimants nothing but the order they were listed in could choose, so neither is
    /// registered until one gives the name up.
    async fn bound_to_their_namespaces(
        &self,
        found: &[Discovered],
        mut notes: Vec<DiscoveryNote>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Discovered>, Vec<DiscoveryNote>), StoreError> {
        let mut claimants: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for discovered in found {
            if let ServiceSource::Cluster { namespace, .. } = &discovered.source {
                claimants
                    .entry(discovered.service.name.as_str())
                    .or_default()
                    .insert(namespace);
            }
        }
        let sole: Vec<(&str, &str)> = claimants
            .iter()
            .filter_map(
                |(name, namespaces)| match namespaces.iter().collect::<Vec<_>>()[..] {
                    [only] => Some((*name, *only)),
                    _ => None,
                },
            )
            .collect();
        let holders = self.store.bind_names(&sole, now).await?;
        let mut bound = Vec::new();
        for discovered in found {
            let ServiceSource::Cluster { namespace, name } = &discovered.source else {
                continue;
            };
            let service = discovered.service.name.as_str();
            let origin = format!("{namespace}/{name}");
            match holders.get(service) {
                Some(holder) if holder == namespace => bound.push(discovered.clone()),
                Some(holder) => notes.push(DiscoveryNote {
                    message: format!(
                        "registers {service}, which namespace {holder} registered first and holds; {origin} is left out: give it another runboard.io/service name (a platform admin moves a name by deleting its row in service_name_binding)"
                    ),
                    origin,
                    left_out: true,
                }),
                None => {
                    let others: Vec<&str> = claimants[service]
                        .iter()
                        .copied()
                        .filter(|other| *other != namespace)
                        .collect();
                    notes.push(DiscoveryNote {
                        origin,
                        message: format!(
                            "registers {service}, which namespace {} claims too, and neither registered it first; both are left out until one gives it another runboard.io/service name",
                            others.join(", ")
                        ),
                        left_out: true,
                    });
                }
            }
        }
        Ok((bound, notes))
    }
}
