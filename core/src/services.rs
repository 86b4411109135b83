//! Fleet reads: the registered services, each behind its connector. The config file's
//! services are there from the start; those found in the cluster come, change and go as
//! discovery says, without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use runboard_model::{DiscoveryNote, ServiceName, ServiceSource, add_to_totals};

use crate::config::{Config, ServiceConfig};
use crate::connector::{Connector, ReadError, SagaFilter};
use crate::graphql_client::ServiceTokenClient;
use crate::metrics::ServiceReads;
use crate::screens::SagasHolding;
use crate::snapshots::Reading;

pub struct Fleet {
    /// A connector per service. A changed service gets a new connector, so that a read or
    /// an action under way finishes on the one it began with.
    connectors: RwLock<BTreeMap<String, Arc<Connector>>>,
    /// What each discovered service's connector was made from (see
    /// [`Discovered::fingerprint`]), to tell a change from the same Service seen again.
    fingerprints: RwLock<BTreeMap<String, String>>,
    /// What discovery last had to say: annotations that are wrong, names the config wins.
    notes: RwLock<Vec<DiscoveryNote>>,
    /// Discovered services whose Service or Secret cannot be read now, with why: they keep
    /// their connector and their history, and are not read until discovery reads them again.
    unreadable: RwLock<BTreeMap<String, String>>,
    /// Statements sent to the services' databases, counted by every connector.
    reads: ServiceReads,
    /// Runboard's own provider tokens, for services that take them.
    token_client: Option<Arc<ServiceTokenClient>>,
    /// `thresholds.stuck_after`, for services that do not set their own.
    stuck_after: Duration,
}

/// A service found in the cluster, with settings read from its annotations and Secret.
#[derive(Clone)]
pub struct Discovered {
    pub service: ServiceConfig,
    /// The Kubernetes Service it was read from.
    pub source: ServiceSource,
    /// Changes whenever anything the settings were read from changes (the resource
    /// versions of the Service and its Secret).
    pub fingerprint: String,
    /// Why its Service or Secret could not be read this time, where it could not: the
    /// settings and fingerprint are those last read.
    pub unreadable: Option<String>,
}

impl Fleet {
    /// Prepares a connector per configured service; nothing is reached yet.
    pub async fn connect(config: &Config) -> Result<Self, ReadError> {
        let fleet = Self {
            connectors: RwLock::default(),
            fingerprints: RwLock::default(),
            notes: RwLock::default(),
            unreadable: RwLock::default(),
            reads: ServiceReads::default(),
            token_client: config
                .mission_control_tokens
                .as_ref()
                .map(|client| Arc::new(ServiceTokenClient::new(client))),
            stuck_after: config.thresholds.stuck_after,
        };
        let mut connectors = BTreeMap::new();
        for service in &config.services {
            let connector = fleet.connector(service, ServiceSource::Config).await?;
            connectors.insert(service.name.to_string(), Arc::new(connector));
        }
        *fleet.connectors.write().expect("never poisoned") = connectors;
        Ok(fleet)
    }

    async fn connector(
        &self,
        service: &ServiceConfig,
        source: ServiceSource,
    ) -> Result<Connector, ReadError> {
        let stuck_after = service.stuck_after.unwrap_or(self.stuck_after);
        let mut connector = Connector::new(service, stuck_after).await?;
        connector.count_reads_in(&self.reads);
        connector.found_in(source);
        if let (Some(client), Some(audience)) = (&self.token_client, &service.token_audience) {
            connector.call_with(client.credentials_for(audience));
        }
        Ok(connector)
    }

