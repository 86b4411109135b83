//! The sagas relation (`supervisor_view`, `saga_events`, `entity_facts`): counts, pages,
//! lookups and error groups.

use std::time::Duration;

use chrono::{DateTime, Utc};
use runboard_model::{
    ErrorGroup, Saga, SagaCounts, SagaEvent, SagaFact, SagaPage, SagaQuery, SagaStatus,
};

use super::sql::Sql;
use super::{Connector, LOOKUP_CHUNK, ReadError, count, next_page};
use crate::db::Arg;
use crate::db::on_transaction;
use runboard_dialect::Row;

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

#[derive(sqlx::FromRow)]
pub(super) struct SagaRow {
    saga_id: String,
    saga_type: String,
    current_step: String,
    completed: bool,
    error_message: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SagaRow {
    pub(super) fn cursor(&self) -> SagaCursor {
        SagaCursor {
            created_at: self.created_at,
            saga_id: self.saga_id.clone(),
        }
    }

    pub(super) fn into_saga(self, stuck_before: DateTime<Utc>) -> Saga {
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
            .read("supervisor_view", async |transaction| {
                on_transaction!(transaction, |connection| {
                    sqlx::query_as(&sql)
                        .bind(stuck_before)
                        .fetch_one(connection)
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
            .read("supervisor_view", async |transaction| {
                on_transaction!(transaction, |connection| {
                    let mut query = sqlx::query(&sql);
                    for at in times {
                        query = query.bind(self.stuck_before(*at)).bind(*at);
                    }
                    let row = query.fetch_one(connection).await?;
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
        let limit = filter.limit.clamp(1, max_limit);
        // One more than asked tells whether there is a next page.
        let (query, params) = self.saga_statement(filter, now, i64::from(limit) + 1);
        let mut rows: Vec<SagaRow> = self.fetch_all("supervisor_view", &query, &params).await?;
        let next = next_page(&mut rows, limit, |last| last.cursor().to_string());
        let stuck_before = self.stuck_before(now);
        let sagas = rows
            .into_iter()
            .map(|row| row.into_saga(stuck_before))
            .collect();
        Ok(SagaPage { sagas, next })
    }

    /// The statement of the sagas `filter` lists, at most `rows` of them from its cursor on.
    pub(super) fn saga_statement(
        &self,
        filter: &SagaFilter,
        now: DateTime<Utc>,
        rows: i64,
    ) -> (String, Vec<Arg>) {
        let mut sql = Sql::default();
        let stuck_before = sql.param(Arg::Time(self.stuck_before(now)));
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
                let p = sql.param(Arg::Text(value.clone()));
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
            let p = sql.param(Arg::Time(ago(age)));
            sql.and(format!("created_at <= {p}"));
        }
        if let Some(age) = filter.newer_than {
            let p = sql.param(Arg::Time(ago(age)));
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
            let c = sql.param(Arg::Time(*created_at));
            let s = sql.param(Arg::Text(saga_id.clone()));
            // A row comparison, which both databases turn into an index range: the
            // scan starts at the cursor instead of walking down to it.
            sql.and(format!("(created_at, saga_id) {beyond} ({c}, {s})"));
        }
        let l = sql.param(Arg::Int(rows));
        let query = format!(
            "SELECT saga_id, saga_type, current_step, completed, error_message, created_at, updated_at \
             FROM ({}) AS supervisor_view {} ORDER BY created_at {order}, saga_id {order} LIMIT {l}",
            self.queries.supervisor_view,
            sql.where_clause(),
        );
        (query, sql.params)
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

    /// A saga's history, oldest first, where the service gives one (`None` where it does not).
    pub async fn saga_events(&self, saga_id: &str) -> Result<Option<Vec<SagaEvent>>, ReadError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            at: DateTime<Utc>,
            kind: String,
            detail: Option<String>,
        }
        let rows: Option<Vec<Row>> = self
            .rows_of_saga(
                "saga_events",
                self.queries.saga_events.as_deref(),
                saga_id,
                "at, kind, detail",
                "at",
            )
            .await?;
        Ok(rows.map(|rows| {
            rows.into_iter()
                .map(|r| SagaEvent {
                    at: r.at,
                    kind: r.kind,
                    detail: r.detail.unwrap_or_default(),
                })
                .collect()
        }))
    }

    /// The facts the service keeps about a saga, by name (`None` where it offers none).
    pub async fn saga_facts(&self, saga_id: &str) -> Result<Option<Vec<SagaFact>>, ReadError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            name: String,
            value: Option<String>,
        }
        let rows: Option<Vec<Row>> = self
            .rows_of_saga(
                "entity_facts",
                self.queries.entity_facts.as_deref(),
                saga_id,
                "name, value",
                "name",
            )
            .await?;
        Ok(rows.map(|rows| {
            rows.into_iter()
                .map(|r| SagaFact {
                    name: r.name,
                    value: r.value.unwrap_or_default(),
                })
                .collect()
        }))
    }

    /// The facts the service keeps about each of `ids`, as `(saga_id, fact)`, read in
    /// chunks (`None` where it offers none): what runbooks fill their arguments from.
    pub async fn facts_of(
        &self,
        ids: &[String],
    ) -> Result<Option<Vec<(String, SagaFact)>>, ReadError> {
        let Some(facts) = &self.queries.entity_facts else {
            return Ok(None);
        };
        #[derive(sqlx::FromRow)]
        struct Row {
            saga_id: String,
            name: String,
            value: Option<String>,
        }
        let mut found = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let list = sql.in_list(chunk);
            let query = format!(
                "SELECT saga_id, name, value FROM ({facts}) AS entity_facts WHERE saga_id IN ({list})"
            );
            let rows: Vec<Row> = self.fetch_all("entity_facts", &query, &sql.params).await?;
            found.extend(rows.into_iter().map(|r| {
                (
                    r.saga_id,
                    SagaFact {
                        name: r.name,
                        value: r.value.unwrap_or_default(),
                    },
                )
            }));
        }
        Ok(Some(found))
    }

    /// One saga's rows of an optional per-saga relation (`saga_events`, `entity_facts`),
    /// `None` where the service has no query for it.
    async fn rows_of_saga<R: Row>(
        &self,
        relation: &'static str,
        query: Option<&str>,
        saga_id: &str,
        columns: &str,
        order: &str,
    ) -> Result<Option<Vec<R>>, ReadError> {
        let Some(query) = query else {
            return Ok(None);
        };
        let mut sql = Sql::default();
        let id = sql.param(Arg::Text(saga_id.to_owned()));
        let l = sql.param(Arg::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT {columns} FROM ({query}) AS {relation} WHERE saga_id = {id} ORDER BY {order} LIMIT {l}"
        );
        Ok(Some(self.fetch_all(relation, &query, &sql.params).await?))
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
            .read("supervisor_view", async |transaction| {
                on_transaction!(transaction, |connection| {
                    sqlx::query_as(&sql)
                        .bind(i64::from(self.row_limit))
                        .fetch_all(connection)
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
        let p = sql.param(Arg::Text(error_message.to_owned()));
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
