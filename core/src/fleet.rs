//! Fleet reads: the registered services, each behind its connector.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use regex::Regex;
use runboard_model::add_to_totals;

use crate::config::Config;
use crate::connector::{Connector, ReadError, SagaFilter};
use crate::metrics::ServiceReads;
use crate::mission_control::ServiceTokenClient;
use crate::screens::SagasHolding;
use crate::snapshots::Reading;

pub struct Fleet {
    connectors: BTreeMap<String, Connector>,
    /// Statements sent to the services' databases, counted by every connector.
    reads: ServiceReads,
    /// The services' own ID shapes, for lookup.
    id_patterns: Vec<Regex>,
}

impl Fleet {
    /// Prepares a connector per configured service; nothing is reached yet.
    pub async fn connect(config: &Config) -> Result<Self, ReadError> {
        let mut connectors = BTreeMap::new();
        let reads = ServiceReads::default();
        // Validated with the config, so every pattern compiles.
        let id_patterns = config
            .services
            .iter()
            .filter_map(|s| s.id_pattern.as_deref())
            .filter_map(|p| Regex::new(p).ok())
            .collect();
        let token_client = config
            .mission_control_tokens
            .as_ref()
            .map(|client| Arc::new(ServiceTokenClient::new(client)));
        for service in &config.services {
            let mut connector = Connector::new(service, config.stuck_after(service)).await?;
            connector.count_reads_in(&reads);
            if let (Some(client), Some(audience)) = (&token_client, &service.token_audience) {
                connector.call_with(client.credentials_for(audience));
            }
            connectors.insert(service.name.to_string(), connector);
        }
        Ok(Self {
            connectors,
            reads,
            id_patterns,
        })
    }

    /// The statements every connector sent, for `/metrics`.
    pub fn reads(&self) -> &ServiceReads {
        &self.reads
    }

    pub fn id_patterns(&self) -> &[Regex] {
        &self.id_patterns
    }

    pub fn service(&self, name: &str) -> Option<&Connector> {
        self.connectors.get(name)
    }

    pub fn services(&self) -> impl Iterator<Item = &Connector> {
        self.connectors.values()
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
        for connector in self.connectors.values() {
            connector.close().await;
        }
    }
}
