//! Corrective actions (SPEC.md, "Actions: preview, approval, execution"): asked for by an
//! operator, previewed with the service's own dry run, approved by other engineers bound
//! to that exact preview, and executed once by [`crate::execution`]. Every step commits
//! together with its audit entry.
//!
//! - this file: asking for an action and building its preview;
//! - [`rows`]: actions as the store keeps them, and the queries that read them;
//! - [`lifecycle`]: the one way an action changes state, and the people's steps;
//! - [`approval`]: who may approve, how many must, and recording an approval;
//! - [`selection`]: the entities a selection on a screen stands for.

mod approval;
mod catalog;
mod lifecycle;
mod preview;
mod rows;
mod selection;

use runboard_model::{Action, ActionSpec, ActionState, DryRun, EntityState, Preview, Role, User};
use serde_json::{Value, json};

pub use catalog::{Catalog, Catalogs};
pub(crate) use lifecycle::{NewPreview, Transition};
pub use preview::MAX_ENTITIES;
pub(crate) use preview::{digest, effects_of, money_moved, resolve_entities, variables};
pub use rows::ActionFilter;
pub use selection::Selection;

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
    /// The connector of the service an action is for.
    pub(crate) fn action_connector(&self, service: &str) -> Result<&Connector, ActionError> {
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
        let approvals_needed =
            self.approvals_needed(&request.service, &request.mutation, &preview.money);
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
                 VALUES ($1, $2, $3, $13, $4, $5, $6, $7, $8, $9, $10, $11, $10, $12)",
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
            .bind(ActionState::Previewed.as_str())
            .execute(&mut *tx)
            .await?;
            for (position, entity) in entity_ids.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO action_entity (action_id, entity_id, position, state, attempts, updated_at)
                     VALUES ($1, $2, $3, $5, 0, $4)",
                )
                .bind(&id)
                .bind(entity)
                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                .bind(now)
                .bind(EntityState::Pending.as_str())
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, &audit);
            tx.commit().await?;
        });
        self.action(&id).await
    }

    /// A service's catalog for a form: its actions, or why they cannot be read.
    pub async fn catalog_of(&self, service: &str, refresh: bool) -> Result<Catalog, ActionError> {
        let connector = self.action_connector(service)?;
        Ok(self.catalogs.of(connector, refresh).await)
    }
}
