//! Reads one service's database through the service contract (SPEC.md).
//!
//! Every read has a timeout and a row limit, and every failure becomes a
//! [`ReadError`] naming the service and what an engineer can do about it: a service
//! that is down, slow or returns a malformed row never breaks the others.

mod batches;
mod export;
mod funds;
mod sagas;
mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use runboard_model::{ServiceName, ServiceSource};
use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use export::ExportPage;
pub use funds::WithheldPage;
pub(crate) use sagas::SELECTION_PAGE;
pub use sagas::{DEFAULT_PAGE, MAX_PAGE, SagaCursor, SagaFilter, page_limit};

use crate::config::{ContractQueries, ServiceConfig, WatchTuning};
use crate::db::{Pool, PoolSettings, Transaction};
use crate::graphql_client::{Credentials, MissionControl};
use crate::metrics::ServiceReads;

/// Why a read of a service failed. The variants double as metric labels.
#[derive(Debug, thiserror::Error)]
pub enum ReadProblem {
    #[error("its database is unreachable: {0}")]
    Unreachable(String),
    #[error("it did not answer within {0:?}")]
    Timeout(Duration),
    #[error("its {relation} query returns no column `{column}`; the contract needs it")]
    MissingColumn {
        relation: &'static str,
        column: String,
    },
    #[error("a row of its {relation} could not be read: {detail}")]
    MalformedRow {
        relation: &'static str,
        detail: String,
    },
    #[error("its {relation} query failed: {detail}")]
    Query {
        relation: &'static str,
        detail: String,
    },
    #[error(
        "its {relation} returned more than {limit} rows; raise `row_limit` for it if that is expected"
    )]
    TooManyRows { relation: &'static str, limit: u32 },
    #[error(
        "every connection Runboard lets viewers use on it was busy for {0:?} (one is kept for polls and actions); try again shortly, or raise its `max_connections`"
    )]
    Busy(Duration),
    /// Its Service or Secret in the cluster cannot be read now: it is not read either,
    /// until discovery reads them again.
    #[error("its settings cannot be read from the cluster: {0}")]
    SettingsUnreadable(String),
}

impl ReadProblem {
    /// A short stable name, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout(_) => "timeout",
            Self::MissingColumn { .. } => "missing_column",
            Self::MalformedRow { .. } => "malformed_row",
            Self::Query { .. } => "query",
            Self::TooManyRows { .. } => "too_many_rows",
            Self::Busy(_) => "busy",
            Self::SettingsUnreadable(_) => "settings_unreadable",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("service {service}: {problem}")]
pub struct ReadError {
    pub service: ServiceName,
    pub problem: ReadProblem,
}

/// IDs asked for in one statement: well under every database's limit on parameters.
const LOOKUP_CHUNK: usize = 500;

pub struct Connector {
    name: ServiceName,
    pool: Pool,
    queries: ContractQueries,
    stuck_after: chrono::Duration,
    timeout: Duration,
    row_limit: u32,
    mission_control: MissionControl,
    /// Counts every statement sent, for `/metrics`; shared with the fleet's other connectors.
    reads: ServiceReads,
    /// The connections people's reads may hold at once: all but one kept for Runboard's
    /// own work (see [`with_reserved_connections`]).
    viewer_slots: Arc<Semaphore>,
    /// Approvals each action needs, by mutation name; 1 for those not named.
    approvals: BTreeMap<String, u32>,
    /// Most entities one call names, by mutation name, where the service says.
    chunk_sizes: BTreeMap<String, u32>,
    /// The service's own ID shape, where its IDs are not UUIDs.
    id_pattern: Option<Regex>,
    source: ServiceSource,
    /// The team that owns the service: whom its alerts are told to.
    team: String,
    /// The service's own figures for the watches.
    watches: WatchTuning,
    /// The most its actions send a second, unless an action has its own pace.
    pace: runboard_model::Pace,
}

tokio::task_local! {
    /// Set around the poller's and the actions' reads.
    static RESERVED: ();
}

/// Runs `work` (a poll, a preview, the action engine) on the connections kept for
/// Runboard's own work: however many different things people ask for at once, polls keep
/// running and actions keep their re-checks.
pub async fn with_reserved_connections<F: Future>(work: F) -> F::Output {
    RESERVED.scope((), work).await
}

impl Connector {
    /// Prepares a lazily connected, read-only pool: nothing is reached until the first read.
    pub async fn new(config: &ServiceConfig, stuck_after: Duration) -> Result<Self, ReadError> {
        let settings = PoolSettings {
            max_connections: config.max_connections,
            // Shorter than the read's own timeout: a database that refuses connections (the
            // pool retries those) then reads as unreachable, not as slow, whatever the load.
            acquire_timeout: config.query_timeout * 3 / 4,
            owned: false,
            lazy: true,
            statement_timeout: Some(config.query_timeout),
        };
        let pool = Pool::open(config.database_url.expose_secret(), &settings)
            .await
            .map_err(|e| ReadError {
                service: config.name.clone(),
                problem: ReadProblem::Unreachable(e.to_string()),
            })?;
        Ok(Self {
            name: config.name.clone(),
            pool,
            queries: config.queries.clone(),
            stuck_after: chrono::Duration::from_std(stuck_after).unwrap_or(chrono::Duration::MAX),
            timeout: config.query_timeout,
            row_limit: config.row_limit,
            mission_control: MissionControl::new(
                config.graphql_url.clone(),
                config
                    .graphql_token
                    .clone()
                    .map_or(Credentials::None, Credentials::Static),
            ),
            reads: ServiceReads::default(),
            viewer_slots: Arc::new(Semaphore::new(
                config.max_connections.saturating_sub(1).max(1) as usize,
            )),
            approvals: config.approvals.clone(),
            chunk_sizes: config.chunk_size.clone(),
            // Checked with the settings, so it compiles.
            id_pattern: config
                .id_pattern
                .as_deref()
                .and_then(|p| Regex::new(p).ok()),
            source: ServiceSource::Config,
            team: config.team.clone(),
            watches: config.watches.clone(),
            pace: config.pace,
        })
    }

