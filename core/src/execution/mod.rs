//! The execution engine: runs approved actions in chunks of entities, on any number of
//! replicas, through kills, freezes and cancels.
//!
//! Only the replica holding an action's fenced [`Lease`] sends or records its calls; every
//! write the engine makes for an action is conditional on owner and epoch, and a heartbeat
//! keeps the lease without waiting on calls.
//!
//! The chunks and their members were fixed and stored with the preview, so a chunk's
//! idempotency key always names the same entities. Before each call leaves, the chunk is
//! marked sent under the lease's epoch, in a statement that also checks that the action is
//! still executing and the lease still this replica's: a cancelled action, or a replica that
//! lost its lease, sends nothing more. Each result is written as its call returns, with the
//! action's counters, in one transaction. An action taken over resends only pending chunks;
//! one marked sent may have been applied already, and goes again with the same idempotency
//! key, so the service applies it once. A chunk the service refuses as a whole is split in
//! two new chunks until the entity it objects to is alone.
//!
//! Every start (approved, resumed, taken over after a crash) first runs the dry run again
//! for the chunks never sent and compares it with what the approvers saw. A difference
//! sends the action back for approval with the entities, money and approvals needed
//! recomputed; a dry run that fails pauses it.

mod lease;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use runboard_model::{Action, ActionState, DryRun, Effect, EntityState, Money};
use serde_json::json;

pub(crate) use lease::{END_LEASE, Lease, fence};

use crate::App;
use crate::actions::{
    ActionError, ChunkOutcome, Digester, EffectTally, Found, NewPreview, Transition,
    action_headers, dry_run_chunks, effects_of, held_money, resolve_entities, sorted, variables,
};
use crate::audit::NewAuditEntry;
use crate::db::on_pool;
use crate::mission_control::{CallError, MissionControl};

/// How often the engine looks for work when there is none.
const IDLE: Duration = Duration::from_millis(500);
/// Attempts per entity when the service fails transiently (timeouts, 5xx), with backoff.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(400);

/// Runs actions until the process stops.
pub async fn run(app: Arc<App>) {
    loop {
        match step(&app).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(IDLE).await,
            Err(e) => {
                tracing::error!(error = %e, "the execution engine failed a step; trying again");
                tokio::time::sleep(IDLE * 4).await;
            }
        }
    }
}

/// Expires old previews, then takes the lease of one action that is due and works on it
/// while the lease holds. Returns whether there was work.
pub async fn step(app: &App) -> Result<bool, ActionError> {
    app.expire_previews().await?;
    let Some((lease, action)) = claim(app).await? else {
        return Ok(false);
    };
    // Its re-checks read the service on the connections kept for Runboard's own work.
    let work = crate::connector::with_reserved_connections(work_on(app, &lease, action));
    tokio::pin!(work);
    tokio::select! {
        outcome = &mut work => outcome?,
        // Returns only when the lease is lost. The work is never dropped half-way: that
        // would cut a chunk's transaction between its statements. It sends nothing more
        // (every call checks the lease first), records nothing (every write is fenced),
        // and ends once the calls already on the wire have.
        () = lease.keep(app) => work.await?,
    }
    Ok(true)
}

/// Takes the lease of an action that needs the engine (approved, executing or being
/// cancelled) and that no live replica holds.
async fn claim(app: &App) -> Result<Option<(Lease, Action)>, ActionError> {
    let query = format!(
        "SELECT a.id FROM action a LEFT JOIN action_lease l ON l.action_id = a.id
         WHERE a.state IN ($1, $2, $3) AND (l.action_id IS NULL OR l.expires_ms < {now})
         ORDER BY a.updated_at LIMIT 5",
        now = app.store.pool.now_ms()
    );
    let candidates: Vec<String> = on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(&query)
            .bind(ActionState::Approved.as_str())
            .bind(ActionState::Executing.as_str())
            .bind(ActionState::Cancelling.as_str())
            .fetch_all(pool)
            .await?
    });
    for id in candidates {
        if let Some(lease) = Lease::take(app, &id).await? {
            return Ok(Some((lease, app.action(&id).await?)));
        }
    }
    Ok(None)
}

