//! Reads one service's database through the service contract (SPEC.md).
//!
//! Every read has a timeout and a row limit, and every failure becomes a
//! [`ReadError`] naming the service and what an engineer can do about it: a service
//! that is down, slow or returns a malformed row never breaks the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use regex::Regex;
use runboard_model::{
    BatchItem, BatchItemPage, BatchItemStatus, BatchProgress, ErrorGroup, Money, Saga, SagaCounts,
    SagaEvent, SagaPage, SagaQuery, SagaStatus, ServiceName, ServiceSource, add_to_totals,
};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use crate::config::{ContractQueries, ServiceConfig, WatchTuning};
use crate::db::{Pool, PoolSettings, on_pool};
use crate::metrics::ServiceReads;
use crate::mission_control::{Credentials, MissionControl};

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
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("service {service}: {problem}")]
pub struct ReadError {
    pub service: ServiceName,
    pub problem: ReadProblem,
}

/// Which sagas to list, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SagaFilter {
    pub status: Option<SagaStatus>,
    pub saga_type: Option<String>,
    pub step: Option<String>,
    pub error_message: Option<String>,
    /// Only sagas created at least this long ago.
    pub older_than: Option<Duration>,
    /// Only sagas created at most this long ago.
    pub newer_than: Option<Duration>,
    pub oldest_first: bool,
    /// Where the previous page ended.
    pub after: Option<SagaCursor>,
    pub limit: u32,
}

/// IDs asked for in one statement: well under every database's limit on parameters.
const LOOKUP_CHUNK: usize = 500;

/// The largest page a caller may ask for.
pub const MAX_PAGE: u32 = 500;

/// Most sagas one read of an action's selection brings back.
pub(crate) const SELECTION_PAGE: u32 = 5_000;

/// The longest age a filter takes: a century, beyond any saga a service keeps.
const MAX_AGE: Duration = Duration::from_secs(36_525 * 24 * 60 * 60);

/// A page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

impl SagaFilter {
    /// Checks a query from a URL; the error says what was wrong and what to send instead.
    pub fn parse(query: &SagaQuery) -> Result<Self, String> {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let age = |name: &str, value: &Option<String>| {
            given(value)
                .map(|v| {
                    let age = humantime::parse_duration(v.trim()).map_err(|e| {
                        format!("{name}={v:?} is not a duration ({e}); use e.g. 30m, 2h or 3d")
                    })?;
                    // Bounded here so that `now - age` always has an answer both databases
                    // can store.
                    if age > MAX_AGE {
                        return Err(format!(
                            "{name}={v:?} reaches back before any saga; use at most 100y"
                        ));
                    }
                    Ok(age)
                })
                .transpose()
        };
        Ok(Self {
            status: given(&query.status).map(|s| s.parse()).transpose()?,
            saga_type: given(&query.saga_type),
            step: given(&query.step),
            error_message: given(&query.error),
            older_than: age("older_than", &query.older_than)?,
            newer_than: age("newer_than", &query.newer_than)?,
            oldest_first: match given(&query.sort).as_deref() {
                None | Some("newest") => false,
                Some("oldest") => true,
                Some(other) => {
                    return Err(format!("sort={other:?} is not known; use newest or oldest"));
                }
            },
            after: given(&query.after).map(|c| c.parse()).transpose()?,
            limit: page_limit(query.limit)?,
        })
    }
}

/// Checks a requested page size.
pub fn page_limit(limit: Option<u32>) -> Result<u32, String> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(n) => Err(format!("limit={n} is out of range; use 1 to {MAX_PAGE}")),
    }
}

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

/// A bind parameter, so that filters can be assembled at run time for either database.
enum Param {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// Assembles WHERE clauses with numbered placeholders (`$n`, which both databases accept).
#[derive(Default)]
struct Sql {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Sql {
    fn param(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// `$3, $4, $5`: one placeholder per value, for `IN (…)`.
    fn in_list(&mut self, values: &[String]) -> String {
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.param(Param::Text(v.clone())))
            .collect();
        placeholders.join(", ")
    }

    fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Binds assembled parameters to a query of either database.
macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Text(v) => query.bind(v.clone()),
                Param::Time(v) => query.bind(*v),
                Param::Int(v) => query.bind(*v),
            };
        }
        query
    }};
}

#[derive(sqlx::FromRow)]
struct SagaRow {
    saga_id: String,
    saga_type: String,
    current_step: String,
    completed: bool,
    error_message: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SagaRow {
    fn into_saga(self, stuck_before: DateTime<Utc>) -> Saga {
        Saga {
            status: SagaStatus::derive(
                self.completed,
                self.error_message.as_deref(),
                self.updated_at,
                stuck_before,
            ),
            saga_id: self.saga_id,
            saga_type: self.saga_type,
            current_step: self.current_step,
            error_message: self.error_message,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CountsRow {
    completed: i64,
    failed: i64,
    stuck: i64,
    running: i64,
}

#[derive(sqlx::FromRow)]
struct ErrorGroupRow {
    error_message: String,
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    batch_id: String,
    name: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    done: i64,
    failed: i64,
    pending: i64,
    last_finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct BatchItemRow {
    item_id: String,
    status: String,
    error: Option<String>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FundsRow {
    saga_id: String,
    amount: String,
    currency: String,
}

const STATUS_PREDICATES: [(SagaStatus, &str); 4] = [
    (SagaStatus::Completed, "completed"),
    (
        SagaStatus::Failed,
        "NOT completed AND error_message IS NOT NULL",
    ),
    (
        SagaStatus::Stuck,
        "NOT completed AND error_message IS NULL AND updated_at < $1",
    ),
    (
        SagaStatus::Running,
        "NOT completed AND error_message IS NULL AND updated_at >= $1",
    ),
];

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

    /// Runs one read under the service's timeout and names the service in its error.
    async fn read<T>(
        &self,
        relation: &'static str,
        read: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, ReadError> {
        let started = tokio::time::Instant::now();
        let _slot = if RESERVED.try_with(|_| ()).is_ok() {
            None
        } else {
            match tokio::time::timeout(self.timeout, self.viewer_slots.clone().acquire_owned())
                .await
            {
                Ok(slot) => Some(slot.expect("the semaphore is never closed")),
                Err(_) => return Err(self.error(ReadProblem::Busy(self.timeout))),
            }
        };
        self.reads.record(self.name.as_str(), relation);
        let left = self.timeout.saturating_sub(started.elapsed());
        let problem = match tokio::time::timeout(left, read).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => classify(relation, e),
            Err(_) => ReadProblem::Timeout(self.timeout),
        };
        Err(self.error(problem))
    }

    /// Runs an assembled query of either database and maps its rows.
    async fn fetch_all<R>(
        &self,
        relation: &'static str,
        query: &str,
        params: &[Param],
    ) -> Result<Vec<R>, ReadError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        self.read(relation, async {
            on_pool!(self.pool, |pool| {
                bind_all!(sqlx::query_as(query), params)
                    .fetch_all(pool)
                    .await
            })
        })
        .await
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

    /// How many sagas are in each status, by SPEC's derivation.
    pub async fn saga_counts(&self, now: DateTime<Utc>) -> Result<SagaCounts, ReadError> {
        let sums: Vec<String> = STATUS_PREDICATES
            .iter()
            .map(|(status, predicate)| {
                format!("COALESCE(SUM(CASE WHEN {predicate} THEN 1 ELSE 0 END), 0) AS {status}")
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM ({}) AS supervisor_view",
            sums.join(", "),
            self.queries.supervisor_view
        );
        let stuck_before = self.stuck_before(now);
        let row: CountsRow = self
            .read("supervisor_view", async {
                on_pool!(self.pool, |pool| {
                    sqlx::query_as(&sql)
                        .bind(stuck_before)
                        .fetch_one(pool)
                        .await
                })
            })
            .await?;
        Ok(SagaCounts {
            running: count(row.running),
            stuck: count(row.stuck),
            failed: count(row.failed),
            completed: count(row.completed),
        })
    }

    /// Stuck and failed sagas at each of `times`, as far as the service's own timestamps
    /// tell: a saga failed now counts as failed since its `updated_at`, and one not finished
    /// and not failed as stuck from `stuck_after` past its `updated_at`. A lower bound, as
    /// sagas that recovered since are not seen. One statement for all the times.
    pub async fn counts_in_the_past(
        &self,
        times: &[DateTime<Utc>],
    ) -> Result<Vec<(u64, u64)>, ReadError> {
        let sums: Vec<String> = (0..times.len())
            .map(|i| {
                format!(
                    "COALESCE(SUM(CASE WHEN NOT completed AND error_message IS NULL AND updated_at < ${} THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN NOT completed AND error_message IS NOT NULL AND updated_at <= ${} THEN 1 ELSE 0 END), 0)",
                    2 * i + 1,
                    2 * i + 2
                )
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM ({}) AS supervisor_view",
            sums.join(", "),
            self.queries.supervisor_view
        );
        let counts: Vec<i64> = self
            .read("supervisor_view", async {
                on_pool!(self.pool, |pool| {
                    let mut query = sqlx::query(&sql);
                    for at in times {
                        query = query.bind(self.stuck_before(*at)).bind(*at);
                    }
                    let row = query.fetch_one(pool).await?;
                    (0..2 * times.len())
                        .map(|i| sqlx::Row::try_get::<i64, _>(&row, i))
                        .collect::<Result<Vec<i64>, sqlx::Error>>()
                })
            })
            .await?;
        Ok(counts
            .chunks(2)
            .map(|pair| (count(pair[0]), count(pair[1])))
            .collect())
    }

    /// One page of sagas, newest (or oldest) first, paged by `(created_at, saga_id)`:
    /// the thousandth page costs what the first does.
    pub async fn sagas(
        &self,
        filter: &SagaFilter,
        now: DateTime<Utc>,
    ) -> Result<SagaPage, ReadError> {
        self.saga_page(filter, now, MAX_PAGE).await
    }

    /// Like [`Connector::sagas`], in pages of up to [`SELECTION_PAGE`]: an action's
    /// selection of 100,000 sagas is read in 20 statements rather than 200.
    pub(crate) async fn sagas_for_selection(
        &self,
        filter: &SagaFilter,
        now: DateTime<Utc>,
    ) -> Result<SagaPage, ReadError> {
        self.saga_page(filter, now, SELECTION_PAGE).await
    }

    async fn saga_page(
        &self,
        filter: &SagaFilter,
        now: DateTime<Utc>,
        max_limit: u32,
    ) -> Result<SagaPage, ReadError> {
        let mut sql = Sql::default();
        let stuck_before = sql.param(Param::Time(self.stuck_before(now)));
        debug_assert_eq!(stuck_before, "$1", "status predicates refer to $1");
        if let Some(status) = filter.status {
            let (_, predicate) = STATUS_PREDICATES
                .iter()
                .find(|(s, _)| *s == status)
                .expect("every status has a predicate");
            sql.and(format!("({predicate})"));
        }
        for (column, value) in [
            ("saga_type", &filter.saga_type),
            ("current_step", &filter.step),
            ("error_message", &filter.error_message),
        ] {
            if let Some(value) = value {
                let p = sql.param(Param::Text(value.clone()));
                sql.and(format!("{column} = {p}"));
            }
        }
        let ago = |d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        if let Some(age) = filter.older_than {
            let p = sql.param(Param::Time(ago(age)));
            sql.and(format!("created_at <= {p}"));
        }
        if let Some(age) = filter.newer_than {
            let p = sql.param(Param::Time(ago(age)));
            sql.and(format!("created_at >= {p}"));
        }
        let (order, beyond) = if filter.oldest_first {
            ("ASC", ">")
        } else {
            ("DESC", "<")
        };
        if let Some(SagaCursor {
            created_at,
            saga_id,
        }) = &filter.after
        {
            let c = sql.param(Param::Time(*created_at));
            let s = sql.param(Param::Text(saga_id.clone()));
            // A row comparison, which both databases turn into an index range: the
            // scan starts at the cursor instead of walking down to it.
            sql.and(format!("(created_at, saga_id) {beyond} ({c}, {s})"));
        }
        let limit = filter.limit.clamp(1, max_limit);
        // One more than asked tells whether there is a next page.
        let l = sql.param(Param::Int(i64::from(limit) + 1));
        let query = format!(
            "SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at \
             FROM ({}) AS supervisor_view {} ORDER BY created_at {order}, saga_id {order} LIMIT {l}",
            self.queries.supervisor_view,
            sql.where_clause(),
        );
        let mut rows: Vec<SagaRow> = self
            .fetch_all("supervisor_view", &query, &sql.params)
            .await?;
        let next = next_page(&mut rows, limit, |last| {
            SagaCursor {
                created_at: last.created_at,
                saga_id: last.saga_id.clone(),
            }
            .to_string()
        });
        let stuck_before = self.stuck_before(now);
        let sagas = rows
            .into_iter()
            .map(|row| row.into_saga(stuck_before))
            .collect();
        Ok(SagaPage { sagas, next })
    }

    /// The sagas with these IDs, asked in chunks so that no statement grows unbounded.
    pub async fn find_sagas(&self, ids: &[String]) -> Result<Vec<Saga>, ReadError> {
        let now = Utc::now();
        let stuck_before = self.stuck_before(now);
        let mut found = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let list = sql.in_list(chunk);
            let query = format!(
                "SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at \
                 FROM ({}) AS supervisor_view WHERE saga_id IN ({})",
                self.queries.supervisor_view, list
            );
            let rows: Vec<SagaRow> = self
                .fetch_all("supervisor_view", &query, &sql.params)
                .await?;
            found.extend(rows.into_iter().map(|row| row.into_saga(stuck_before)));
        }
        Ok(found)
    }

    /// The batch items with these IDs, as `(batch_id, item)`.
    pub async fn find_batch_items(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, BatchItem)>, ReadError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            batch_id: String,
            #[sqlx(flatten)]
            item: BatchItemRow,
        }
        let mut found = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let list = sql.in_list(chunk);
            let query = format!(
                "SELECT batch_id, item_id, status, error, updated_at FROM ({}) AS batch_item WHERE item_id IN ({})",
                self.queries.batch_item, list
            );
            let rows: Vec<Row> = self.fetch_all("batch_item", &query, &sql.params).await?;
            for row in rows {
                let item = self.batch_item(row.item)?;
                found.push((row.batch_id, item));
            }
        }
        Ok(found)
    }

    /// A saga's history, oldest first, where the service gives one (`None` where it does not).
    pub async fn saga_events(&self, saga_id: &str) -> Result<Option<Vec<SagaEvent>>, ReadError> {
        let Some(events) = &self.queries.saga_events else {
            return Ok(None);
        };
        let mut sql = Sql::default();
        let id = sql.param(Param::Text(saga_id.to_owned()));
        let l = sql.param(Param::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT at, kind, detail FROM ({events}) AS saga_events WHERE saga_id = {id} ORDER BY at LIMIT {l}"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            at: DateTime<Utc>,
            kind: String,
            detail: Option<String>,
        }
        let rows: Vec<Row> = self.fetch_all("saga_events", &query, &sql.params).await?;
        Ok(Some(
            rows.into_iter()
                .map(|r| SagaEvent {
                    at: r.at,
                    kind: r.kind,
                    detail: r.detail.unwrap_or_default(),
                })
                .collect(),
        ))
    }

    /// Failed sagas grouped by error message, largest group first.
    pub async fn error_groups(&self) -> Result<Vec<ErrorGroup>, ReadError> {
        let sql = format!(
            "SELECT error_message, COUNT(*) AS count, MIN(updated_at) AS first_seen, MAX(updated_at) AS last_seen \
             FROM ({}) AS supervisor_view WHERE NOT completed AND error_message IS NOT NULL \
             GROUP BY error_message ORDER BY count DESC, error_message LIMIT $1",
            self.queries.supervisor_view
        );
        let rows: Vec<ErrorGroupRow> = self
            .read("supervisor_view", async {
                on_pool!(self.pool, |pool| {
                    sqlx::query_as(&sql)
                        .bind(i64::from(self.row_limit))
                        .fetch_all(pool)
                        .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| ErrorGroup {
                error_message: row.error_message,
                count: count(row.count),
                first_seen: row.first_seen,
                last_seen: row.last_seen,
            })
            .collect())
    }

    /// The saga that failed first with `error_message`, of those failed with it now.
    pub(crate) async fn first_failed_with(
        &self,
        error_message: &str,
    ) -> Result<Option<String>, ReadError> {
        let mut sql = Sql::default();
        let p = sql.param(Param::Text(error_message.to_owned()));
        let query = format!(
            "SELECT saga_id FROM ({}) AS supervisor_view WHERE NOT completed AND error_message = {p} \
             ORDER BY updated_at, saga_id LIMIT 1",
            self.queries.supervisor_view,
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            saga_id: String,
        }
        let rows: Vec<Row> = self
            .fetch_all("supervisor_view", &query, &sql.params)
            .await?;
        Ok(rows.into_iter().next().map(|r| r.saga_id))
    }

    /// Batches, newest first, with their items counted by status.
    pub async fn batches(&self, batch_id: Option<&str>) -> Result<Vec<BatchProgress>, ReadError> {
        let mut sql = Sql::default();
        if let Some(id) = batch_id {
            let p = sql.param(Param::Text(id.to_owned()));
            sql.and(format!("batch_run.batch_id = {p}"));
        }
        self.batch_progress(sql).await
    }

    /// The batches the *stalled batch* watch looks at: those running, and those finished
    /// since `finished_since`.
    pub(crate) async fn batches_to_watch(
        &self,
        finished_since: DateTime<Utc>,
    ) -> Result<Vec<BatchProgress>, ReadError> {
        let mut sql = Sql::default();
        let p = sql.param(Param::Time(finished_since));
        sql.and(format!(
            "(batch_run.finished_at IS NULL OR batch_run.finished_at > {p})"
        ));
        self.batch_progress(sql).await
    }

    async fn batch_progress(&self, mut sql: Sql) -> Result<Vec<BatchProgress>, ReadError> {
        let l = sql.param(Param::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT batch_run.batch_id, batch_run.name, batch_run.started_at, batch_run.finished_at, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'done' THEN 1 ELSE 0 END), 0) AS done, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
               MAX(CASE WHEN batch_item.status IN ('done', 'failed') THEN batch_item.updated_at END) AS last_finished_at \
             FROM ({}) AS batch_run LEFT JOIN ({}) AS batch_item ON batch_item.batch_id = batch_run.batch_id \
             {} GROUP BY batch_run.batch_id, batch_run.name, batch_run.started_at, batch_run.finished_at \
             ORDER BY batch_run.started_at DESC, batch_run.batch_id LIMIT {l}",
            self.queries.batch_run,
            self.queries.batch_item,
            sql.where_clause(),
        );
        let rows: Vec<BatchRow> = self.fetch_all("batch_run", &query, &sql.params).await?;
        Ok(rows
            .into_iter()
            .map(|row| BatchProgress {
                batch_id: row.batch_id,
                name: row.name,
                started_at: row.started_at,
                finished_at: row.finished_at,
                done: count(row.done),
                failed: count(row.failed),
                pending: count(row.pending),
                last_finished_at: row.last_finished_at,
            })
            .collect())
    }

    /// How many batches have at least one failed item.
    pub async fn failed_batches(&self) -> Result<u64, ReadError> {
        let sql = format!(
            "SELECT COUNT(DISTINCT batch_id) FROM ({}) AS batch_item WHERE status = 'failed'",
            self.queries.batch_item
        );
        let (n,): (i64,) = self
            .read("batch_item", async {
                on_pool!(self.pool, |pool| sqlx::query_as(&sql).fetch_one(pool).await)
            })
            .await?;
        Ok(count(n))
    }

    /// When each finished item of a batch finished, oldest first: the batch's progress over time.
    pub async fn finished_items(
        &self,
        batch_id: &str,
    ) -> Result<Vec<(DateTime<Utc>, BatchItemStatus)>, ReadError> {
        let mut sql = Sql::default();
        let b = sql.param(Param::Text(batch_id.to_owned()));
        let l = sql.param(Param::Int(i64::from(self.row_limit) + 1));
        let query = format!(
            "SELECT item_id, status, error, updated_at FROM ({}) AS batch_item \
             WHERE batch_id = {b} AND status IN ('done', 'failed') ORDER BY updated_at LIMIT {l}",
            self.queries.batch_item,
        );
        let rows: Vec<BatchItemRow> = self.fetch_all("batch_item", &query, &sql.params).await?;
        if rows.len() > self.row_limit as usize {
            return Err(self.error(ReadProblem::TooManyRows {
                relation: "batch_item",
                limit: self.row_limit,
            }));
        }
        rows.into_iter()
            .map(|row| Ok((row.updated_at, self.item_status(&row.status)?)))
            .collect()
    }

    /// A batch's failed items grouped by error, largest group first.
    pub async fn batch_errors(&self, batch_id: &str) -> Result<Vec<(String, u64)>, ReadError> {
        let mut sql = Sql::default();
        let b = sql.param(Param::Text(batch_id.to_owned()));
        let l = sql.param(Param::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT COALESCE(error, '(no error given)') AS error, COUNT(*) AS count FROM ({}) AS batch_item \
             WHERE batch_id = {b} AND status = 'failed' GROUP BY error ORDER BY count DESC, error LIMIT {l}",
            self.queries.batch_item,
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            error: String,
            count: i64,
        }
        let rows: Vec<Row> = self.fetch_all("batch_item", &query, &sql.params).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.error, count(r.count)))
            .collect())
    }

