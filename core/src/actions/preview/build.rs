//! Building a mutation's preview: the entities cut into calls as they are read (a pasted
//! list, or a selection's pages), each call's dry run, and each chunk written as its dry run
//! answers, the three at once.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use runboard_model::{Action, ActionId, Effect, Preview, User};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    CallCutter, Digester, DryRunCall, DryRunner, EffectTally, EntityReader, Found, PlannedCall,
    split_arguments, variables,
};
use crate::App;
use crate::actions::selection::SelectedPage;
use crate::actions::store::{self, NewAction, PreviewWrite};
use crate::actions::{ActionError, ActionRequest, RequestKey, SINGLE_CALL, Selection};
use crate::audit::{Actor, NewAuditEntry};
use crate::connector::Connector;
use crate::graphql_client::CallError;

/// Calls cut ahead of the dry run, and chunks of the dry run answered ahead of the store's
/// writes.
const CALLS_AHEAD: usize = 16;

/// Chunks whose entities a preview reads from the service's database at a time: a window,
/// so that a million entities' states are never in memory at once.
const READ_WINDOW: usize = 16;

/// Where a preview's entities come from.
enum Source<'a> {
    /// The list argument's IDs, each once.
    Pasted(Vec<String>),
    Selection(&'a Selection),
    /// A mutation that takes no list: one call, one member of its own.
    SingleCall,
}

/// A chunk to write: its call and, when the service offers a dry run, its effects as the
/// store keeps them.
type Answered = (PlannedCall, Option<String>);

impl App {
    /// Creates a mutation's action and its preview. The entities are cut into calls as they
    /// are read, each call's dry run goes out as it is cut, and each chunk is written as its
    /// dry run answers, in one transaction that commits only once the entities were read
    /// whole and every call answered.
    pub(in crate::actions) async fn preview_mutation(
        &self,
        user: &User,
        request: &ActionRequest,
    ) -> Result<Action, ActionError> {
        let started = Instant::now();
        let connector = self.action_connector(&request.service)?;
        let spec = self.action_spec(&connector, &request.mutation).await?;
        let (pasted, rest) =
            split_arguments(&spec, &request.arguments, request.selection.is_some())?;
        let id = ActionId::from(uuid::Uuid::new_v4().to_string());
        let headers = [
            ("x-runboard-action", id.to_string()),
            ("x-runboard-requester", user.subject.to_string()),
        ];
        let entity_argument = spec.entity_argument().map(|a| a.name.clone());
        let source = match (&request.selection, &entity_argument) {
            (Some(selection), _) => Source::Selection(selection),
            (None, Some(_)) => Source::Pasted(pasted),
            (None, None) => Source::SingleCall,
        };
        let preview = Preview {
            endpoint: connector.mission_control().shown_url(),
            document: super::document(&spec),
            variables: Value::Object(rest),
            chunk_size: if entity_argument.is_some() {
                self.chunk_size(&connector, &spec.mutation)
            } else {
                1
            },
            entities: 1,
            entity_argument,
            concurrency: self.config.actions.concurrency,
            dry_run: runboard_model::DryRun::NotOffered,
            money: Vec::new(),
            steps: Vec::new(),
            params: Default::default(),
            canary: self.config.actions.canary_entities,
        };
        let expected = match &source {
            Source::Pasted(ids) => Some(ids.len()),
            _ => None,
        };
        let draft = Draft {
            id: &id,
            connector: &connector,
            user,
            request,
            dry_run_offered: spec.dry_run,
            single_call: preview.entity_argument.is_none(),
        };
        let cutter = CallCutter::new(preview.canary, preview.chunk_size, expected);
        let so_far = cutter.so_far.clone();
        let (to_dry_run, dry_run_calls) = mpsc::channel(CALLS_AHEAD);
        let (to_writer, answered) = mpsc::channel(CALLS_AHEAD);
        let calls = Calls {
            preview: &preview,
            to_dry_run: spec.dry_run.then_some(to_dry_run),
            to_writer: to_writer.clone(),
        };
        let cut = async {
            let cut = self
                .cut_calls(&request.service, source, cutter, calls)
                .await;
            Ok::<_, ActionError>((cut?, started.elapsed()))
        };
        let dry_run_started = Instant::now();
        let dry_run = async {
            if spec.dry_run {
                let runner = DryRunner {
                    mission_control: connector.mission_control(),
                    document: &preview.document,
                    concurrency: preview.concurrency,
                    headers: &headers,
                    limit: self.config.actions.dry_run_time_limit,
                };
                runner
                    .stream(received(dry_run_calls), &so_far, to_writer)
                    .await?;
            } else {
                drop(to_writer);
            }
            Ok::<_, ActionError>(dry_run_started.elapsed())
        };
        let write = self.write_chunks(&draft, received(answered));
        let (cut, dry_run, written) = tokio::join!(cut, dry_run, write);
        // The reading's and the dry run's errors first: the writes stop short because of them.
        let (whole, read_in) = cut?;
        let dry_run_in = dry_run?;
        let (written, spent) = written?;
        if !whole {
            return Err(ActionError::Service(CallError::Malformed(
                "the service's dry run answered fewer calls than were asked".into(),
            )));
        }
        if written.chunks == 0 {
            return Err(ActionError::BadArguments(
                "the selection holds no entities now (they may have been fixed meanwhile): nothing to act on".into(),
            ));
        }
        let entities = written.entities;
        self.finish_preview(&draft, preview, written, dry_run_in)
            .await?;
        // Where a slow preview's time went: the service's reads and dry run, or the store.
        tracing::info!(
            action = %id,
            service = %request.service,
            entities,
            // Until the last call was cut: a selection's pages are read at the dry run's pace.
            entities_read_ms = read_in.as_millis(),
            // Time the store's writes waited for the service (its dry run, and its
            // database's states where the selection did not say them), and wrote.
            waited_for_service_ms = spent.waiting.0.as_millis(),
            writing_ms = spent.writing.0.as_millis(),
            dry_run_ms = dry_run_in.as_millis(),
            total_ms = started.elapsed().as_millis(),
            "preview built"
        );
        self.action(&id).await
    }