async fn work_on(app: &App, lease: &Lease, action: Action) -> Result<(), ActionError> {
    let action = match action.state {
        ActionState::Approved => {
            let mut start = Transition::new(
                &action,
                ActionState::Executing,
                engine_audit(
                    &action,
                    "action.executing",
                    json!({ "entities": action.preview.entities, "calls": action.preview.calls() }),
                ),
            );
            start.lease = Some(lease);
            match app.transition(start).await? {
                Some(executing) => executing,
                None => return release(app, lease).await,
            }
        }
        ActionState::Executing => action,
        // Taken over from a replica that is gone: none of its calls can be in flight now.
        ActionState::Cancelling => return conclude_cancelled(app, lease, &action).await,
        _ => return release(app, lease).await,
    };
    let (pending, sent_before) = pending_counts(app, &action.id).await?;
    app.store
        .append_audit(&engine_audit(
            &action,
            "action.started",
            json!({ "replica": lease.owner, "epoch": lease.epoch, "pending": pending,
                    "sent_before_unrecorded": sent_before }),
        ))
        .await?;
    if recheck(app, lease, &action).await? {
        send_all(app, lease, &action).await?;
    }
    Ok(())
}

/// Entities in pending chunks, and how many of them were sent before without a recorded
/// result.
async fn pending_counts(app: &App, action_id: &str) -> Result<(i64, i64), ActionError> {
    Ok(on_pool!(app.store.pool, |pool| {
        sqlx::query_as(
            "SELECT COALESCE(SUM(members), 0), COALESCE(SUM(CASE WHEN sent_epoch IS NULL THEN 0 ELSE members END), 0)
             FROM action_chunk WHERE action_id = $1 AND state = $2",
        )
        .bind(action_id)
        .bind(EntityState::Pending.as_str())
        .fetch_one(pool)
        .await?
    }))
}

/// Ends the lease without a change of state: the action moved on meanwhile.
async fn release(app: &App, lease: &Lease) -> Result<(), ActionError> {
    on_pool!(app.store.pool, |pool| {
        sqlx::query(END_LEASE)
            .bind(&lease.action_id)
            .bind(&lease.owner)
            .bind(lease.epoch)
            .execute(pool)
            .await?;
    });
    Ok(())
}

fn engine_audit<'a>(
    action: &'a Action,
    kind: &'a str,
    detail: serde_json::Value,
) -> NewAuditEntry<'a> {
    NewAuditEntry {
        actor: "runboard",
        action_id: Some(&action.id),
        kind,
        detail,
    }
}

/// A pending chunk as the engine works on it.
struct Chunk {
    number: i32,
    key: String,
    members: Vec<String>,
    /// The approved dry run's effects, as stored.
    planned: Option<String>,
}

/// Pending chunks after `after` in order, at most `limit`, with their members; only those
/// never sent when `unsent_only`.
async fn pending_chunks(
    app: &App,
    action: &Action,
    after: i32,
    limit: usize,
    unsent_only: bool,
) -> Result<Vec<Chunk>, ActionError> {
    let query = format!(
        "SELECT chunk, idempotency_key, planned FROM action_chunk
         WHERE action_id = $1 AND state = $2 AND chunk > $3 {}
         ORDER BY chunk LIMIT $4",
        if unsent_only {
            "AND sent_epoch IS NULL"
        } else {
            ""
        }
    );
    let rows: Vec<(i32, String, Option<String>)> = on_pool!(app.store.pool, |pool| {
        sqlx::query_as(&query)
            .bind(&action.id)
            .bind(EntityState::Pending.as_str())
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(64))
            .fetch_all(pool)
            .await?
    });
    let mut chunks = Vec::with_capacity(rows.len());
    for (number, key, planned) in rows {
        chunks.push(Chunk {
            members: chunk_members(app, &action.id, number).await?,
            number,
            key,
            planned,
        });
    }
    Ok(chunks)
}

