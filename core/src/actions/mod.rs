//! Corrective actions (SPEC.md, "Actions: preview, approval, execution"): asked for by an
//! operator, previewed with the service's own dry run, approved by other engineers bound
//! to that exact preview, and executed once by [`crate::execution`]. Every step commits
//! together with its audit entry.
//!
//! - this file: asking for an action and building its preview;
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

use futures_util::StreamExt;
use runboard_model::{
    Action, ActionId, ActionSpec, DryRun, Effect, Preview, Role, ServiceName, User,
};
use serde_json::{Value, json};

pub use catalog::{Catalog, Catalogs};
pub(crate) use lifecycle::{NewPreview, Transition};
pub use preview::MAX_ENTITIES;
pub(crate) use preview::{
    Digester, DryRunCall, DryRunCalls, EffectTally, EntityReader, Found, dry_run_each, effects_of,
    keep_first, resolve_entities, sorted, stream_dry_run, variables,
};
pub use request::ActionRequest;
pub use request_key::RequestKey;
pub use rows::{ActionFilter, EntityPage, MAX_ENTITY_PAGE};
pub(crate) use rows::{ChunkOutcome, held_money, read_pace};
pub use selection::Selection;
pub(crate) use store::{ChunkClose, ChunkHalf, Fence, NewAction};

use crate::App;
use crate::audit::{Actor, NewAuditEntry};
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

/// Chunks of the dry run answered ahead of the store's writes.
const CHUNKS_AHEAD: usize = 16;

/// Chunks whose entities a preview reads from the service's database at a time: a window,
/// so that a million entities' states are never in memory at once.
const READ_WINDOW: usize = 16;

/// A new action before its preview is written.
struct Draft<'a> {
    /// When the dry run began: its time is measured from then.
    started: std::time::Instant,
    id: &'a ActionId,
    /// The service's connector, whose settings say how many approvals the action needs.
    connector: &'a Connector,
    user: &'a User,
    request: &'a ActionRequest,
    dry_run_offered: bool,
    /// The summary so far; the entity count, the dry run's totals and the money are filled in as it is written.
    preview: Preview,
}

/// Where a preview's writing spent its time.
#[derive(Default)]
struct PreviewTimes {
    /// Waiting for the entities' states from the service's database.
    reading: Stopwatch,
    /// Waiting for the service's dry run to answer.
    dry_run: Stopwatch,
    /// Writing chunks into Runboard's store.
    writing: Stopwatch,
}

/// Time spent awaiting, summed.
#[derive(Default)]
struct Stopwatch(std::time::Duration);

impl Stopwatch {
    async fn time<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let began = std::time::Instant::now();
        let done = work.await;
        self.0 += began.elapsed();
        done
    }
}

/// A chunk's dry-run effects counted into `tally`, and as the store keeps them.
fn as_planned(tally: &mut EffectTally, effects: &[Effect]) -> Result<String, ActionError> {
    for effect in effects {
        tally.add(effect)?;
    }
    Ok(serde_json::to_string(effects).expect("effects serialize"))
}

