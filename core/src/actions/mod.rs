//! Corrective actions (SPEC.md, "Actions: preview, approval, execution"): asked for by an
//! operator, previewed with the service's own dry run, approved by other engineers bound
//! to that exact preview, and executed once by [`crate::execution`]. Every step commits
//! together with its audit entry.

mod catalog;
mod preview;

use chrono::{DateTime, Utc};
use runboard_model::{
    Action, ActionProgress, ActionSpec, ActionState, Approval, DryRun, EntityResult, EntityState,
    Preview, Role, User,
};
use serde_json::{Value, json};

pub use catalog::{Catalog, Catalogs};
pub use preview::MAX_ENTITIES;
pub(crate) use preview::{digest, effects_of, resolve_entities, variables};

use crate::App;
use crate::audit::{NewAuditEntry, append_audit};
use crate::connector::{Connector, ReadError};
use crate::db::on_pool;
use crate::mission_control::CallError;
use crate::store::StoreError;

/// The entity id of an action that is one call with no list of entities.
pub const SINGLE_CALL: &str = "(single call)";

/// What an operator asks for.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub service: String,
    pub mutation: String,
    /// One key per argument of the mutation; the list of IDs names the entities.
    pub arguments: Value,
    /// Why it is needed; may be given now or at submission.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Why a step was refused; the message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no service is registered as {0:?}; the overview lists them")]
    UnknownService(String),
    #[error("{service} offers no action {mutation:?}; it offers {offered}")]
    UnknownMutation {
        service: String,
        mutation: String,
        offered: String,
    },
    #[error("{0}")]
    BadArguments(String),
    #[error("the service's database could not be read: {0}")]
    Read(ReadError),
    #[error("the service's mission control failed: {0}")]
    Service(CallError),
    #[error("there is no action {0}")]
    NotFound(String),
    /// Not now: the action is in another state, expired, or its entities are held.
    #[error("{0}")]
    Conflict(String),
    /// Not by this person, whatever the state.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ActionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

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
struct ActionRow {
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

/// The headers that name an action to the service, on every call Runboard makes for it.
pub(crate) fn action_headers(action: &Action) -> Vec<(&'static str, String)> {
    vec![
        ("x-runboard-action", action.id.clone()),
        ("x-runboard-requester", action.requester.clone()),
        (
            "x-runboard-approvers",
            action
                .approvals
                .iter()
                .map(|a| a.approver.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]
}

impl App {
    fn action_connector(&self, service: &str) -> Result<&Connector, ActionError> {
        self.fleet
            .service(service)
            .ok_or_else(|| ActionError::UnknownService(service.to_owned()))
    }

    async fn action_spec(
        &self,
        connector: &Connector,
        mutation: &str,
    ) -> Result<ActionSpec, ActionError> {
        let catalog = self.catalogs.of(connector, false).await;
        let actions = catalog.actions.map_err(ActionError::Service)?;
        actions
            .iter()
            .find(|a| a.mutation == mutation)
            .cloned()
            .ok_or_else(|| ActionError::UnknownMutation {
                service: connector.name().to_string(),
                mutation: mutation.to_owned(),
                offered: actions
                    .iter()
                    .map(|a| a.mutation.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Builds the preview of `mutation` on `entities`: their state, the exact requests,
    /// and the service's dry run of them all.
    pub(crate) async fn build_preview(
        &self,
        connector: &Connector,
        spec: &ActionSpec,
        entities: &[String],
        rest: serde_json::Map<String, Value>,
        headers: &[(&str, String)],
    ) -> Result<Preview, ActionError> {
        let mut preview = Preview {
            endpoint: connector.mission_control().url().to_string(),
            document: preview::document(spec),
            variables: Value::Object(rest),
            entity_argument: spec.entity_argument().map(|a| a.name.clone()),
            entities: resolve_entities(connector, entities).await?,
            concurrency: self.config.actions.concurrency,
            dry_run: DryRun::NotOffered,
            money: Vec::new(),
        };
        if spec.dry_run {
            let data = connector
                .mission_control()
                .request(
                    &preview.document,
                    &variables(&preview, entities, true, true),
                    headers,
                )
                .await
                .map_err(ActionError::Service)?;
            preview.dry_run = DryRun::Effects {
                effects: effects_of(&data, &spec.mutation)?,
            };
        }
        preview.money = preview::money_moved(&preview.dry_run)?;
        Ok(preview)
    }

    /// Approvals `service`'s `mutation` needs, one more for each currency whose amount
    /// moved passes `actions.extra_approval_above`.
    fn approvals_needed(&self, service: &str, mutation: &str, preview: &Preview) -> u32 {
        let base = self
            .config
            .services
            .iter()
            .find(|s| s.name.as_str() == service)
            .and_then(|s| s.approvals.get(mutation).copied())
            .unwrap_or(1);
        let extra = preview
            .money
            .iter()
            .filter(|m| {
                self.config
                    .actions
                    .extra_approval_above
                    .get(&m.currency)
                    .is_some_and(|limit| m.amount > *limit)
            })
            .count();
        base + u32::try_from(extra).unwrap_or(0).min(1)
    }

    /// Creates an action and its preview (dry run included); nothing is sent for real.
    pub async fn create_action(
        &self,
        user: &User,
        request: &ActionRequest,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "asking for actions needs the operator role".into(),
            ));
        }
        let connector = self.action_connector(&request.service)?;
        let spec = self.action_spec(connector, &request.mutation).await?;
        let (entities, rest) = preview::split_arguments(&spec, &request.arguments)?;
        let id = uuid::Uuid::new_v4().to_string();
        let headers = [
            ("x-runboard-action", id.clone()),
            ("x-runboard-requester", user.subject.clone()),
        ];
        let preview = self
            .build_preview(connector, &spec, &entities, rest, &headers)
            .await?;
        let digest = digest(&preview);
        let approvals_needed = self.approvals_needed(&request.service, &request.mutation, &preview);
        let now = crate::audit::now();
        let expires_at = now
            + chrono::Duration::from_std(self.config.actions.preview_ttl)
                .unwrap_or(chrono::Duration::days(1));
        let preview_json = serde_json::to_string(&preview).expect("a preview serializes");
        let entity_ids: Vec<String> = if preview.entity_argument.is_some() {
            entities
        } else {
            vec![SINGLE_CALL.to_owned()]
        };
        let audit = NewAuditEntry {
            actor: &user.subject,
            action_id: Some(&id),
            kind: "action.previewed",
            detail: json!({
                "service": request.service,
                "mutation": request.mutation,
                "entities": entity_ids.len(),
                "digest": digest,
                "money": preview.money,
                "dry_run": !matches!(preview.dry_run, DryRun::NotOffered),
            }),
        };
        on_pool!(self.store.pool, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO action (id, service, mutation, state, requester, requester_name, preview,
                     digest, dry_run_offered, approvals_needed, created_at, expires_at, updated_at, reason)
                 VALUES ($1, $2, $3, 'previewed', $4, $5, $6, $7, $8, $9, $10, $11, $10, $12)",
            )
            .bind(&id)
            .bind(&request.service)
            .bind(&request.mutation)
            .bind(&user.subject)
            .bind(&user.name)
            .bind(&preview_json)
            .bind(&digest)
            .bind(spec.dry_run)
            .bind(i32::try_from(approvals_needed).unwrap_or(i32::MAX))
            .bind(now)
            .bind(expires_at)
            .bind(request.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()))
            .execute(&mut *tx)
            .await?;
            for (position, entity) in entity_ids.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO action_entity (action_id, entity_id, position, state, attempts, updated_at)
                     VALUES ($1, $2, $3, 'pending', 0, $4)",
                )
                .bind(&id)
                .bind(entity)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, &audit);
            tx.commit().await?;
        });
        self.action(&id).await
    }

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
            match state.as_str() {
                "pending" => progress.pending = count,
                "succeeded" => progress.succeeded = count,
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
        let (condition, bind): (&str, Option<String>) = match filter {
            ActionFilter::All => ("1 = 1", None),
            ActionFilter::RequestedBy(subject) => ("requester = $2", Some(subject.to_owned())),
            ActionFilter::AwaitingApprovalBy(subject) => (
                "state = 'awaiting_approval' AND requester <> $2 AND NOT EXISTS
                   (SELECT 1 FROM action_approval p WHERE p.action_id = action.id AND p.approver = $2)",
                Some(subject.to_owned()),
            ),
            ActionFilter::InState(state) => ("state = $2", Some(state.as_str().to_owned())),
        };
        let query = format!(
            "SELECT {ACTION_COLUMNS} FROM action WHERE $1 = $1 AND {condition}
             ORDER BY created_at DESC, id LIMIT {}",
            limit.min(500)
        );
        let rows: Vec<ActionRow> = on_pool!(self.store.pool, |pool| {
            let mut q = sqlx::query_as(&query).bind(1_i64);
            if let Some(bind) = &bind {
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
                state: match row.state.as_str() {
                    "pending" => EntityState::Pending,
                    "succeeded" => EntityState::Succeeded,
                    _ => EntityState::Failed,
                },
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                entity_id: row.entity_id,
                detail: row.detail,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// Moves an action from one of `from` to `to` with its audit entry, in one transaction,
    /// releasing its entities when it ends. Refused when the action is in none of `from`.
    async fn transition(
        &self,
        action: &Action,
        from: &[ActionState],
        to: ActionState,
        detail: Option<&str>,
        audit: NewAuditEntry<'_>,
    ) -> Result<(), ActionError> {
        if !from.contains(&action.state) {
            return Err(ActionError::Conflict(format!(
                "the action is {}, so it cannot become {}",
                action.state.as_str(),
                to.as_str()
            )));
        }
        let now = crate::audit::now();
        let release = to.is_final();
        let changed = on_pool!(self.store.pool, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE action SET state = $1, state_detail = $2, updated_at = $3
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(detail)
            .bind(now)
            .bind(&action.id)
            .bind(action.state.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                if release {
                    sqlx::query("DELETE FROM entity_hold WHERE action_id = $1")
                        .bind(&action.id)
                        .execute(&mut *tx)
                        .await?;
                }
                append_audit!(tx, &audit);
                tx.commit().await?;
            }
            changed
        });
        if changed == 1 {
            Ok(())
        } else {
            Err(ActionError::Conflict(
                "the action changed while you looked at it; reload it".into(),
            ))
        }
    }

    /// Tells the webhook about the action's new state, if that is worth telling; passes it on.
    pub(crate) fn told(&self, action: Result<Action, ActionError>) -> Result<Action, ActionError> {
        if let Ok(action) = &action
            && let Some(event) = crate::notify::event_for(action.state)
        {
            self.notifier.send(event, action);
        }
        action
    }

    /// Marks an action expired if its preview is past its time; true if it did.
    async fn expire_if_due(&self, action: &Action) -> Result<bool, ActionError> {
        if action.expires_at > Utc::now()
            || !matches!(
                action.state,
                ActionState::Previewed | ActionState::AwaitingApproval
            )
        {
            return Ok(false);
        }
        self.transition(
            action,
            &[ActionState::Previewed, ActionState::AwaitingApproval],
            ActionState::Expired,
            Some("its preview expired before it was approved"),
            NewAuditEntry {
                actor: "runboard",
                action_id: Some(&action.id),
                kind: "action.expired",
                detail: json!({ "expires_at": action.expires_at }),
            },
        )
        .await?;
        Ok(true)
    }

    /// Expires every preview past its time; returns how many.
    pub async fn expire_previews(&self) -> Result<usize, ActionError> {
        let due: Vec<String> = on_pool!(self.store.pool, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM action WHERE state IN ('previewed', 'awaiting_approval')
                 AND expires_at <= $1",
            )
            .bind(Utc::now())
            .fetch_all(pool)
            .await?
        });
        let mut expired = 0;
        for id in due {
            let action = self.action(&id).await?;
            if self.expire_if_due(&action).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Sends a previewed action for approval, with the requester's reason (or the one given
    /// when it was asked for); its entities are held from now until it ends, so no other
    /// action acts on them meanwhile.
    pub async fn submit_action(
        &self,
        user: &User,
        id: &str,
        reason: Option<&str>,
        incident_url: Option<&str>,
    ) -> Result<Action, ActionError> {
        let action = self.action(id).await?;
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .or(action.reason.as_deref())
            .unwrap_or_default();
        if action.requester != user.subject {
            return Err(ActionError::Forbidden(format!(
                "only {} (who asked for it) may submit this action",
                action.requester_name
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ActionError::BadArguments(
                "a reason is required: say why this action is needed".into(),
            ));
        }
        let incident_url = incident_url.map(str::trim).filter(|u| !u.is_empty());
        if let Some(url) = incident_url
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(ActionError::BadArguments(format!(
                "the incident link must be an http(s) URL, not {url:?}"
            )));
        }
        if self.expire_if_due(&action).await? {
            return Err(ActionError::Conflict(
                "its preview expired; make a new one".into(),
            ));
        }
        if action.state != ActionState::Previewed {
            return Err(ActionError::Conflict(format!(
                "the action is {}; only a previewed action can be submitted",
                action.state.as_str()
            )));
        }
        let entities: Vec<String> = self
            .action_entities(id)
            .await?
            .into_iter()
            .map(|e| e.entity_id)
            .filter(|e| e != SINGLE_CALL)
            .collect();
        let held = self.held_entity(&action.service, &entities).await?;
        if let Some((entity, other)) = held {
            return Err(ActionError::Conflict(format!(
                "{entity} is already in action {other}, which has not ended; wait for it or cancel it"
            )));
        }
        let now = crate::audit::now();
        let audit = NewAuditEntry {
            actor: &user.subject,
            action_id: Some(id),
            kind: "action.submitted",
            detail: json!({ "reason": reason, "incident_url": incident_url, "digest": action.digest }),
        };
        let outcome: Result<u64, sqlx::Error> = on_pool!(self.store.pool, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE action SET state = 'awaiting_approval', reason = $1, incident_url = $2,
                         updated_at = $3
                     WHERE id = $4 AND state = 'previewed'",
                )
                .bind(reason)
                .bind(incident_url)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 1 {
                    for entity in &entities {
                        sqlx::query(
                            "INSERT INTO entity_hold (service, entity_id, action_id) VALUES ($1, $2, $3)",
                        )
                        .bind(&action.service)
                        .bind(entity)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    append_audit!(tx, &audit);
                    tx.commit().await?;
                }
                Ok(changed)
            }
            .await
        });
        match outcome {
            Ok(1) => self.told(self.action(id).await),
            Ok(_) => Err(ActionError::Conflict(
                "the action changed while you submitted it; reload it".into(),
            )),
            // Another submission took one of the entities between the check and the insert.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ActionError::Conflict(
                "another action took some of these entities just now; reload and look".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The first of `entities` another live action holds, and that action.
    async fn held_entity(
        &self,
        service: &str,
        entities: &[String],
    ) -> Result<Option<(String, String)>, ActionError> {
        for chunk in entities.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let query = format!(
                "SELECT entity_id, action_id FROM entity_hold WHERE service = $1 AND entity_id IN ({}) LIMIT 1",
                placeholders.join(", ")
            );
            let held: Option<(String, String)> = on_pool!(self.store.pool, |pool| {
                let mut q = sqlx::query_as(&query).bind(service);
                for entity in chunk {
                    q = q.bind(entity);
                }
                q.fetch_optional(pool).await?
            });
            if held.is_some() {
                return Ok(held);
            }
        }
        Ok(None)
    }

    /// Approves the preview with this digest. Approvers need the approver role, may not
    /// approve their own request, and count once each.
    pub async fn approve_action(
        &self,
        user: &User,
        id: &str,
        digest: &str,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(
                "approving needs the approver role".into(),
            ));
        }
        let action = self.action(id).await?;
        if action.requester == user.subject {
            return Err(ActionError::Forbidden(
                "you asked for this action; another approver must approve it".into(),
            ));
        }
        if action.approvals.iter().any(|a| a.approver == user.subject) {
            return Err(ActionError::Conflict(
                "you have already approved this action".into(),
            ));
        }
        if self.expire_if_due(&action).await? {
            return Err(ActionError::Conflict(
                "its preview expired before it was approved; the requester must make a new one"
                    .into(),
            ));
        }
        if action.state != ActionState::AwaitingApproval {
            return Err(ActionError::Conflict(format!(
                "the action is {}; only an action awaiting approval can be approved",
                action.state.as_str()
            )));
        }
        if digest != action.digest {
            return Err(ActionError::Conflict(
                "the preview you approved is not the action's current preview; read it again and approve what it now says".into(),
            ));
        }
        let approved = action.approvals.len() + 1 >= action.approvals_needed as usize;
        let now = crate::audit::now();
        let audit = NewAuditEntry {
            actor: &user.subject,
            action_id: Some(id),
            kind: "action.approved",
            detail: json!({ "digest": digest, "approvals": action.approvals.len() + 1,
                            "needed": action.approvals_needed }),
        };
        let outcome: Result<u64, sqlx::Error> = on_pool!(self.store.pool, |pool| {
            async {
                let mut tx = pool.begin().await?;
                // The digest is checked again in the update: a new preview since voids this approval.
                let changed = sqlx::query(
                    "UPDATE action SET state = $1, updated_at = $2
                     WHERE id = $3 AND state = 'awaiting_approval' AND digest = $4",
                )
                .bind(if approved { "approved" } else { "awaiting_approval" })
                .bind(now)
                .bind(id)
                .bind(digest)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 1 {
                    sqlx::query(
                        "INSERT INTO action_approval (action_id, approver, approver_name, digest, at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(&user.subject)
                    .bind(&user.name)
                    .bind(digest)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    append_audit!(tx, &audit);
                    tx.commit().await?;
                }
                Ok(changed)
            }
            .await
        });
        match outcome {
            Ok(1) if approved => self.told(self.action(id).await),
            Ok(1) => self.action(id).await,
            Ok(_) => Err(ActionError::Conflict(
                "the action changed while you approved it; read it again".into(),
            )),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ActionError::Conflict(
                "you have already approved this action".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Rejects an action awaiting approval, with the approver's reason.
    pub async fn reject_action(
        &self,
        user: &User,
        id: &str,
        reason: &str,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(
                "rejecting needs the approver role".into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ActionError::BadArguments("say why you reject it".into()));
        }
        let action = self.action(id).await?;
        self.transition(
            &action,
            &[ActionState::AwaitingApproval],
            ActionState::Rejected,
            Some(reason),
            NewAuditEntry {
                actor: &user.subject,
                action_id: Some(id),
                kind: "action.rejected",
                detail: json!({ "reason": reason }),
            },
        )
        .await?;
        self.action(id).await
    }

    /// Cancels an action that has not ended; an executing one stops before its next call.
    pub async fn cancel_action(&self, user: &User, id: &str) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "cancelling needs the operator role".into(),
            ));
        }
        let action = self.action(id).await?;
        self.transition(
            &action,
            &[
                ActionState::Previewed,
                ActionState::AwaitingApproval,
                ActionState::Approved,
                ActionState::Executing,
                ActionState::Paused,
            ],
            ActionState::Cancelled,
            Some(&format!("cancelled by {}", user.name)),
            NewAuditEntry {
                actor: &user.subject,
                action_id: Some(id),
                kind: "action.cancelled",
                detail: json!({ "progress": action.progress }),
            },
        )
        .await?;
        self.action(id).await
    }

    /// Resumes a paused action where it stopped.
    pub async fn resume_action(&self, user: &User, id: &str) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "resuming needs the operator role".into(),
            ));
        }
        let action = self.action(id).await?;
        self.transition(
            &action,
            &[ActionState::Paused],
            ActionState::Executing,
            None,
            NewAuditEntry {
                actor: &user.subject,
                action_id: Some(id),
                kind: "action.resumed",
                detail: json!({ "progress": action.progress }),
            },
        )
        .await?;
        self.action(id).await
    }
}