async fn chunk_members(app: &App, action_id: &str, chunk: i32) -> Result<Vec<String>, ActionError> {
    Ok(on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(
            "SELECT entity_id FROM action_entity WHERE action_id = $1 AND chunk = $2 ORDER BY position",
        )
        .bind(action_id)
        .bind(chunk)
        .fetch_all(pool)
        .await?
    }))
}

/// The IDs a chunk's call names: none for the single call of a mutation without a list.
fn call_ids<'a>(action: &Action, chunk: &'a Chunk) -> &'a [String] {
    if action.preview.entity_argument.is_none() {
        return &[];
    }
    &chunk.members
}

/// Chunks the recheck reads and dry-runs at a time, so that memory stays bounded.
const RECHECK_PAGE: usize = 64;

/// The dry run again, right before the first call of this start, for the chunks never
/// sent; true when it says what the approvers saw. Chunks sent before (by a replica that
/// died or froze) are left out: they may be applied already, their dry run would differ for
/// that alone, and they are only ever resent with their idempotency key.
async fn recheck(app: &App, lease: &Lease, action: &Action) -> Result<bool, ActionError> {
    if matches!(action.preview.dry_run, DryRun::NotOffered) {
        return Ok(true);
    }
    let connector = app.action_connector(&action.service)?;
    let mission_control = connector.mission_control();
    let headers = call_headers(action, lease);
    let (mut after, mut entities, mut same) = (-1, 0_usize, true);
    // Every unsent chunk's dry run as it is now; only kept when one differs.
    let mut replanned: Vec<(i32, String)> = Vec::new();
    loop {
        if !lease.holds() {
            return Ok(false);
        }
        let chunks = pending_chunks(app, action, after, RECHECK_PAGE, true).await?;
        let Some(last) = chunks.last() else { break };
        after = last.number;
        let calls: Vec<Vec<String>> = chunks
            .iter()
            .map(|c| call_ids(action, c).to_vec())
            .collect();
        let answers = dry_run_chunks(
            mission_control,
            &action.preview,
            &calls,
            &headers,
            app.config.actions.dry_run_time_limit,
        )
        .await;
        let answers = match answers {
            Ok(answers) => answers,
            Err(e) => {
                pause(
                    app,
                    lease,
                    action,
                    &format!("the dry run before executing failed: {e}; resume to run it again"),
                )
                .await?;
                return Ok(false);
            }
        };
        for (chunk, effects) in chunks.iter().zip(answers) {
            entities += chunk.members.len();
            let approved: Option<Vec<Effect>> = chunk
                .planned
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok());
            let effects = sorted(effects);
            // A chunk stored without its dry run (an action from before chunks) differs.
            same &= approved.map(sorted).as_ref() == Some(&effects);
            replanned.push((
                chunk.number,
                serde_json::to_string(&effects).expect("effects serialize"),
            ));
        }
    }
    if entities == 0 {
        return Ok(true);
    }
    app.store
        .append_audit(&engine_audit(
            action,
            "action.rechecked",
            json!({ "epoch": lease.epoch, "entities": entities, "same_as_approved": same }),
        ))
        .await?;
    if !same {
        ask_again(app, lease, action, &replanned, entities).await?;
    }
    Ok(same)
}

/// The headers of every call the engine makes: who asked and approved, and the lease it
/// holds, whose epoch a service may use as a fencing token.
fn call_headers(action: &Action, lease: &Lease) -> Vec<(&'static str, String)> {
    let mut headers = action_headers(action);
    headers.push(("x-runboard-replica", lease.owner.clone()));
    headers.push(("x-runboard-lease-epoch", lease.epoch.to_string()));
    headers
}

/// Tells the calls of one sending round to stop: the action was cancelled or paused, the
/// lease went, or (with its reason) the action should pause because no call could be sent.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    pause_for: std::sync::Mutex<Option<String>>,
}

/// Chunks read at a time while sending: enough to keep `concurrency` calls busy.
const SEND_PAGE_PER_CALL: usize = 4;