/// `items` as the preview's calls carry them: the canary, then calls that double up to the
/// chunk size.
fn in_calls<'a, T>(items: &'a [T], preview: &Preview) -> Vec<&'a [T]> {
    let mut rest = items;
    runboard_model::call_sizes(items.len() as u64, preview.canary, preview.chunk_size)
        .map(|size| {
            let (call, after) = rest.split_at(size as usize);
            rest = after;
            call
        })
        .collect()
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
    /// The service's database, its dry run and the store's writes overlap: the entities are
    /// read while the dry run's calls go out, and each chunk is written as its dry run
    /// answers, in one transaction that commits once every chunk is in. Its reads use the
    /// connections kept for Runboard's own work, so a crowd of viewers cannot starve it.
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
        let started = std::time::Instant::now();
        let connector = self.action_connector(&request.service)?;
        let spec = self.action_spec(&connector, &request.mutation).await?;
        let (selected, known) = match &request.selection {
            Some(selection) => {
                let selected = self.read_selection(&request.service, selection).await?;
                (Some(selected.ids), selected.states)
            }
            None => (None, None),
        };
        let (entities, rest) = preview::split_arguments(&spec, &request.arguments, selected)?;
        // The selection's states hold for its entities only as it listed them.
        let known = known.filter(|states| states.len() == entities.len());
        let selected_in = started.elapsed();
        let dry_run_started = std::time::Instant::now();
        let id = ActionId::from(uuid::Uuid::new_v4().to_string());
        let headers = [
            ("x-runboard-action", id.to_string()),
            ("x-runboard-requester", user.subject.to_string()),
        ];
        let entity_argument = spec.entity_argument().map(|a| a.name.clone());
        let preview = Preview {
            endpoint: connector.mission_control().shown_url(),
            document: preview::document(&spec),
            variables: Value::Object(rest),
            chunk_size: if entity_argument.is_some() {
                self.chunk_size(&connector, &spec.mutation)
            } else {
                1
            },
            entities: 1,
            entity_argument,
            concurrency: self.config.actions.concurrency,
            dry_run: DryRun::NotOffered,
            money: Vec::new(),
            steps: Vec::new(),
            params: Default::default(),
            canary: self.config.actions.canary_entities,
        };
        // The calls' entities, as slices of the one list: a million IDs are held once.
        let calls: Vec<&[String]> = if preview.entity_argument.is_some() {
            in_calls(&entities, &preview)
        } else {
            vec![&[]]
        };
        let (answers, answered) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let dry_run = async {
            if spec.dry_run {
                let dry_run_calls = DryRunCalls {
                    calls: calls.iter().map(|ids| DryRunCall {
                        entities: ids.len(),
                        variables: variables(&preview, ids, true, true),
                    }),
                    entities: entities.len(),
                };
                stream_dry_run(
                    connector.mission_control(),
                    &preview.document,
                    preview.concurrency,
                    dry_run_calls,
                    &headers,
                    self.config.actions.dry_run_time_limit,
                    answers,
                )
                .await?;
            }
            Ok::<_, ActionError>(started.elapsed())
        };
        let write = async {
            let draft = Draft {
                started: dry_run_started,
                id: &id,
                connector: &connector,
                user,
                request,
                dry_run_offered: spec.dry_run,
                preview: preview.clone(),
            };
            self.write_preview(draft, &entities, known.as_deref(), &calls, answered)
                .await
        };
        let (dry_run, write) = tokio::join!(dry_run, write);
        // The dry run's own error first: the writes stop short because of it.
        let dry_run_in = dry_run?;
        let Some(spent) = write? else {
            return Err(ActionError::Service(CallError::Malformed(
                "the service's dry run answered fewer chunks than were asked".into(),
            )));
        };
        // Where a slow preview's time went: the service's reads and dry run, or the store.
        tracing::info!(
            action = %id,
            service = %request.service,
            entities = entities.len(),
            selection_ms = selected_in.as_millis(),
            // Time the store's writes waited for each: the service's database, its dry
            // run, and Runboard's own store.
            waited_for_reads_ms = spent.reading.0.as_millis(),
            waited_for_dry_run_ms = spent.dry_run.0.as_millis(),
            writing_ms = spent.writing.0.as_millis(),
            dry_run_ms = dry_run_in.as_millis(),
            total_ms = started.elapsed().as_millis(),
            "preview built"
        );
        self.action(&id).await
    }

    /// Writes a new action and its chunks (`calls`, consecutive slices of `entities`), each
    /// chunk as its dry run answers on `answered` (in order), its entities read from the
    /// service's database a window at a time (unless the selection's states are `known`).
    /// On PostgreSQL the writes start at once and overlap the dry run; SQLite has one writer
    /// for the whole store, so there they wait for the last answer (kept as the store will
    /// keep it) rather than hold its lock meanwhile.
    /// Commits only with every chunk in; `None` when the answers stopped short (the dry run's
    /// error says why) and nothing was kept, else where the time went.
    async fn write_preview(
        &self,
        draft: Draft<'_>,
        entities: &[String],
        known: Option<&[Arc<str>]>,
        calls: &[&[String]],
        mut answered: tokio::sync::mpsc::Receiver<Vec<Effect>>,
    ) -> Result<Option<PreviewTimes>, ActionError> {
        let Draft {
            started,
            id,
            connector,
            user,
            request,
            dry_run_offered,
            mut preview,
        } = draft;
        let mut tally = EffectTally::default();
        let mut waiting = std::collections::VecDeque::new();
        if self.store.pool.dialect() == runboard_dialect::Dialect::Sqlite {
            while let Some(effects) = answered.recv().await {
                waiting.push_back(as_planned(&mut tally, &effects)?);
            }
        }
        let reader = match preview.entity_argument {
            Some(_) => {
                preview.entities = entities.len() as u64;
                Some(EntityReader::new(connector, known).await?)
            }
            None => None,
        };
        let (now, expires_at) = self.preview_times();
        let mut digester = Digester::new();
        let reason = request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let mut write = self
            .action_store()
            .begin_preview(&store::NewAction {
                id,
                service: &request.service,
                mutation: &request.mutation,
                requester: &user.subject,
                requester_name: &user.name,
                reason,
                entity_count: i64::try_from(preview.entities).unwrap_or(i64::MAX),
                dry_run_offered,
                preview: "",
                digest: "",
                approvals_needed: 0,
                now,
                expires_at,
                request_key: request.idempotency.as_ref().map(RequestKey::key),
                request_digest: request.idempotency.as_ref().map(RequestKey::digest),
            })
            .await?;
        // Each window's entities are read while the one before is written: the service's
        // database and Runboard's store work at once. Boxed, so that the stream is Send for
        // every lifetime a spawned request needs.
        let mut read = 0;
        let mut windows: futures_util::stream::BoxStream<'_, Result<_, ActionError>> =
            futures_util::stream::iter(calls.chunks(READ_WINDOW).map(|window| {
                // The window's calls are consecutive slices of `entities`.
                let position = read;
                let ids = &entities[read..read + window.iter().map(|c| c.len()).sum::<usize>()];
                read += ids.len();
                (window, ids, position)
            }))
            .map(|(window, ids, position)| {
                let reader = reader.as_ref();
                async move {
                    let found = match reader {
                        Some(reader) => reader.read(ids, position).await?,
                        None => vec![Found {
                            id: SINGLE_CALL.to_owned(),
                            state: None,
                            held: None,
                        }],
                    };
                    Ok::<_, ActionError>((window, found))
                }
            })
            .buffered(2)
            .boxed();
        let mut spent = PreviewTimes::default();
        let mut number = 0_u32;
        while let Some(next) = spent.reading.time(windows.next()).await {
            let (window, found) = next?;
            let mut rest = found.as_slice();
            for ids in window {
                // The one call of a mutation that takes no list is one member of its own.
                let size = if reader.is_some() { ids.len() } else { 1 };
                let (members, after) = rest.split_at(size);
                rest = after;
                let planned = match (dry_run_offered, waiting.pop_front()) {
                    (false, _) => None,
                    (true, Some(planned)) => Some(planned),
                    (true, None) => match spent.dry_run.time(answered.recv()).await {
                        Some(effects) => Some(as_planned(&mut tally, &effects)?),
                        None => return Ok(None),
                    },
                };
                digester.chunk(number, members, planned.as_deref());
                spent
                    .writing
                    .time(write.add_chunk(store::NewChunk {
                        number: i32::try_from(number).unwrap_or(i32::MAX),
                        members,
                        planned: planned.as_deref(),
                    }))
                    .await?;
                number += 1;
            }
        }
        // Every chunk's dry run has answered by now. Kept beside the preview, not in it:
        // the digest of the same request on the same data stays the same.
        let dry_run_ms = dry_run_offered
            .then(|| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
        if dry_run_offered {
            (preview.dry_run, preview.money) = tally.finish();
        }
        let approvals_needed = self.approvals_needed(connector, &request.mutation, &preview.money);
        let digest = digester.finish(&preview);
        let audit = NewAuditEntry {
            actor: Actor::Person(&user.subject),
            action_id: Some(id),
            kind: "action.previewed",
            detail: json!({
                "service": request.service,
                "mutation": request.mutation,
                "entities": preview.entities,
                "calls": calls.len(),
                "digest": digest,
                "money": preview.money,
                "dry_run": dry_run_offered,
            }),
        };
        write
            .finish(
                &serde_json::to_string(&preview).expect("a preview serializes"),
                &digest,
                approvals_needed,
                dry_run_ms,
                &audit,
            )
            .await?;
        Ok(Some(spent))
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