/// Entities picked on a screen rather than pasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every failed saga with this error message: the whole group, not a page of it.
    ErrorGroup(String),
    /// Every failed item of this batch.
    FailedBatchItems(String),
}

impl App {
    /// The IDs a selection stands for, read page by page up to [`MAX_ENTITIES`].
    pub async fn selected_entities(
        &self,
        service: &str,
        selection: &Selection,
    ) -> Result<Vec<String>, ActionError> {
        let connector = self.action_connector(service)?;
        let mut ids = Vec::new();
        match selection {
            Selection::ErrorGroup(error) => {
                let mut filter = crate::connector::SagaFilter {
                    status: Some(runboard_model::SagaStatus::Failed),
                    error_message: Some(error.clone()),
                    oldest_first: true,
                    limit: crate::connector::MAX_PAGE,
                    ..Default::default()
                };
                loop {
                    let page = connector
                        .sagas(&filter, Utc::now())
                        .await
                        .map_err(ActionError::Read)?;
                    ids.extend(page.sagas.into_iter().map(|s| s.saga_id));
                    match page.next {
                        Some(next) if ids.len() < MAX_ENTITIES => {
                            filter.after = Some(next.parse().map_err(ActionError::BadArguments)?);
                        }
                        _ => break,
                    }
                }
            }
            Selection::FailedBatchItems(batch) => {
                let mut after: Option<String> = None;
                loop {
                    let page = connector
                        .batch_items(
                            batch,
                            Some(runboard_model::BatchItemStatus::Failed),
                            after.as_deref(),
                            crate::connector::MAX_PAGE,
                        )
                        .await
                        .map_err(ActionError::Read)?;
                    ids.extend(page.items.into_iter().map(|i| i.item_id));
                    match page.next {
                        Some(next) if ids.len() < MAX_ENTITIES => after = Some(next),
                        _ => break,
                    }
                }
            }
        }
        ids.truncate(MAX_ENTITIES);
        Ok(ids)
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

    /// A service's catalog for a form: its actions, or why they cannot be read.
    pub async fn catalog_of(&self, service: &str, refresh: bool) -> Result<Catalog, ActionError> {
        let connector = self.action_connector(service)?;
        Ok(self.catalogs.of(connector, refresh).await)
    }
}
