//! Actions as the store keeps them, and the queries that read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use runboard_model::{
    Action, ActionId, ActionProgress, ActionState, Approval, Digest, DryRun, Effect, EntityResult,
    EntityState, EntityStep, Execution, Money, Pace, PersonKey, Preview, ServiceName, StepState,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ActionError;
use crate::App;
use crate::db::on_pool;
use crate::store::StoreError;

/// Most entities one page of an action lists.
pub const MAX_ENTITY_PAGE: u32 = 1000;

/// Which of an action's entities a page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntityPage {
    /// The position of the last entity of the page before; `None` from the start.
    pub after: Option<u64>,
    /// At most this many (up to [`MAX_ENTITY_PAGE`]).
    pub limit: u32,
    /// Only the entities in this state.
    pub state: Option<EntityState>,
}

/// A stored outcome; one written before chunks is the plain text of the entity's result.
pub(crate) fn read_outcome(text: &str) -> ChunkOutcome {
    serde_json::from_str(text).unwrap_or_else(|_| ChunkOutcome::Failed(text.to_owned()))
}

/// The money an entity held when the preview was made, as `action_entity` keeps it.
pub(crate) fn held_money(amount: Option<String>, currency: Option<String>) -> Option<Money> {
    Some(Money {
        amount: amount?.parse::<Decimal>().ok()?,
        currency: currency?,
    })
}

/// What the effects on `entity` did, in words; `None` when none names it. The sole member
/// of its call (a single call, say) owns every effect, whatever entity the service names.
pub(crate) fn descriptions(effects: &[Effect], entity: &str, sole: bool) -> Option<String> {
    let mine: Vec<&str> = effects
        .iter()
        .filter(|e| sole || e.entity_id == entity)
        .map(|e| e.description.as_str())
        .collect();
    (!mine.is_empty()).then(|| mine.join("; "))
}

