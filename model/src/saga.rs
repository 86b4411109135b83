use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A saga's status, derived from its supervisor row (SPEC.md, "Words"): completed wins,
/// then an error message means failed, then no progress for `stuck_after` means stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    Running,
    Stuck,
    Failed,
    Completed,
}

impl SagaStatus {
    pub const ALL: [SagaStatus; 4] = [Self::Running, Self::Stuck, Self::Failed, Self::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stuck => "stuck",
            Self::Failed => "failed",
            Self::Completed => "completed",
        }
    }

    /// The derivation itself, for rows already read.
    pub fn derive(
        completed: bool,
        error_message: Option<&str>,
        updated_at: DateTime<Utc>,
        stuck_before: DateTime<Utc>,
    ) -> Self {
        if completed {
            Self::Completed
        } else if error_message.is_some() {
            Self::Failed
        } else if updated_at < stuck_before {
            Self::Stuck
        } else {
            Self::Running
        }
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!("unknown saga status {s:?}: use running, stuck, failed or completed")
            })
    }
}

/// One saga as its service's supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Saga {
    pub saga_id: String,
    pub saga_type: String,
    pub current_step: String,
    pub status: SagaStatus,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How many sagas of a service are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaCounts {
    pub running: u64,
    pub stuck: u64,
    pub failed: u64,
    pub completed: u64,
}

/// One page of sagas; `next` is the cursor of the following page, if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaPage {
    pub sagas: Vec<Saga>,
    pub next: Option<String>,
}

/// Failed sagas sharing one error message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorGroup {
    pub error_message: String,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Which sagas to list, as it travels in URLs and the API's query string: plain text,
/// parsed and checked on the server (`SagaFilter` in the core). Empty values mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SagaQuery {
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub saga_type: Option<String>,
    pub step: Option<String>,
    pub error: Option<String>,
    /// Created at least this long ago, e.g. `30m`, `2h`, `3d`.
    pub older_than: Option<String>,
    /// Created at most this long ago.
    pub newer_than: Option<String>,
    /// `newest` (the default) or `oldest` first.
    pub sort: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// What one service holds of the looked-up IDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupMatches {
    pub service: String,
    pub sagas: Vec<Saga>,
    /// Batch items as `(batch_id, item)`.
    pub batch_items: Vec<(String, crate::BatchItem)>,
    /// Why this service could not be searched, if it could not.
    pub error: Option<String>,
}

/// The IDs found in a pasted text, matched across all services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupResult {
    /// How many distinct IDs the text held.
    pub ids: usize,
    pub services: Vec<LookupMatches>,
    /// IDs no service holds.
    pub not_found: Vec<String>,
}

/// One fact the service keeps about a saga, such as the account it debits: what an
/// engineer looks up before fixing it by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaFact {
    pub name: String,
    pub value: String,
}

/// One entry of a saga's history, as the service's own events tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SagaEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: String,
}
