//! Corrective actions (SPEC.md, "Actions: preview, approval, execution"): asked for by an
//! operator, previewed with the service's own dry run, approved by other engineers bound
//! to that exact preview, and executed once by [`crate::execution`]. Every step commits
//! together with its audit entry.
//!
//! - this file: asking for an action;
//! - [`preview`]: building its preview, and what a preview is made of;
//! - [`request`]: what an operator asks for;
//! - [`rows`]: actions as the store keeps them, and the queries that read them;
//! - [`store`]: the one owner of the action's data, every statement that writes it;
//! - [`lifecycle`]: the one way an action changes state, and the people's steps;
//! - [`approval`]: who may approve, how many must, and approving (a move of the lifecycle);
//! - [`selection`]: the entities a selection on a screen stands for;
//! - [`runbook`]: several steps per entity, approved as one.

mod approval;
mod catalog;
mod lifecycle;
mod pace;
mod preview;
mod request;
mod request_key;
mod rows;
pub mod runbook;
mod selection;
mod store;

use std::sync::Arc;

use runboard_model::{Action, ActionSpec, Role, ServiceName, User};

pub use catalog::{Catalog, Catalogs};
pub(crate) use lifecycle::{NewPreview, Transition};
pub use preview::MAX_ENTITIES;
pub(crate) use preview::{
    Digester, DryRunCall, DryRunner, EffectTally, Found, effects_of, keep_first, resolve_entities,
    sorted, variables,
};
pub use request::ActionRequest;
pub use request_key::RequestKey;
pub use rows::{ActionFilter, EntityPage, MAX_ENTITY_PAGE};
pub(crate) use rows::{ChunkOutcome, held_money, read_pace};
pub use selection::Selection;
pub(crate) use store::{ChunkClose, ChunkHalf, Fence, NewAction, in_chunk};

use crate::App;
use crate::connector::{Connector, ReadError};
use crate::graphql_client::CallError;
use crate::store::StoreError;

/// What the one row of an action that is a single call, with no list of entities, is
/// called on its page. Only a label: whether an action is a single call is its preview's
/// `entity_argument` being `None`.
pub const SINGLE_CALL: &str = "(single call)";

/// Why a step was refused; the message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no service is registered as \"{0}\"; the overview lists them")]
    UnknownService(ServiceName),
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
    /// The service's dry run did not finish in the time a preview may take.
    #[error("{0}")]
    TooSlow(String),
    #[error("there is no action {0}")]
    NotFound(String),
    #[error("there is no runbook {0}; a service's page lists its runbooks")]
    NoRunbook(String),
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
        ("x-runboard-action", action.id.to_string()),
        ("x-runboard-requester", action.requester.to_string()),
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
    pub(crate) fn action_connector(
        &self,
        service: &ServiceName,
    ) -> Result<Arc<Connector>, ActionError> {
        self.fleet
            .service(service)
            .ok_or_else(|| ActionError::UnknownService(service.clone()))
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

    /// Most entities one call of `mutation` names: `services.chunk_size`, else
    /// `actions.chunk_size`.
    fn chunk_size(&self, connector: &Connector, mutation: &str) -> u32 {
        connector
            .chunk_size_for(mutation)
            .unwrap_or(self.config.actions.chunk_size)
            .max(1)
    }

    /// [`App::create_action`] on a task of its own: a request that times out or hangs up
    /// meanwhile never cuts the preview's store writes half-way, and the action it asked
    /// for is there when the person looks again.
    pub async fn create_action_detached(
        self: std::sync::Arc<Self>,
        user: User,
        request: ActionRequest,
    ) -> Result<Action, ActionError> {
        tokio::spawn(async move { self.create_action(&user, &request).await })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Creates an action and its preview (dry run included); nothing is sent for real.
    ///
    /// The service's database, its dry run and the store's writes overlap: a selection's
    /// pages and the entities' states are read while the dry run's calls go out, and each
    /// chunk is written as its dry run answers, in one transaction that commits once every
    /// chunk is in. Its reads use the connections kept for Runboard's own work, so a crowd of
    /// viewers cannot starve it.
    pub async fn create_action(
        &self,
        user: &User,
        request: &ActionRequest,
    ) -> Result<Action, ActionError> {
        if let Some(pace) = &request.pace {
            pace::checked(pace)?;
        }
        let created =
            crate::connector::with_reserved_connections(self.preview_action(user, request)).await;
        let created = match (created, &request.pace) {
            (Ok(action), Some(pace))
                if action.pace != pace.or(self.service_pace(&action.service)) =>
            {
                self.store_pace(&user.subject, &action.id, pace).await?;
                self.action(&action.id).await
            }
            (created, _) => created,
        };
        match (created, &request.idempotency) {
            // The same request under the same key twice at once: the one written first wins
            // (the store's unique index), and the other answers with its action.
            (Err(ActionError::Store(StoreError::Query(sqlx::Error::Database(e)))), Some(key))
                if e.is_unique_violation() =>
            {
                self.action_of_key(user, key).await?.ok_or_else(|| {
                    ActionError::Conflict(
                        "the same Idempotency-Key was just used for another request; send a new key".into(),
                    )
                })
            }
            (created, _) => created,
        }
    }

    async fn preview_action(
        &self,
        user: &User,
        request: &ActionRequest,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "asking for actions needs the operator role".into(),
            ));
        }
        if let Some(key) = &request.idempotency
            && let Some(made) = self.action_of_key(user, key).await?
        {
            return Ok(made);
        }
        if let Some(id) = &request.runbook {
            let saved = self.runbook(id).await?;
            if saved.service != request.service || !request.steps.is_empty() {
                return Err(ActionError::BadArguments(format!(
                    "runbook {id} is {}'s \"{}\": start it on {0} and give no steps of your own",
                    saved.service, saved.name
                )));
            }
            let started = ActionRequest {
                steps: saved.steps,
                name: Some(saved.name),
                runbook: None,
                ..request.clone()
            };
            return self.preview_runbook(user, &started).await;
        }
        if !request.steps.is_empty() {
            return self.preview_runbook(user, request).await;
        }
        self.preview_mutation(user, request).await
    }

    /// A service's catalog for a form: its actions, or why they cannot be read.
    pub async fn catalog_of(
        &self,
        service: &ServiceName,
        refresh: bool,
    ) -> Result<Catalog, ActionError> {
        let connector = self.action_connector(service)?;
        Ok(self.catalogs.of(&connector, refresh).await)
    }
}