/// Sends every pending chunk's call, `concurrency` at a time, until none is pending, the
/// action is cancelled, or the lease is lost. Chunks are read by keyset, so each is read
/// once; a split chunk's halves come after every chunk there was, and are read in turn.
async fn send_all(app: &App, lease: &Lease, action: &Action) -> Result<(), ActionError> {
    let connector = app.action_connector(&action.service)?;
    let mission_control = connector.mission_control();
    let headers = call_headers(action, lease);
    let concurrency = action.preview.concurrency.max(1) as usize;
    let stop = Stop::default();
    let mut after = -1;
    loop {
        let chunks =
            pending_chunks(app, action, after, concurrency * SEND_PAGE_PER_CALL, false).await?;
        let Some(last) = chunks.last() else {
            return finish(app, lease, action).await;
        };
        after = last.number;
        // Boxed, so that the engine's future is Send for every lifetime a task needs.
        let calls: Vec<BoxFuture<'_, Result<(), ActionError>>> = chunks
            .iter()
            .map(|chunk| {
                let (headers, stop) = (&headers, &stop);
                async move {
                    let sent =
                        call_chunk(app, mission_control, lease, action, chunk, headers, stop)
                            .await?;
                    match sent {
                        Some(outcome) => record(app, lease, action, chunk, outcome).await,
                        None => Ok(()),
                    }
                }
                .boxed()
            })
            .collect();
        let recorded: Vec<Result<(), ActionError>> = futures_util::stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<Vec<()>, _>>()?;
        if stop.stopped.load(Ordering::SeqCst) {
            // Every call this replica had in flight has ended by now.
            let now = app.action(&action.id).await?;
            if now.state == ActionState::Cancelling {
                return conclude_cancelled(app, lease, &now).await;
            }
            let reason = stop.pause_for.lock().expect("pause reason").take();
            if let Some(reason) = reason {
                return pause(app, lease, action, &reason).await;
            }
            return Ok(());
        }
        let progress = app.action(&action.id).await?.progress;
        let done = progress.succeeded + progress.failed;
        let config = &app.config.actions;
        if done >= u64::from(config.pause_after_calls)
            && (progress.failed as f64) > config.pause_failure_share * done as f64
        {
            let reason = format!(
                "{} of {done} entities failed, more than the {:.0} % that pauses an action; look at the failures, then resume or cancel",
                progress.failed,
                config.pause_failure_share * 100.0
            );
            return pause(app, lease, action, &reason).await;
        }
    }
}