/// Which actions a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionFilter<'a> {
    All,
    /// Those this person asked for.
    RequestedBy(&'a PersonKey),
    /// Awaiting approval, asked for by someone else, not yet approved by this person.
    AwaitingApprovalBy(&'a PersonKey),
    InState(ActionState),
}

#[derive(sqlx::FromRow)]
pub(super) struct ActionRow {
    id: ActionId,
    service: ServiceName,
    mutation: String,
    state: String,
    state_detail: Option<String>,
    requester: PersonKey,
    requester_name: String,
    reason: Option<String>,
    incident_url: Option<String>,
    preview: String,
    digest: Digest,
    approvals_needed: i32,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    entity_count: i64,
    succeeded_count: i64,
    failed_count: i64,
    current_step: i32,
    pace: Option<String>,
    execution: Option<String>,
    dry_run_ms: Option<i64>,
}

const ACTION_COLUMNS: &str = "id, service, mutation, state, state_detail, requester, \
    requester_name, reason, incident_url, preview, digest, approvals_needed, created_at, \
    expires_at, updated_at, entity_count, succeeded_count, failed_count, current_step, pace, \
    execution, dry_run_ms";

/// An action's own pace as `action.pace` keeps it; none where it has none.
pub(crate) fn read_pace(text: Option<&str>) -> Pace {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// What a chunk's call came to, as `action_chunk.outcome` keeps it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChunkOutcome {
    /// The service took the call and listed these effects.
    Applied(Vec<Effect>),
    /// The call failed for all its members, for this reason.
    Failed(String),
    /// The service refused the call as a whole; its members went on in two smaller chunks.
    Split(String),
}

/// A preview stored before chunks (its entities and effects inside the JSON), read as a
/// summary so that older actions still show.
#[derive(Deserialize)]
struct PreviewBeforeChunks {
    endpoint: String,
    document: String,
    variables: serde_json::Value,
    entity_argument: Option<String>,
    entities: Vec<serde_json::Value>,
    concurrency: u32,
    dry_run: serde_json::Value,
    money: Vec<Money>,
}

fn read_preview(text: &str) -> Result<Preview, ActionError> {
    match serde_json::from_str(text) {
        Ok(preview) => Ok(preview),
        Err(e) => {
            let old: PreviewBeforeChunks = serde_json::from_str(text).map_err(|_| corrupt(e))?;
            let effects = old.dry_run.get("effects").and_then(|e| e.as_array());
            Ok(Preview {
                endpoint: old.endpoint,
                document: old.document,
                variables: old.variables,
                entity_argument: old.entity_argument,
                entities: old.entities.len() as u64,
                chunk_size: 1,
                concurrency: old.concurrency,
                dry_run: match effects {
                    Some(effects) => DryRun::Done {
                        effects: effects.len() as u64,
                        groups: Vec::new(),
                    },
                    None => DryRun::NotOffered,
                },
                money: old.money,
                steps: Vec::new(),
                params: Default::default(),
                canary: 0,
            })
        }
    }
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> ActionError {
    ActionError::Store(StoreError::corrupt(e))
}

impl ActionRow {
    /// The action; `service_pace` is its service's default pace.
    fn into_action(
        self,
        approvals: Vec<Approval>,
        service_pace: Pace,
    ) -> Result<Action, ActionError> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let (succeeded, failed) = (count(self.succeeded_count), count(self.failed_count));
        let executing = self.state == ActionState::Executing.as_str();
        let execution: Option<Execution> = self
            .execution
            .as_deref()
            .filter(|_| executing)
            .and_then(|e| serde_json::from_str(e).ok());
        let pending = count(self.entity_count).saturating_sub(succeeded + failed);
        let eta = execution
            .as_ref()
            .and_then(|e| e.entities_per_second)
            .filter(|rate| *rate > 0.0)
            .and_then(|rate| {
                chrono::Duration::from_std(std::time::Duration::from_secs_f64(
                    pending as f64 / rate,
                ))
                .ok()
            })
            .map(|left| Utc::now() + left);
        let progress = ActionProgress {
            pending,
            succeeded,
            failed,
            execution,
            eta,
        };
        let pace = read_pace(self.pace.as_deref()).or(service_pace);
        let state = ActionState::parse(&self.state).ok_or_else(|| {
            ActionError::Store(StoreError::Query(sqlx::Error::Protocol(format!(
                "action {} has the unknown state {:?}",
                self.id, self.state
            ))))
        })?;
        let preview = read_preview(&self.preview)?;
        Ok(Action {
            estimated_seconds: self.dry_run_ms.map(|ms| {
                let dry_run = std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                preview.estimate(&pace, dry_run).as_secs().max(1)
            }),
            pace,
            preview,
            id: self.id,
            service: self.service,
            mutation: self.mutation,
            state,
            state_detail: self.state_detail,
            requester: self.requester,
            requester_name: self.requester_name,
            reason: self.reason,
            incident_url: self.incident_url,
            digest: self.digest,
            approvals_needed: u32::try_from(self.approvals_needed).unwrap_or(1),
            approvals,
            progress,
            current_step: u32::try_from(self.current_step).unwrap_or(0),
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.updated_at,
        })
    }
}

impl App {
    /// One action with its approvals and progress.
    pub async fn action(&self, id: &ActionId) -> Result<Action, ActionError> {
        let query = format!("SELECT {ACTION_COLUMNS} FROM action WHERE id = $1");
        let row: Option<ActionRow> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query).bind(id).fetch_optional(pool).await?
        });
        let row = row.ok_or_else(|| ActionError::NotFound(id.to_string()))?;
        let mut actions = self.with_approvals(vec![row]).await?;
        Ok(actions.remove(0))
    }

    /// A service's default pace; none for a service no longer registered.
    pub(crate) fn service_pace(&self, service: &ServiceName) -> Pace {
        self.fleet
            .service(service)
            .map(|c| c.pace())
            .unwrap_or_default()
    }

    /// The actions of `rows`, in their order, with their approvals: read in one query for
    /// all of them, not one a row (a list of 500 took 501 queries).
    async fn with_approvals(&self, rows: Vec<ActionRow>) -> Result<Vec<Action>, ActionError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // At most 500 rows: well inside both databases' limits on parameters.
        let placeholders: Vec<String> = (1..=rows.len()).map(|n| format!("${n}")).collect();
        let query = format!(
            "SELECT action_id, approver, approver_name, digest, at FROM action_approval
             WHERE action_id IN ({}) ORDER BY at, approver",
            placeholders.join(", ")
        );
        let approvals: Vec<(ActionId, PersonKey, String, Digest, DateTime<Utc>)> =
            on_pool!(self.store.pool, |pool| {
                let mut q = sqlx::query_as(&query);
                for row in &rows {
                    q = q.bind(&row.id);
                }
                q.fetch_all(pool).await?
            });
        let mut of_action: HashMap<ActionId, Vec<Approval>> = HashMap::new();
        for (action_id, approver, approver_name, digest, at) in approvals {
            of_action.entry(action_id).or_default().push(Approval {
                approver,
                approver_name,
                digest,
                at,
            });
        }
        rows.into_iter()
            .map(|row| {
                let approvals = of_action.remove(&row.id).unwrap_or_default();
                let pace = self.service_pace(&row.service);
                row.into_action(approvals, pace)
            })
            .collect()
    }

    /// Actions, newest first, as `filter` selects them; at most `limit`.
    pub async fn actions(
        &self,
        filter: ActionFilter<'_>,
        limit: u32,
    ) -> Result<Vec<Action>, ActionError> {
        let (condition, binds): (&str, Vec<String>) = match filter {
            ActionFilter::All => ("1 = 1", vec![]),
            ActionFilter::RequestedBy(person) => ("requester = $2", vec![person.to_string()]),
            ActionFilter::AwaitingApprovalBy(person) => (
                "state = $3 AND requester <> $2 AND NOT EXISTS
                   (SELECT 1 FROM action_approval p WHERE p.action_id = action.id AND p.approver = $2)",
                vec![
                    person.to_string(),
                    ActionState::AwaitingApproval.as_str().to_owned(),
                ],
            ),
            ActionFilter::InState(state) => ("state = $2", vec![state.as_str().to_owned()]),
        };
        let query = format!(
            "SELECT {ACTION_COLUMNS} FROM action WHERE $1 = $1 AND {condition}
             ORDER BY created_at DESC, id LIMIT {}",
            limit.min(500)
        );
        let rows: Vec<ActionRow> = on_pool!(self.store.pool, |pool| {
            let mut q = sqlx::query_as(&query).bind(1_i64);
            for bind in &binds {
                q = q.bind(bind);
            }
            q.fetch_all(pool).await?
        });
        self.with_approvals(rows).await
    }

    /// A page of an action's entities in the order they were named, after `after` (a
    /// position; `None` from the start), only those in `state` if given: each as the preview
    /// found it, what its dry run said, and where its call stands.
    pub async fn action_entities(
        &self,
        action: &Action,
        page: &EntityPage,
    ) -> Result<Vec<EntityResult>, ActionError> {
        let id = action.id.as_str();
        #[derive(sqlx::FromRow)]
        struct Row {
            entity_id: String,
            position: i32,
            found: Option<String>,
            held_amount: Option<String>,
            held_currency: Option<String>,
            chunk: i32,
            state: String,
            attempts: i32,
            updated_at: DateTime<Utc>,
        }
        let state_condition = if page.state.is_some() {
            "AND state = $4"
        } else {
            "AND $4 = $4"
        };
        let query = format!(
            "SELECT entity_id, position, found, held_amount, held_currency, chunk, state, attempts, updated_at
             FROM action_entity WHERE action_id = $1 AND position > $2 {state_condition}
             ORDER BY position LIMIT $3"
        );
        let rows: Vec<Row> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query)
                .bind(id)
                .bind(
                    page.after
                        .map_or(-1, |p| i32::try_from(p).unwrap_or(i32::MAX)),
                )
                .bind(i64::from(page.limit.clamp(1, MAX_ENTITY_PAGE + 1)))
                .bind(page.state.map_or("", |s| s.as_str()))
                .fetch_all(pool)
                .await?
        });
        let mut chunks: Vec<i32> = rows.iter().map(|r| r.chunk).collect();
        chunks.dedup();
        let mut calls = HashMap::with_capacity(chunks.len());
        for chunk in chunks {
            let (planned, outcome, members): (Option<String>, Option<String>, i32) = on_pool!(
                self.store.pool,
                |pool| {
                    sqlx::query_as(
                        "SELECT planned, outcome, members FROM action_chunk WHERE action_id = $1 AND chunk = $2",
                    )
                    .bind(id)
                    .bind(chunk)
                    .fetch_optional(pool)
                    .await?
                    .unwrap_or_default()
                }
            );
            let planned: Vec<Effect> = planned
                .map(|p| serde_json::from_str(&p).map_err(corrupt))
                .transpose()?
                .unwrap_or_default();
            calls.insert(
                chunk,
                (planned, outcome.map(|o| read_outcome(&o)), members == 1),
            );
        }
        // Only a runbook's calls name single entities by step: an action of one mutation
        // has none to read, and its page (read by every viewer, every 2 s) asks for none.
        let mut steps = if action.is_runbook() {
            let entities: Vec<&str> = rows.iter().map(|r| r.entity_id.as_str()).collect();
            self.entity_steps(id, &entities).await?
        } else {
            HashMap::new()
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let (planned, outcome, sole) = &calls[&row.chunk];
                let state = EntityState::parse(&row.state).unwrap_or(EntityState::Failed);
                let detail = match outcome {
                    _ if state == EntityState::Pending => None,
                    Some(ChunkOutcome::Applied(effects)) => Some(
                        descriptions(effects, &row.entity_id, *sole)
                            .unwrap_or_else(|| "done; the service listed no effect on it".into()),
                    ),
                    Some(ChunkOutcome::Failed(why) | ChunkOutcome::Split(why)) => Some(why.clone()),
                    None => None,
                };
                EntityResult {
                    planned: planned
                        .iter()
                        .filter(|e| *sole || e.entity_id == row.entity_id)
                        .map(|e| e.description.clone())
                        .collect(),
                    held: held_money(row.held_amount, row.held_currency),
                    position: u64::try_from(row.position).unwrap_or(0),
                    chunk: u32::try_from(row.chunk).unwrap_or(0),
                    found: row.found,
                    state,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    steps: steps.remove(&row.entity_id).unwrap_or_default(),
                    entity_id: row.entity_id,
                    detail,
                    updated_at: row.updated_at,
                }
            })
            .collect())
    }

    /// Each of a runbook's `entities`' steps in order, by entity.
    async fn entity_steps(
        &self,
        id: &str,
        entities: &[&str],
    ) -> Result<HashMap<String, Vec<EntityStep>>, ActionError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            entity_id: String,
            step: i32,
            chunk: i32,
            state: String,
            planned: Option<String>,
            outcome: Option<String>,
            variables: Option<String>,
            attempts: i32,
        }
        if entities.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<Row> = on_pool!(self.store.pool, |pool| {
            let mut query = sqlx::QueryBuilder::new(
                "SELECT entity_id, step, chunk, state, planned, outcome, variables, attempts
                 FROM action_chunk WHERE action_id = ",
            );
            query.push_bind(id).push(" AND entity_id IN (");
            let mut list = query.separated(", ");
            for entity in entities {
                list.push_bind(*entity);
            }
            query.push(") ORDER BY entity_id, step");
            query.build_query_as().fetch_all(pool).await?
        });
        let mut steps: HashMap<String, Vec<EntityStep>> = HashMap::new();
        for row in rows {
            let state = StepState::parse(&row.state).unwrap_or(StepState::Failed);
            let planned: Vec<Effect> = row
                .planned
                .map(|p| serde_json::from_str(&p).map_err(corrupt))
                .transpose()?
                .unwrap_or_default();
            let detail = match row.outcome.as_deref().map(read_outcome) {
                _ if state == StepState::Pending => None,
                Some(ChunkOutcome::Applied(effects)) => Some(
                    descriptions(&effects, &row.entity_id, true)
                        .unwrap_or_else(|| "done; the service listed no effect on it".into()),
                ),
                Some(ChunkOutcome::Failed(why) | ChunkOutcome::Split(why)) => Some(why),
                None => None,
            };
            steps.entry(row.entity_id).or_default().push(EntityStep {
                step: u32::try_from(row.step).unwrap_or(0),
                chunk: u32::try_from(row.chunk).unwrap_or(0),
                state,
                planned: planned.into_iter().map(|e| e.description).collect(),
                variables: row
                    .variables
                    .map(|v| serde_json::from_str(&v).map_err(corrupt))
                    .transpose()?
                    .unwrap_or(serde_json::Value::Null),
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                detail,
            });
        }
        Ok(steps)
    }

    /// The actions that named this entity of this service, newest first.
    pub async fn actions_on_entity(
        &self,
        service: &str,
        entity: &str,
    ) -> Result<Vec<Action>, ActionError> {
        let query = format!(
            "SELECT {ACTION_COLUMNS} FROM action
             WHERE service = $1 AND id IN (SELECT action_id FROM action_entity WHERE entity_id = $2)
             ORDER BY created_at DESC LIMIT 50"
        );
        let rows: Vec<ActionRow> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query)
                .bind(service)
                .bind(entity)
                .fetch_all(pool)
                .await?
        });
        self.with_approvals(rows).await
    }
}
