//! Fleet reads: the registered services, each behind its connector.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regex::Regex;

use crate::config::Config;
use crate::connector::{Connector, ReadError, SagaFilter};
use crate::snapshots::Reading;

pub struct Fleet {
    connectors: BTreeMap<String, Connector>,
    /// The services' own ID shapes, for lookup.
    id_patterns: Vec<Regex>,
}

impl Fleet {
    /// Prepares a connector per configured service; nothing is reached yet.
    pub async fn connect(config: &Config) -> Result<Self, ReadError> {
        let mut connectors = BTreeMap::new();
        // Validated with the config, so every pattern compiles.
        let id_patterns = config
            .services
            .iter()
            .filter_map(|s| s.id_pattern.as_deref())
            .filter_map(|p| Regex::new(p).ok())
            .collect();
        for service in &config.services {
            let connector = Connector::new(service, config.stuck_after(service)).await?;
            connectors.insert(service.name.to_string(), connector);
        }
        Ok(Self {
            connectors,
            id_patterns,
        })
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

    /// Reads one service's numbers for a snapshot: counts, failed batches and funds at once.
    pub async fn read(connector: &Connector, now: DateTime<Utc>) -> Result<Reading, ReadError> {
        let (sagas, failed_batches, funds) = tokio::join!(
            connector.saga_counts(now),
            connector.failed_batches(),
            connector.withheld_funds(),
        );
        Ok(Reading {
            sagas: sagas?,
            failed_batches: failed_batches?,
            withheld_funds: funds?,
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