/// Marks a chunk as sent under this lease, if the action is still executing and the lease
/// still this replica's by the store; false when it may not be sent. On PostgreSQL the
/// action's row is share-locked meanwhile, so a cancel commits either before this (and
/// nothing is sent) or after it (and the call counts as in flight).
async fn mark_sent(
    app: &App,
    lease: &Lease,
    action: &Action,
    chunk: i32,
) -> Result<bool, ActionError> {
    let query = format!(
        "UPDATE action_chunk SET sent_epoch = $3
         WHERE action_id = $1 AND chunk = $2 AND state = $5
           AND EXISTS (SELECT 1 FROM action a JOIN action_lease l ON l.action_id = a.id
                       WHERE a.id = $1 AND a.state = $6 AND l.owner = $4 AND l.epoch = $3
                         AND l.expires_ms > {now} {lock})",
        now = app.store.pool.now_ms(),
        lock = app.store.pool.share_lock("a"),
    );
    let marked = on_pool!(app.store.pool, |pool| {
        sqlx::query(&query)
            .bind(&action.id)
            .bind(chunk)
            .bind(lease.epoch)
            .bind(&lease.owner)
            .bind(EntityState::Pending.as_str())
            .bind(ActionState::Executing.as_str())
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(marked == 1)
}

/// One call for one chunk, with retries for transient failures: `(attempts, outcome)`,
/// or `None` when it was not sent (anymore) because the action stopped or the lease went.
async fn call_chunk(
    app: &App,
    mission_control: &MissionControl,
    lease: &Lease,
    action: &Action,
    chunk: &Chunk,
    headers: &[(&str, String)],
    stop: &Stop,
) -> Result<Option<(u32, ChunkOutcome)>, ActionError> {
    let dry_run_offered = !matches!(action.preview.dry_run, DryRun::NotOffered);
    let variables = variables(
        &action.preview,
        call_ids(action, chunk),
        false,
        dry_run_offered,
    );
    let mut headers = headers.to_vec();
    headers.push(("idempotency-key", chunk.key.clone()));
    let mut attempt = 0;
    loop {
        attempt += 1;
        // A call that could not say who sends it is not marked as sent: the action pauses
        // with the chunk still pending, and goes on when someone resumes it.
        if let Err(e) = mission_control.ready().await {
            if attempt < ATTEMPTS {
                tokio::time::sleep(BACKOFF * 2_u32.pow(attempt - 1)).await;
                continue;
            }
            let reason = format!("{e}; nothing more was sent; resume once it is back");
            stop.pause_for
                .lock()
                .expect("pause reason")
                .get_or_insert(reason);
            stop.stopped.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        // Every attempt leaves only once the store has said it may, and while this
        // replica's own clock says the lease still holds.
        let may_send = !stop.stopped.load(Ordering::SeqCst)
            && lease.holds()
            && mark_sent(app, lease, action, chunk.number).await?
            && lease.holds();
        if !may_send {
            stop.stopped.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        let answer = mission_control
            .request(&action.preview.document, &variables, &headers)
            .await;
        app.metrics.record_call(
            &action.service,
            answer.as_ref().map_or_else(CallError::label, |_| "ok"),
        );
        match answer {
            Ok(data) => {
                let outcome = match effects_of(&data, &action.mutation) {
                    Ok(effects) => ChunkOutcome::Applied(effects),
                    Err(e) => ChunkOutcome::Failed(e.to_string()),
                };
                return Ok(Some((attempt, outcome)));
            }
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tokio::time::sleep(BACKOFF * 2_u32.pow(attempt - 1)).await;
            }
            // Refused as a whole: nothing of it was applied, and a smaller call may pass.
            Err(e @ CallError::Refused(_)) if chunk.members.len() > 1 => {
                return Ok(Some((attempt, ChunkOutcome::Split(e.to_string()))));
            }
            Err(e @ CallError::Refused(_)) => {
                return Ok(Some((attempt, ChunkOutcome::Failed(e.to_string()))));
            }
            Err(e) => {
                return Ok(Some((
                    attempt,
                    ChunkOutcome::Failed(format!("gave up after {attempt} attempts: {e}")),
                )));
            }
        }
    }
}

/// Writes a chunk's result, its members' states and the action's counters in one
/// transaction, if this replica still holds the lease; a result that comes back after the
/// lease was lost is logged and dropped (the new holder resends the call with the same
/// idempotency key). A refused chunk is split in two new chunks instead, each with its
/// share of the approved dry run.
async fn record(
    app: &App,
    lease: &Lease,
    action: &Action,
    chunk: &Chunk,
    (attempts, outcome): (u32, ChunkOutcome),
) -> Result<(), ActionError> {
    let (chunk_state, entity_state) = match &outcome {
        ChunkOutcome::Applied(_) => ("succeeded", Some(EntityState::Succeeded)),
        ChunkOutcome::Failed(_) => ("failed", Some(EntityState::Failed)),
        ChunkOutcome::Split(_) => ("split", None),
    };
    let now = crate::audit::now();
    let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    let members = i64::try_from(chunk.members.len()).unwrap_or(i64::MAX);
    let outcome_json = serde_json::to_string(&outcome).expect("an outcome serializes");
    let close_chunk = format!(
        "UPDATE action_chunk SET state = $1, outcome = $2, attempts = attempts + $3, updated_at = $4
         WHERE action_id = $5 AND chunk = $6 AND state = $7 AND {fence}",
        fence = fence("$5", "$8", "$9"),
    );
    let halves = match &outcome {
        ChunkOutcome::Split(_) => Some(split(app, action, chunk).await?),
        _ => None,
    };
    let written = on_pool!(app.store.pool, |pool| {
        let mut tx = pool.begin().await?;
        let written = sqlx::query(&close_chunk)
            .bind(chunk_state)
            .bind(&outcome_json)
            .bind(attempts)
            .bind(now)
            .bind(&action.id)
            .bind(chunk.number)
            .bind(EntityState::Pending.as_str())
            .bind(&lease.owner)
            .bind(lease.epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if written == 1 {
            if let Some(state) = entity_state {
                sqlx::query(
                    "UPDATE action_entity SET state = $1, attempts = attempts + $2, updated_at = $3
                     WHERE action_id = $4 AND chunk = $5",
                )
                .bind(state.as_str())
                .bind(attempts)
                .bind(now)
                .bind(&action.id)
                .bind(chunk.number)
                .execute(&mut *tx)
                .await?;
                let counter = if state == EntityState::Succeeded {
                    "succeeded_count"
                } else {
                    "failed_count"
                };
                sqlx::query(&format!(
                    "UPDATE action SET {counter} = {counter} + $1 WHERE id = $2"
                ))
                .bind(members)
                .bind(&action.id)
                .execute(&mut *tx)
                .await?;
            }
            for half in halves.iter().flatten() {
                sqlx::query(
                    "INSERT INTO action_chunk (action_id, chunk, parent, state, members, idempotency_key,
                         planned, outcome, attempts, sent_epoch, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, NULL, $8)",
                )
                .bind(&action.id)
                .bind(half.number)
                .bind(chunk.number)
                .bind(EntityState::Pending.as_str())
                .bind(i32::try_from(half.members.len()).unwrap_or(i32::MAX))
                .bind(&half.key)
                .bind(&half.planned)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE action_entity SET chunk = $1, attempts = attempts + $2, updated_at = $3
                     WHERE action_id = $4 AND chunk = $5 AND position BETWEEN $6 AND $7",
                )
                .bind(half.number)
                .bind(attempts)
                .bind(now)
                .bind(&action.id)
                .bind(chunk.number)
                .bind(half.positions.0)
                .bind(half.positions.1)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        written
    });
    if written == 0 {
        tracing::warn!(action = %action.id, chunk = chunk.number, epoch = lease.epoch, outcome = chunk_state,
            "a call's result came back after this replica lost the lease; dropped");
    }
    Ok(())
}

/// One half of a refused chunk, to be stored as a chunk of its own.
struct Half {
    number: i32,
    key: String,
    members: Vec<String>,
    /// The first and last position of its members.
    positions: (i32, i32),
    planned: Option<String>,
}

/// The two halves of a refused chunk, each with the approved effects that name its members.
/// Chunk `c` of an action made with `n` chunks splits into `n + 2c` and `n + 2c + 1`: numbers
/// no other split can take, even two at once, and above every chunk read before them, so
/// that the keyset finds them after.
async fn split(app: &App, action: &Action, chunk: &Chunk) -> Result<[Half; 2], ActionError> {
    let first = i32::try_from(action.preview.calls()).unwrap_or(i32::MAX) + 2 * chunk.number;
    let positions: Vec<i32> = on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(
            "SELECT position FROM action_entity WHERE action_id = $1 AND chunk = $2 ORDER BY position",
        )
        .bind(&action.id)
        .bind(chunk.number)
        .fetch_all(pool)
        .await?
    });
    let planned: Option<Vec<Effect>> = chunk
        .planned
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let middle = chunk.members.len() / 2;
    let half = |offset: i32, members: &[String], positions: &[i32]| {
        let number = first + offset;
        Half {
            number,
            key: crate::actions::idempotency_key(&action.id, number),
            planned: planned.as_ref().map(|effects| {
                let mine: Vec<&Effect> = effects
                    .iter()
                    .filter(|e| members.contains(&e.entity_id))
                    .collect();
                serde_json::to_string(&mine).expect("effects serialize")
            }),
            positions: (positions[0], positions[positions.len() - 1]),
            members: members.to_vec(),
        }
    };
    Ok([
        half(0, &chunk.members[..middle], &positions[..middle]),
        half(1, &chunk.members[middle..], &positions[middle..]),
    ])
}

/// Moves the action on from `executing` while the lease holds, ending the lease.
async fn conclude(
    app: &App,
    lease: &Lease,
    action: &Action,
    to: ActionState,
    detail: Option<&str>,
    audit: NewAuditEntry<'_>,
) -> Result<(), ActionError> {
    let mut conclusion = Transition::new(action, to, audit);
    conclusion.from = ActionState::Executing;
    conclusion.detail = detail;
    conclusion.lease = Some(lease);
    if app.transition(conclusion).await?.is_none() {
        tracing::warn!(action = %action.id, to = to.as_str(),
            "the action was moved or its lease lost before it could become {}", to.as_str());
    }
    Ok(())
}

async fn finish(app: &App, lease: &Lease, action: &Action) -> Result<(), ActionError> {
    let progress = app.action(&action.id).await?.progress;
    let state = match (progress.succeeded, progress.failed) {
        (_, 0) => ActionState::Succeeded,
        (0, _) => ActionState::Failed,
        _ => ActionState::PartiallyFailed,
    };
    let kind = format!("action.{}", state.as_str());
    let audit = engine_audit(
        action,
        &kind,
        json!({ "succeeded": progress.succeeded, "failed": progress.failed }),
    );
    conclude(app, lease, action, state, None, audit).await
}

async fn pause(app: &App, lease: &Lease, action: &Action, reason: &str) -> Result<(), ActionError> {
    tracing::warn!(action = %action.id, %reason, "action paused");
    let audit = engine_audit(action, "action.paused", json!({ "reason": reason }));
    conclude(app, lease, action, ActionState::Paused, Some(reason), audit).await
}

/// A cancelled action whose calls have all ended: its entities are free again.
async fn conclude_cancelled(app: &App, lease: &Lease, action: &Action) -> Result<(), ActionError> {
    let progress = app.action(&action.id).await?.progress;
    let mut cancelled = Transition::new(
        action,
        ActionState::Cancelled,
        engine_audit(action, "action.cancelled", json!({ "progress": progress })),
    );
    cancelled.from = ActionState::Cancelling;
    cancelled.detail = action.state_detail.as_deref();
    cancelled.lease = Some(lease);
    app.transition(cancelled).await?;
    Ok(())
}

/// Money as a person reads it: "50.00 EUR, 12.00 USD", or "none".
fn money_text(money: &[Money]) -> String {
    if money.is_empty() {
        return "none".into();
    }
    money
        .iter()
        .map(|m| format!("{} {}", m.amount, m.currency))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The dry run now says something else than the approved preview: store a new preview
/// (the unsent entities as found now, the new effects of the `replanned` chunks, the money
/// still to move), recompute the approvals it needs, void the approvals given, and ask for
/// approval again, saying what changed. All of it in the transition's one transaction, so
/// no replica can ever send on a dry run nobody approved.
async fn ask_again(
    app: &App,
    lease: &Lease,
    action: &Action,
    replanned: &[(i32, String)],
    remaining: usize,
) -> Result<(), ActionError> {
    let connector = app.action_connector(&action.service)?;
    let planned: HashMap<i32, &str> = replanned.iter().map(|(c, p)| (*c, p.as_str())).collect();
    let mut unsent = Vec::with_capacity(remaining);
    for (chunk, _) in replanned {
        unsent.extend(chunk_members(app, &action.id, *chunk).await?);
    }
    let found = if action.preview.entity_argument.is_some() {
        match resolve_entities(&connector, &unsent).await {
            Ok(found) => found,
            Err(e) => {
                let reason = format!(
                    "the dry run before executing differs from the approved preview, and the entities could not be read again for a new one: {e}; resume to try again"
                );
                return pause(app, lease, action, &reason).await;
            }
        }
    } else {
        Vec::new()
    };
    let found_now: HashMap<&str, &Found> = found.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut tally = EffectTally::default();
    for (_, effects) in replanned {
        let effects: Vec<Effect> = serde_json::from_str(effects).expect("stored just now");
        for effect in &effects {
            tally.add(effect)?;
        }
    }
    let mut preview = action.preview.clone();
    (preview.dry_run, preview.money) = tally.finish();
    let new_digest = stored_digest(app, action, &preview, &planned, &found_now).await?;
    let needed = app.approvals_needed(&connector, &action.mutation, &preview.money);
    let all = action.preview.entities;
    let scope = if remaining as u64 == all {
        String::new()
    } else {
        format!(" The new preview's money covers the {remaining} of {all} entities not yet sent.")
    };
    let reason = format!(
        "The dry run right before executing differs from the approved preview: the entities changed since. \
         Money moved was {}, now {}; approvals needed were {}, now {needed}.{scope} Read the new preview and approve again.",
        money_text(&action.preview.money),
        money_text(&preview.money),
        action.approvals_needed,
    );
    let preview_json = serde_json::to_string(&preview).expect("a preview serializes");
    let expires_at = crate::audit::now()
        + chrono::Duration::from_std(app.config.actions.preview_ttl)
            .unwrap_or(chrono::Duration::days(1));
    let audit = engine_audit(
        action,
        "action.preview_changed",
        json!({
            "approved_digest": action.digest, "new_digest": new_digest,
            "money_before": action.preview.money, "money_now": preview.money,
            "approvals_needed_before": action.approvals_needed, "approvals_needed_now": needed,
            "remaining": remaining,
        }),
    );
    let mut again = Transition::new(action, ActionState::AwaitingApproval, audit);
    again.from = ActionState::Executing;
    again.detail = Some(&reason);
    again.lease = Some(lease);
    again.new_preview = Some(NewPreview {
        json: &preview_json,
        digest: &new_digest,
        approvals_needed: needed,
        expires_at,
        planned: replanned,
        found: &found,
    });
    app.transition(again).await?;
    Ok(())
}

/// The digest of the action's preview as stored, with `planned` and `found` in place of
/// what the store has for those chunks and entities: every chunk that carries entities
/// (not those split), in order, read a page at a time.
async fn stored_digest(
    app: &App,
    action: &Action,
    preview: &runboard_model::Preview,
    planned: &HashMap<i32, &str>,
    found: &HashMap<&str, &Found>,
) -> Result<String, ActionError> {
    #[derive(sqlx::FromRow)]
    struct Member {
        entity_id: String,
        found: Option<String>,
        held_amount: Option<String>,
        held_currency: Option<String>,
    }
    let mut digester = Digester::new();
    let mut after = -1;
    loop {
        let chunks: Vec<(i32, Option<String>)> = on_pool!(app.store.pool, |pool| {
            sqlx::query_as(
                "SELECT chunk, planned FROM action_chunk WHERE action_id = $1 AND state <> 'split'
                 AND chunk > $2 ORDER BY chunk LIMIT 64",
            )
            .bind(&action.id)
            .bind(after)
            .fetch_all(pool)
            .await?
        });
        let Some((last, _)) = chunks.last() else {
            return Ok(digester.finish(preview));
        };
        after = *last;
        for (chunk, stored) in chunks {
            let members: Vec<Member> = on_pool!(app.store.pool, |pool| {
                sqlx::query_as(
                    "SELECT entity_id, found, held_amount, held_currency FROM action_entity
                     WHERE action_id = $1 AND chunk = $2 ORDER BY position",
                )
                .bind(&action.id)
                .bind(chunk)
                .fetch_all(pool)
                .await?
            });
            let members: Vec<Found> = members
                .into_iter()
                .map(|m| match found.get(m.entity_id.as_str()) {
                    Some(now) => (*now).clone(),
                    None => Found {
                        held: held_money(m.held_amount, m.held_currency),
                        id: m.entity_id,
                        state: m.found,
                    },
                })
                .collect();
            let planned = planned.get(&chunk).copied().or(stored.as_deref());
            digester.chunk(u32::try_from(chunk).unwrap_or(0), &members, planned);
        }
    }
}
