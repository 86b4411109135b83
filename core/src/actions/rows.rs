//! Actions as the store keeps them, and the queries that read them.

use chrono::{DateTime, Utc};
use runboard_model::{Action, ActionProgress, ActionState, Approval, EntityResult, EntityState};

use super::ActionError;
use crate::App;
use crate::db::on_pool;
use crate::store::StoreError;

/// Which actions a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionFilter<'a> {
    All,
    /// Those `subject` asked for.
    RequestedBy(&'a str),
    /// Awaiting approval, asked for by someone else, not yet approved by `subject`.
    AwaitingApprovalBy(&'a str),
    InState(ActionState),
}

#[derive(sqlx::FromRow)]
pub(super) struct ActionRow {
    id: String,
    service: String,
    mutation: String,
    state: String,
    state_detail: Option<String>,
    requester: String,
    requester_name: String,
    reason: Option<String>,
    incident_url: Option<String>,
    preview: String,
    digest: String,
    approvals_needed: i32,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const ACTION_COLUMNS: &str = "id, service, mutation, state, state_detail, requester, \
    requester_name, reason, incident_url, preview, digest, approvals_needed, created_at, \
    expires_at, updated_at";

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> ActionError {
    ActionError::Store(StoreError::corrupt(e))
}

impl ActionRow {
    fn into_action(
        self,
        approvals: Vec<Approval>,
        progress: ActionProgress,
    ) -> Result<Action, ActionError> {
        let state = ActionState::parse(&self.state).ok_or_else(|| {
            ActionError::Store(StoreError::Query(sqlx::Error::Protocol(format!(
                "action {} has the unknown state {:?}",
                self.id, self.state
            ))))
        })?;
        Ok(Action {
            preview: serde_json::from_str(&self.preview).map_err(corrupt)?,
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
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.updated_at,
        })
    }
}

impl App {
    /// One action with its approvals and progress.
    pub async fn action(&self, id: &str) -> Result<Action, ActionError> {
        let query = format!("SELECT {ACTION_COLUMNS} FROM action WHERE id = $1");
        let row: Option<ActionRow> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(&query).bind(id).fetch_optional(pool).await?
        });
        let row = row.ok_or_else(|| ActionError::NotFound(id.to_owned()))?;
        let approvals = self.approvals_of(id).await?;
        let progress = self.progress_of(id).await?;
        row.into_action(approvals, progress)
    }

    async fn approvals_of(&self, id: &str) -> Result<Vec<Approval>, ActionError> {
        let rows: Vec<(String, String, String, DateTime<Utc>)> =
            on_pool!(self.store.pool, |pool| {
                sqlx::query_as(
                    "SELECT approver, approver_name, digest, at FROM action_approval
                 WHERE action_id = $1 ORDER BY at, approver",
                )
                .bind(id)
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(|(approver, approver_name, digest, at)| Approval {
                approver,
                approver_name,
                digest,
                at,
            })
            .collect())
    }

    async fn progress_of(&self, id: &str) -> Result<ActionProgress, ActionError> {
        let rows: Vec<(String, i64)> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(
                "SELECT state, COUNT(*) FROM action_entity WHERE action_id = $1 GROUP BY state",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        let mut progress = ActionProgress::default();
        for (state, count) in rows {
            let count = u64::try_from(count).unwrap_or(0);
            match EntityState::parse(&state) {
                Some(EntityState::Pending) => progress.pending = count,
                Some(EntityState::Succeeded) => progress.succeeded = count,
                _ => progress.failed += count,
            }
        }
        Ok(progress)
    }

    /// Actions, newest first, as `filter` selects them; at most `limit`.
    pub async fn actions(
        &self,
        filter: ActionFilter<'_>,
        limit: u32,
    ) -> Result<Vec<Action>, ActionError> {
        let (condition, binds): (&str, Vec<String>) = match filter {
            ActionFilter::All => ("1 = 1", vec![]),
            ActionFilter::RequestedBy(subject) => ("requester = $2", vec![subject.to_owned()]),
            ActionFilter::AwaitingApprovalBy(subject) => (
                "state = $3 AND requester <> $2 AND NOT EXISTS
                   (SELECT 1 FROM action_approval p WHERE p.action_id = action.id AND p.approver = $2)",
                vec![
                    subject.to_owned(),
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
        let mut actions = Vec::with_capacity(rows.len());
        for row in rows {
            let approvals = self.approvals_of(&row.id).await?;
            let progress = self.progress_of(&row.id).await?;
            actions.push(row.into_action(approvals, progress)?);
        }
        Ok(actions)
    }

    /// The per-entity results of an action, in the order the entities were named.
    pub async fn action_entities(&self, id: &str) -> Result<Vec<EntityResult>, ActionError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            entity_id: String,
            state: String,
            attempts: i32,
            detail: Option<String>,
            updated_at: DateTime<Utc>,
        }
        let rows: Vec<Row> = on_pool!(self.store.pool, |pool| {
            sqlx::query_as(
                "SELECT entity_id, state, attempts, detail, updated_at FROM action_entity
                     WHERE action_id = $1 ORDER BY position",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| EntityResult {
                state: EntityState::parse(&row.state).unwrap_or(EntityState::Failed),
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                entity_id: row.entity_id,
                detail: row.detail,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// The actions that named this entity of this service, newest first.
    pub async fn actions_on_entity(
        &self,
        service: &str,
        entity: &str,
    ) -> Result<Vec<Action>, ActionError> {
        let ids: Vec<String> = on_pool!(self.store.pool, |pool| {
            sqlx::query_scalar(
                "SELECT action.id FROM action
                 JOIN action_entity ON action_entity.action_id = action.id
                 WHERE action.service = $1 AND action_entity.entity_id = $2
                 ORDER BY action.created_at DESC LIMIT 50",
            )
            .bind(service)
            .bind(entity)
            .fetch_all(pool)
            .await?
        });
        let mut actions = Vec::with_capacity(ids.len());
        for id in ids {
            actions.push(self.action(&id).await?);
        }
        Ok(actions)
    }
}
