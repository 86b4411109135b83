//! Each service's actions, read from its schema and kept a while: the schema changes
//! with deployments, not with every form opened.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runboard_model::ActionSpec;
use tokio::sync::RwLock;

use crate::connector::Connector;
use crate::graphql_client::CallError;

/// How long a catalog read is reused; a failed read is tried again sooner.
const KEEP: Duration = Duration::from_secs(300);
const KEEP_FAILURE: Duration = Duration::from_secs(10);

/// One service's catalog as last read.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub read_at: DateTime<Utc>,
    pub actions: Result<Vec<ActionSpec>, CallError>,
}

#[derive(Default)]
pub struct Catalogs {
    cached: RwLock<HashMap<String, (Instant, Catalog)>>,
}

impl Catalogs {
    /// The service's catalog, read again when `refresh` is asked or the kept one is old.
    pub async fn of(&self, connector: &Connector, refresh: bool) -> Catalog {
        let name = connector.name().to_string();
        if !refresh && let Some((read, catalog)) = self.cached.read().await.get(&name) {
            let keep = if catalog.actions.is_ok() {
                KEEP
            } else {
                KEEP_FAILURE
            };
            if read.elapsed() < keep {
                return catalog.clone();
            }
        }
        let catalog = Catalog {
            read_at: Utc::now(),
            actions: connector.mission_control().catalog().await,
        };
        self.cached
            .write()
            .await
            .insert(name, (Instant::now(), catalog.clone()));
        catalog
    }
}