    fn batch_item(&self, row: BatchItemRow) -> Result<BatchItem, ReadError> {
        Ok(BatchItem {
            status: self.item_status(&row.status)?,
            item_id: row.item_id,
            error: row.error,
            updated_at: row.updated_at,
        })
    }

    fn item_status(&self, status: &str) -> Result<BatchItemStatus, ReadError> {
        status.parse().map_err(|detail| {
            self.error(ReadProblem::MalformedRow {
                relation: "batch_item",
                detail,
            })
        })
    }

    /// One batch's items, by item id, keyset-paged.
    pub async fn batch_items(
        &self,
        batch_id: &str,
        status: Option<BatchItemStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<BatchItemPage, ReadError> {
        let mut sql = Sql::default();
        let b = sql.param(Param::Text(batch_id.to_owned()));
        sql.and(format!("batch_id = {b}"));
        if let Some(status) = status {
            let p = sql.param(Param::Text(status.as_str().to_owned()));
            sql.and(format!("status = {p}"));
        }
        if let Some(after) = after {
            let p = sql.param(Param::Text(after.to_owned()));
            sql.and(format!("item_id > {p}"));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let l = sql.param(Param::Int(i64::from(limit) + 1));
        let query = format!(
            "SELECT item_id, status, error, updated_at FROM ({}) AS batch_item {} ORDER BY item_id LIMIT {l}",
            self.queries.batch_item,
            sql.where_clause(),
        );
        let mut rows: Vec<BatchItemRow> = self.fetch_all("batch_item", &query, &sql.params).await?;
        let next = next_page(&mut rows, limit, |last| last.item_id.clone());
        let items = rows
            .into_iter()
            .map(|row| self.batch_item(row))
            .collect::<Result<_, ReadError>>()?;
        Ok(BatchItemPage { items, next })
    }

    /// Withheld funds per currency, summed exactly from the service's own query; none where
    /// the service has no `withheld_funds` query (it holds no money).
    pub async fn withheld_funds(&self) -> Result<Vec<Money>, ReadError> {
        let mut totals = Vec::new();
        for (_, money) in self.withheld_by_saga().await?.unwrap_or_default() {
            add_to_totals(&mut totals, money.amount, &money.currency);
        }
        Ok(totals)
    }

    /// The money each failed or stuck saga holds, as the service's own query reports it;
    /// `None` where the service has no `withheld_funds` query.
    pub async fn withheld_by_saga(&self) -> Result<Option<Vec<(String, Money)>>, ReadError> {
        let Some(funds_query) = &self.queries.withheld_funds else {
            return Ok(None);
        };
        // Amounts travel as text so that neither driver rounds them through a float.
        let sql = format!(
            "SELECT saga_id, CAST(amount AS TEXT) AS amount, currency FROM ({funds_query}) AS withheld_funds"
        );
        let limit = self.row_limit as usize;
        let rows: Result<Vec<FundsRow>, ReadProblem> = self
            .read("withheld_funds", async {
                on_pool!(self.pool, |pool| {
                    let mut rows = Vec::new();
                    let mut stream = sqlx::query_as::<_, FundsRow>(&sql).fetch(pool);
                    while let Some(row) = stream.try_next().await? {
                        if rows.len() == limit {
                            return Ok(Err(ReadProblem::TooManyRows {
                                relation: "withheld_funds",
                                limit: self.row_limit,
                            }));
                        }
                        rows.push(row);
                    }
                    Ok(Ok(rows))
                })
            })
            .await?;
        let rows = rows.map_err(|problem| self.error(problem))?;
        rows.into_iter()
            .map(|row| {
                let amount: Decimal = row.amount.trim().parse().map_err(|e| {
                    self.error(ReadProblem::MalformedRow {
                        relation: "withheld_funds",
                        detail: format!("amount {:?} is not a decimal number: {e}", row.amount),
                    })
                })?;
                let currency = row.currency.trim().to_owned();
                Ok((row.saga_id, Money { amount, currency }))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Per currency, since when the saga holding money the longest has been failed or
    /// stuck (its last update); none where the service holds no money.
    pub(crate) async fn oldest_holding(&self) -> Result<Vec<(String, DateTime<Utc>)>, ReadError> {
        let Some(funds_query) = &self.queries.withheld_funds else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT withheld_funds.currency, MIN(supervisor_view.updated_at) AS since \
             FROM ({funds_query}) AS withheld_funds \
             JOIN ({}) AS supervisor_view ON supervisor_view.saga_id = withheld_funds.saga_id \
             GROUP BY withheld_funds.currency",
            self.queries.supervisor_view
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            currency: String,
            since: DateTime<Utc>,
        }
        let rows: Vec<Row> = self.fetch_all("withheld_funds", &sql, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.currency.trim().to_owned(), r.since))
            .collect())
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

/// Where a page of sagas ended: `created_at~saga_id` in URLs, opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SagaCursor {
    created_at: DateTime<Utc>,
    saga_id: String,
}

impl std::fmt::Display for SagaCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        write!(f, "{at}~{}", self.saga_id)
    }
}

impl std::str::FromStr for SagaCursor {
    type Err = String;

    fn from_str(cursor: &str) -> Result<Self, Self::Err> {
        let not_ours = || {
            format!(
                "the page cursor {cursor:?} is not one Runboard gave out; start again from the first page"
            )
        };
        let (at, saga_id) = cursor.split_once('~').ok_or_else(not_ours)?;
        let created_at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| not_ours())?
            .with_timezone(&Utc);
        Ok(Self {
            created_at,
            saga_id: saga_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        let cursor = SagaCursor {
            created_at: "2026-11-24T08:30:00.123456Z".parse().unwrap(),
            saga_id: "7f1c~id".into(),
        };
        assert_eq!(cursor.to_string().parse::<SagaCursor>(), Ok(cursor));
        assert!(
            "page=2"
                .parse::<SagaCursor>()
                .unwrap_err()
                .contains("not one Runboard gave out")
        );
    }
}