    /// Makes the discovered services those of `found`: new ones get a connector, changed
    /// ones a new connector, and those gone are closed. A name the config file registers
    /// stays the config's, and that is noted. Returns the services now registered from the
    /// cluster, for the registry.
    pub async fn apply_discovered<'a>(
        &self,
        found: &'a [Discovered],
        mut notes: Vec<DiscoveryNote>,
    ) -> Vec<&'a Discovered> {
        let configured: BTreeSet<String> = self
            .services()
            .iter()
            .filter(|c| *c.source() == ServiceSource::Config)
            .map(|c| c.name().to_string())
            .collect();
        let known = self.fingerprints.read().expect("never poisoned").clone();
        let mut accepted: BTreeMap<String, (&Discovered, Option<Arc<Connector>>)> = BTreeMap::new();
        for discovered in found {
            let name = discovered.service.name.to_string();
            let origin = origin_of(&discovered.source);
            if configured.contains(&name) {
                notes.push(config_wins(&discovered.source, &name));
                continue;
            }
            if let Some((first, _)) = accepted.get(&name) {
                notes.push(DiscoveryNote {
                    origin,
                    message: format!(
                        "registers {name}, which {} registers already; give one of them another runboard.io/service name",
                        origin_of(&first.source)
                    ),
                    left_out: true,
                });
                continue;
            }
            let unchanged = known.get(&name) == Some(&discovered.fingerprint);
            let connector = if unchanged {
                None
            } else {
                match self
                    .connector(&discovered.service, discovered.source.clone())
                    .await
                {
                    Ok(connector) => Some(Arc::new(connector)),
                    Err(error) => {
                        notes.push(DiscoveryNote {
                            origin,
                            message: error.problem.to_string(),
                            left_out: true,
                        });
                        continue;
                    }
                }
            };
            accepted.insert(name, (discovered, connector));
        }
        let mut retired = Vec::new();
        {
            let mut connectors = self.connectors.write().expect("never poisoned");
            let mut fingerprints = self.fingerprints.write().expect("never poisoned");
            connectors.retain(|name, connector| {
                let keep = *connector.source() == ServiceSource::Config
                    || accepted.get(name).is_some_and(|(_, new)| new.is_none());
                if !keep {
                    retired.push(connector.clone());
                }
                keep
            });
            fingerprints.clear();
            for (name, (discovered, connector)) in &accepted {
                if let Some(connector) = connector {
                    connectors.insert(name.clone(), connector.clone());
                }
                fingerprints.insert(name.clone(), discovered.fingerprint.clone());
            }
        }
        *self.notes.write().expect("never poisoned") = notes;
        *self.unreadable.write().expect("never poisoned") = accepted
            .iter()
            .filter_map(|(name, (discovered, _))| {
                Some((name.clone(), discovered.unreadable.clone()?))
            })
            .collect();
        for connector in retired {
            connector.close().await;
        }
        accepted
            .into_values()
            .map(|(discovered, _)| discovered)
            .collect()
    }

    /// Says why the cluster could not be asked, or (`None`) that it answers again.
    pub fn cluster_unreachable(&self, problem: Option<String>) {
        let mut notes = self.notes.write().expect("never poisoned");
        notes.retain(|note| !note.origin.is_empty());
        if let Some(message) = problem {
            notes.insert(
                0,
                DiscoveryNote {
                    origin: String::new(),
                    message,
                    left_out: false,
                },
            );
        }
    }

    /// Why a discovered service's settings cannot be read from the cluster now, if they cannot.
    pub fn unreadable(&self, name: &str) -> Option<String> {
        self.unreadable
            .read()
            .expect("never poisoned")
            .get(name)
            .cloned()
    }

    /// What discovery last had to say, the cluster's own problem first.
    pub fn discovery_notes(&self) -> Vec<DiscoveryNote> {
        self.notes.read().expect("never poisoned").clone()
    }

    /// The statements every connector sent, for `/metrics`.
    pub fn reads(&self) -> &ServiceReads {
        &self.reads
    }

    /// The services' own ID shapes, for lookup.
    pub fn id_patterns(&self) -> Vec<Regex> {
        self.services()
            .iter()
            .filter_map(|c| c.id_pattern().cloned())
            .collect()
    }

    /// The connector of the service registered as `name` now.
    pub fn service(&self, name: &ServiceName) -> Option<Arc<Connector>> {
        self.connectors
            .read()
            .expect("never poisoned")
            .get(name.as_str())
            .cloned()
    }

    /// Every service as registered now, by name.
    pub fn services(&self) -> Vec<Arc<Connector>> {
        self.connectors
            .read()
            .expect("never poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Reads one service's numbers for a snapshot: counts, failed batches and funds at once,
    /// keeping the largest of the sagas behind the funds for the Funds screen.
    pub async fn read(connector: &Connector, now: DateTime<Utc>) -> Result<Reading, ReadError> {
        let (sagas, failed_batches, by_saga) = tokio::join!(
            connector.saga_counts(now),
            connector.failed_batches(),
            connector.withheld_by_saga(),
        );
        let by_saga = by_saga?;
        let mut withheld_funds = Vec::new();
        for (_, money) in by_saga.iter().flatten() {
            add_to_totals(&mut withheld_funds, money.amount, &money.currency);
        }
        Ok(Reading {
            sagas: sagas?,
            failed_batches: failed_batches?,
            withheld_funds,
            holding: by_saga.map(SagasHolding::largest_of),
        })
    }

    /// Reads every contract relation of a service once, so that a missing column or a
    /// wrong query shows before the service is relied on.
    pub async fn check(connector: &Connector, now: DateTime<Utc>) -> Result<(), ReadError> {
        let one = SagaFilter {
            limit: 1,
            ..SagaFilter::default()
        };
        connector.sagas(&one, now).await?;
        connector.batches(None).await?;
        connector.withheld_by_saga().await?;
        Ok(())
    }

    pub async fn close(&self) {
        for connector in self.services() {
            connector.close().await;
        }
    }
}

/// The note of a Service in the cluster registering a name the config file registers too.
pub fn config_wins(source: &ServiceSource, name: &str) -> DiscoveryNote {
    DiscoveryNote {
        origin: origin_of(source),
        message: format!(
            "registers {name}, which the config file registers too; the config file's entry is used"
        ),
        left_out: false,
    }
}

/// `<namespace>/<name>` of a discovered service's Kubernetes Service.
fn origin_of(source: &ServiceSource) -> String {
    match source {
        ServiceSource::Cluster { namespace, name } => format!("{namespace}/{name}"),
        ServiceSource::Config => "config file".into(),
    }
}