    /// Where Runboard learned of this service.
    pub fn source(&self) -> &ServiceSource {
        &self.source
    }

    pub(crate) fn found_in(&mut self, source: ServiceSource) {
        self.source = source;
    }

    /// Approvals an action of `mutation` needs before money raises it; at least 1.
    pub fn approvals_for(&self, mutation: &str) -> u32 {
        self.approvals.get(mutation).copied().unwrap_or(1)
    }

    /// Most entities one call of `mutation` names, where the service's settings say.
    pub fn chunk_size_for(&self, mutation: &str) -> Option<u32> {
        self.chunk_sizes.get(mutation).copied()
    }

    /// The most its actions send a second, unless an action has its own pace.
    pub fn pace(&self) -> runboard_model::Pace {
        self.pace
    }

    /// The service's own ID shape, for lookup.
    pub fn id_pattern(&self) -> Option<&Regex> {
        self.id_pattern.as_ref()
    }

    /// Counts this connector's statements in `reads` from now on.
    pub(crate) fn count_reads_in(&mut self, reads: &ServiceReads) {
        self.reads = reads.clone();
    }

    pub fn name(&self) -> &ServiceName {
        &self.name
    }

    /// The team that owns the service.
    pub fn team(&self) -> &str {
        &self.team
    }

    /// The service's own figures for the watches, over `[watches]`.
    pub fn watch_tuning(&self) -> &WatchTuning {
        &self.watches
    }

    /// The service's mission-control endpoint, for its catalog and Runboard's calls.
    pub fn mission_control(&self) -> &MissionControl {
        &self.mission_control
    }

    /// The service's calls carry Runboard's own provider token from now on.
    pub(crate) fn call_with(&mut self, credentials: Credentials) {
        self.mission_control.set_credentials(credentials);
    }

    /// Runs one read under the service's timeout and names the service in its error. The
    /// read gets a read-only transaction of its own, rolled back after: the database refuses
    /// any write a contract query attempts (through a function it calls, say), and nothing
    /// the query did, not even to the session's settings, outlasts it.
    async fn read<T>(
        &self,
        relation: &'static str,
        read: impl AsyncFnOnce(&mut Transaction) -> Result<T, sqlx::Error>,
    ) -> Result<T, ReadError> {
        let started = tokio::time::Instant::now();
        let _slot = self.viewer_slot().await?;
        self.reads.record(&self.name, relation);
        let left = self.timeout.saturating_sub(started.elapsed());
        let read = async {
            let mut transaction = self.pool.begin_read_only(self.timeout).await?;
            let value = read(&mut transaction).await?;
            transaction.rollback().await?;
            Ok(value)
        };
        let problem = match tokio::time::timeout(left, read).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => classify(relation, e),
            Err(_) => ReadProblem::Timeout(self.timeout),
        };
        Err(self.error(problem))
    }

    /// One of the connections people's reads may hold, waited for up to the service's
    /// timeout; none is needed for Runboard's own work (see [`with_reserved_connections`]).
    async fn viewer_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ReadError> {
        if RESERVED.try_with(|_| ()).is_ok() {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeout, self.viewer_slots.clone().acquire_owned()).await {
            Ok(slot) => Ok(Some(slot.expect("the semaphore is never closed"))),
            Err(_) => Err(self.error(ReadProblem::Busy(self.timeout))),
        }
    }

    fn error(&self, problem: ReadProblem) -> ReadError {
        ReadError {
            service: self.name.clone(),
            problem,
        }
    }

    fn stuck_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.stuck_after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

/// Pages are read one row long: the extra row, dropped here, says that a next page exists,
/// and the page's last row says where it starts.
fn next_page<R>(rows: &mut Vec<R>, limit: u32, cursor: impl Fn(&R) -> String) -> Option<String> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor)
    } else {
        None
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn classify(relation: &'static str, error: sqlx::Error) -> ReadProblem {
    match error {
        sqlx::Error::ColumnNotFound(column) => ReadProblem::MissingColumn { relation, column },
        sqlx::Error::ColumnDecode { index, source } => ReadProblem::MalformedRow {
            relation,
            detail: format!("column {index}: {source}"),
        },
        sqlx::Error::Decode(source) => ReadProblem::MalformedRow {
            relation,
            detail: source.to_string(),
        },
        sqlx::Error::PoolTimedOut => ReadProblem::Unreachable(
            "no connection within the timeout: it is down, unreachable or overloaded".into(),
        ),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => ReadProblem::Unreachable(error.to_string()),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            // SQLITE_CANTOPEN (14): the file is gone, as good as a stopped server.
            if db.code().as_deref() == Some("14")
                || message.contains("unable to open database file")
            {
                ReadProblem::Unreachable(message)
            } else if db.code().as_deref() == Some("57014") {
                // PostgreSQL's query_canceled: its statement_timeout fired.
                ReadProblem::Query {
                    relation,
                    detail: format!("cancelled by the statement timeout: {message}"),
                }
            } else {
                ReadProblem::Query {
                    relation,
                    detail: message,
                }
            }
        }
        other => ReadProblem::Query {
            relation,
            detail: other.to_string(),
        },
    }
}