    /// Cuts the entities of `source` into calls as they are read, sending each to the dry
    /// run and the writer; whether they were read whole (not when those stopped listening,
    /// whose own error then says why).
    async fn cut_calls(
        &self,
        service: &runboard_model::ServiceName,
        source: Source<'_>,
        mut cutter: CallCutter,
        calls: Calls<'_>,
    ) -> Result<bool, ActionError> {
        let mut pages = match source {
            // A pasted list is a selection of one page, whose states are looked up.
            Source::Pasted(ids) => {
                let page: SelectedPage = ids.into_iter().map(|id| (id, None)).collect();
                futures_util::stream::iter([Ok(page)]).boxed()
            }
            Source::Selection(selection) => self.selection_pages(service, selection)?,
            Source::SingleCall => return Ok(calls.send(PlannedCall::default()).await),
        };
        while let Some(page) = pages.next().await {
            for (id, state) in page? {
                if let Some(call) = cutter.add(id, state)?
                    && !calls.send(call).await
                {
                    return Ok(false);
                }
            }
        }
        match cutter.finish() {
            Some(call) => Ok(calls.send(call).await),
            None => Ok(true),
        }
    }

    /// Writes a new action and its chunks, each chunk as its call and dry run come in on
    /// `answered` (in order), its entities' states read from the service's database a window
    /// at a time where the selection did not say them. On PostgreSQL the writes start at once
    /// and overlap the dry run; SQLite has one writer for the whole store, so there they wait
    /// for the last answer (kept as the store will keep it) rather than hold its lock
    /// meanwhile. Nothing is committed: [`App::finish_preview`] does, once all is in. Also
    /// says where the time went.
    async fn write_chunks(
        &self,
        draft: &Draft<'_>,
        answered: impl Stream<Item = (PlannedCall, Vec<Effect>)> + Send,
    ) -> Result<(Written, PreviewTimes), ActionError> {
        let mut tally = EffectTally::default();
        let mut spent = PreviewTimes::default();
        let answered = answered.map(|(call, effects)| {
            let planned = match draft.dry_run_offered {
                true => Some(as_planned(&mut tally, &effects)?),
                false => None,
            };
            Ok::<_, ActionError>((call, planned))
        });
        let answered: futures_util::stream::BoxStream<'_, Result<Answered, ActionError>> =
            if self.store.pool.dialect() == runboard_dialect::Dialect::Sqlite {
                let all: Vec<_> = spent.waiting.time(answered.collect()).await;
                futures_util::stream::iter(all).boxed()
            } else {
                answered.boxed()
            };
        let reader = match draft.single_call {
            false => Some(EntityReader::new(draft.connector).await?),
            true => None,
        };
        let (now, expires_at) = self.preview_times();
        let reason = draft
            .request
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let mut write = self
            .action_store()
            .begin_preview(&NewAction {
                id: draft.id,
                service: &draft.request.service,
                mutation: &draft.request.mutation,
                requester: &draft.user.subject,
                requester_name: &draft.user.name,
                reason,
                entity_count: 0,
                dry_run_offered: draft.dry_run_offered,
                preview: "",
                digest: "",
                approvals_needed: 0,
                now,
                expires_at,
                request_key: draft.request.idempotency.as_ref().map(RequestKey::key),
                request_digest: draft.request.idempotency.as_ref().map(RequestKey::digest),
            })
            .await?;
        // Each window's entities are read while the one before is written: the service's
        // database and Runboard's store work at once. Boxed, so that the stream is Send for
        // every lifetime a spawned request needs.
        let mut windows: futures_util::stream::BoxStream<'_, Result<_, ActionError>> = answered
            .chunks(READ_WINDOW)
            .map(|window| {
                let reader = reader.as_ref();
                async move {
                    let window = window.into_iter().collect::<Result<Vec<Answered>, _>>()?;
                    let found = match reader {
                        Some(reader) => reader.read_calls(window.iter().map(|(c, _)| c)).await?,
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
        let mut digester = Digester::new();
        let (mut chunks, mut entities) = (0_u32, 0_u64);
        while let Some(next) = spent.waiting.time(windows.next()).await {
            let (window, found) = next?;
            let mut rest = found.as_slice();
            for (call, planned) in window {
                // The one call of a mutation that takes no list is one member of its own.
                let size = if reader.is_some() { call.ids.len() } else { 1 };
                let (members, after) = rest.split_at(size);
                rest = after;
                digester.chunk(chunks, members, planned.as_deref());
                spent
                    .writing
                    .time(write.add_chunk(store::NewChunk {
                        number: i32::try_from(chunks).unwrap_or(i32::MAX),
                        members,
                        planned: planned.as_deref(),
                    }))
                    .await?;
                chunks += 1;
                entities += size as u64;
            }
        }
        drop(windows);
        let written = Written {
            write,
            digester,
            tally,
            chunks,
            entities,
        };
        Ok((written, spent))
    }

    /// Fills in the preview's summary (the entity count, the dry run's totals, the money), its
    /// digest and the approvals it needs, and commits the action with its audit entry.
    async fn finish_preview(
        &self,
        draft: &Draft<'_>,
        mut preview: Preview,
        written: Written,
        dry_run_in: Duration,
    ) -> Result<(), ActionError> {
        let Written {
            write,
            digester,
            tally,
            chunks,
            entities,
        } = written;
        preview.entities = entities;
        // Kept beside the preview, not in it: the digest of the same request on the same data
        // stays the same.
        let dry_run_ms = draft
            .dry_run_offered
            .then(|| i64::try_from(dry_run_in.as_millis()).unwrap_or(i64::MAX));
        if draft.dry_run_offered {
            (preview.dry_run, preview.money) = tally.finish();
        }
        let request = draft.request;
        let approvals_needed =
            self.approvals_needed(draft.connector, &request.mutation, &preview.money);
        let digest = digester.finish(&preview);
        let audit = NewAuditEntry {
            actor: Actor::Person(&draft.user.subject),
            action_id: Some(draft.id),
            kind: "action.previewed",
            detail: json!({
                "service": request.service,
                "mutation": request.mutation,
                "entities": preview.entities,
                "calls": chunks,
                "digest": digest,
                "money": preview.money,
                "dry_run": draft.dry_run_offered,
            }),
        };
        write
            .finish(
                &serde_json::to_string(&preview).expect("a preview serializes"),
                &digest,
                i64::try_from(entities).unwrap_or(i64::MAX),
                approvals_needed,
                dry_run_ms,
                &audit,
            )
            .await
    }
}

/// Where cut calls go: the dry run (if the service offers one), else straight to the writer
/// (with no effects).
struct Calls<'a> {
    preview: &'a Preview,
    to_dry_run: Option<mpsc::Sender<(PlannedCall, DryRunCall)>>,
    to_writer: mpsc::Sender<(PlannedCall, Vec<Effect>)>,
}

impl Calls<'_> {
    /// Whether the call was taken: not when the dry run or the writer stopped.
    async fn send(&self, call: PlannedCall) -> bool {
        match &self.to_dry_run {
            Some(to_dry_run) => {
                let dry_run = DryRunCall {
                    entities: call.ids.len(),
                    variables: variables(self.preview, &call.ids, true, true),
                };
                to_dry_run.send((call, dry_run)).await.is_ok()
            }
            None => self.to_writer.send((call, Vec::new())).await.is_ok(),
        }
    }
}

/// The messages of a channel as a stream.
fn received<T: Send>(receiver: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// A new action before its preview is written.
struct Draft<'a> {
    id: &'a ActionId,
    /// The service's connector, whose settings say how many approvals the action needs.
    connector: &'a Connector,
    user: &'a User,
    request: &'a ActionRequest,
    dry_run_offered: bool,
    /// A mutation that takes no list of IDs: its one call is one member of its own.
    single_call: bool,
}

/// A preview's chunks written, not yet committed.
struct Written {
    write: PreviewWrite,
    digester: Digester,
    tally: EffectTally,
    chunks: u32,
    entities: u64,
}

/// Where a preview's writing spent its time.
#[derive(Default)]
struct PreviewTimes {
    /// Waiting for the service: its dry run, and its database's states.
    waiting: Stopwatch,
    /// Writing chunks into Runboard's store.
    writing: Stopwatch,
}

/// Time spent awaiting, summed.
#[derive(Default)]
struct Stopwatch(Duration);

impl Stopwatch {
    async fn time<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let began = Instant::now();
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
