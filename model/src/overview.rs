use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Money, SagaCounts, ServiceName, ServiceSource};

/// One service's row on the overview: the latest poll of it, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceOverview {
    pub name: ServiceName,
    pub team: String,
    pub source: ServiceSource,
    /// When the numbers below were read, UTC; `None` before the first poll.
    pub polled_at: Option<DateTime<Utc>>,
    pub reachable: bool,
    /// Why the latest poll failed, in words an on-call engineer can act on.
    pub error: Option<String>,
    pub sagas: Option<SagaCounts>,
    pub failed_batches: Option<u64>,
    pub withheld_funds: Vec<Money>,
}

/// Withheld funds of one service, per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceFunds {
    pub service: ServiceName,
    pub polled_at: Option<DateTime<Utc>>,
    pub withheld_funds: Vec<Money>,
}
