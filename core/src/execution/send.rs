//! Sending the chunks' calls, recording their results, and splitting refused chunks.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use runboard_model::{Action, ActionState, Effect, EntityState, IdempotencyKey};

use super::pace::{Brake, InFlight, Pacer};
use super::{
    ATTEMPTS, BACKOFF, Chunk, Lease, call_headers, call_of, conclude_cancelled, pause,
    pending_chunks, steps,
};
use crate::App;
use crate::actions::{
    ActionError, ChunkClose, ChunkHalf, ChunkOutcome, effects_of, in_chunk, sorted,
};
use crate::db::on_pool;
use crate::graphql_client::{CallError, MissionControl};

/// Tells the calls of one sending round to stop: the action was cancelled or paused, the
/// lease went, or (with its reason) the action should pause because no call could be sent.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    pause_for: std::sync::Mutex<Option<String>>,
}

/// Chunks read at a time while sending: enough to keep `concurrency` calls busy.
const SEND_PAGE_PER_CALL: usize = 4;

/// How a round of sending ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// Every chunk of the step has its result: the action goes on (next step, or finishes).
    AllRecorded,
    /// It stopped short: cancelled, paused, or the lease went. Whoever stopped it moved it on.
    Stopped,
}

/// What every call of one sending round shares.
struct Round<'a> {
    app: &'a App,
    mission_control: &'a MissionControl,
    lease: &'a Lease,
    action: &'a Action,
    headers: Vec<(&'static str, String)>,
    stop: Stop,
    pacer: Pacer,
    brake: Brake,
}

/// Sends every pending chunk's call of the action's current step, as many at a time as the
/// brake allows (at most the action's concurrency) and at its pace, until none is pending,
/// the action is cancelled or paused, or the lease is lost. Chunks are read by keyset, so
/// each is read once; a split chunk's halves come after every chunk there was, and are
/// read in turn. While no call of the action has succeeded, the next is a canary: it
/// leaves alone, and one refused, failed, or whose effects differ from its dry run pauses
/// the action before anything else is sent.
pub(super) async fn send_all(
    app: &App,
    lease: &Lease,
    action: &Action,
) -> Result<Sent, ActionError> {
    let connector = app.action_connector(&action.service)?;
    let concurrency = action.preview.concurrency.max(1) as usize;
    let round = Round {
        app,
        mission_control: connector.mission_control(),
        lease,
        action,
        headers: call_headers(action, lease),
        stop: Stop::default(),
        pacer: Pacer::new(app, action),
        brake: Brake::new(app, concurrency),
    };
    let stop = &round.stop;
    let mut canary = app.config.actions.canary_entities > 0 && none_succeeded(app, action).await?;
    let mut after = -1;
    loop {
        let page = if canary {
            1
        } else {
            concurrency * SEND_PAGE_PER_CALL
        };
        let chunks = pending_chunks(app, action, after, page, false).await?;
        let Some(last) = chunks.last() else {
            return Ok(Sent::AllRecorded);
        };
        after = last.number;
        // Boxed, so that the engine's future is Send for every lifetime a task needs.
        let calls: Vec<BoxFuture<'_, Result<(), ActionError>>> = chunks
            .iter()
            .map(|chunk| {
                let round = &round;
                async move {
                    let in_flight = round.brake.enter().await;
                    let sent = call_chunk(round, chunk, canary, &in_flight).await?;
                    drop(in_flight);
                    let Some(outcome) = sent else { return Ok(()) };
                    let with_result = match &outcome.1 {
                        ChunkOutcome::Split(_) => 0,
                        _ => chunk.members.len() as u64,
                    };
                    let canary_problem =
                        canary.then(|| canary_problem(chunk, &outcome.1)).flatten();
                    close_chunk(app, lease, action, chunk, outcome).await?;
                    round.brake.recorded(app, lease, with_result).await?;
                    if let Some(problem) = canary_problem {
                        round
                            .stop
                            .pause_for
                            .lock()
                            .expect("pause reason")
                            .get_or_insert(problem);
                        round.stop.stopped.store(true, Ordering::SeqCst);
                    }
                    Ok(())
                }
                .boxed()
            })
            .collect();
        let recorded: Vec<Result<(), ActionError>> = futures_util::stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<Vec<()>, _>>()?;
        canary = false;
        if stop.stopped.load(Ordering::SeqCst) {
            // Every call this replica had in flight has ended by now.
            let now = app.action(&action.id).await?;
            if now.state == ActionState::Cancelling {
                conclude_cancelled(app, lease, &now).await?;
                return Ok(Sent::Stopped);
            }
            let reason = stop.pause_for.lock().expect("pause reason").take();
            if let Some(reason) = reason {
                pause(app, lease, action, &reason).await?;
            }
            return Ok(Sent::Stopped);
        }
        // A runbook is judged by its current step: during the first, no entity has
        // succeeded yet, since success means every step done.
        let progress = if action.is_runbook() {
            steps::step_progress(app, action).await?
        } else {
            app.action(&action.id).await?.progress
        };
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
            pause(app, lease, action, &reason).await?;
            return Ok(Sent::Stopped);
        }
    }
}

/// Whether no call of the action has succeeded yet: the next one is then a canary.
async fn none_succeeded(app: &App, action: &Action) -> Result<bool, ActionError> {
    let succeeded: i64 = on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM action_chunk WHERE action_id = $1 AND state = $2")
            .bind(&action.id)
            .bind(EntityState::Succeeded.as_str())
            .fetch_one(pool)
            .await?
    });
    Ok(succeeded == 0)
}

/// Why a canary's outcome pauses the action, in the service's words: it failed, or its
/// effects are not what its dry run said.
fn canary_problem(chunk: &Chunk, outcome: &ChunkOutcome) -> Option<String> {
    let entities = chunk.members.len();
    match outcome {
        ChunkOutcome::Failed(why) | ChunkOutcome::Split(why) => Some(format!(
            "the canary (the first call, {entities} entities) failed: {why}; nothing else was sent. Look at it, then resume or cancel"
        )),
        ChunkOutcome::Applied(effects) => {
            let planned: Vec<Effect> = serde_json::from_str(chunk.planned.as_deref()?).ok()?;
            let (planned, effects) = (sorted(planned), sorted(effects.clone()));
            if planned == effects {
                return None;
            }
            let differs = effects
                .iter()
                .find(|e| !planned.contains(e))
                .map(|e| format!("{}: {}", e.entity_id, e.description))
                .or_else(|| {
                    planned
                        .iter()
                        .find(|e| !effects.contains(e))
                        .map(|e| format!("{} did not happen: {}", e.entity_id, e.description))
                })
                .unwrap_or_default();
            Some(format!(
                "the canary (the first call, {entities} entities) did something else than its dry run said ({differs}); nothing else was sent. Look at it, then resume or cancel"
            ))
        }
    }
}

/// One call for one chunk, with retries for transient failures: `(attempts, outcome)`,
/// or `None` when it was not sent (anymore) because the action stopped or the lease went.
/// Each attempt waits for its turn at the action's pace; the brake judges each answer. A
/// canary the service refuses fails whole rather than split: the action pauses on it.
async fn call_chunk(
    round: &Round<'_>,
    chunk: &Chunk,
    canary: bool,
    in_flight: &InFlight<'_>,
) -> Result<Option<(u32, ChunkOutcome)>, ActionError> {
    let Round {
        app,
        mission_control,
        lease,
        action,
        stop,
        ..
    } = round;
    let (document, mutation, variables) = call_of(action, chunk, false)?;
    let mut headers = round.headers.clone();
    headers.push(("idempotency-key", chunk.key.to_string()));
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
        round
            .pacer
            .wait_turn(app, action, chunk.members.len())
            .await?;
        // Every attempt leaves only once the store has said it may, and while this
        // replica's own clock says the lease still holds.
        let may_send = !stop.stopped.load(Ordering::SeqCst)
            && lease.holds()
            && app
                .action_store()
                .mark_chunk_sent(lease.fence(), chunk.number)
                .await?
            && lease.holds();
        if !may_send {
            stop.stopped.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        let sent_at = std::time::Instant::now();
        let answer = mission_control
            .request_gated(document, &variables, &headers, lease.gate())
            .await;
        // Frozen between the check above and the socket, and woke without the lease.
        if let Err(CallError::HeldBack) = answer {
            stop.stopped.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        in_flight.answered(
            sent_at.elapsed(),
            answer.as_ref().is_err_and(CallError::is_transient),
        );
        app.metrics.record_call(
            &action.service,
            answer.as_ref().map_or_else(CallError::label, |_| "ok"),
        );
        match answer {
            Ok(data) => {
                let outcome = match effects_of(&data, mutation) {
                    Ok(effects) => ChunkOutcome::Applied(effects),
                    Err(e) => ChunkOutcome::Failed(e.to_string()),
                };
                return Ok(Some((attempt, outcome)));
            }
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tokio::time::sleep(BACKOFF * 2_u32.pow(attempt - 1)).await;
            }
            // Refused as a whole: nothing of it was applied, and a smaller call may pass.
            Err(e @ CallError::Refused(_)) if chunk.members.len() > 1 && !canary => {
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
async fn close_chunk(
    app: &App,
    lease: &Lease,
    action: &Action,
    chunk: &Chunk,
    (attempts, outcome): (u32, ChunkOutcome),
) -> Result<(), ActionError> {
    // A runbook's entity has succeeded once its last step has; it fails at any step, and its
    // later steps are never sent.
    let last_step = chunk.step as usize + 1 >= action.preview.steps.len();
    let (chunk_state, entity_state) = match &outcome {
        ChunkOutcome::Applied(_) => ("succeeded", last_step.then_some(EntityState::Succeeded)),
        ChunkOutcome::Failed(_) => ("failed", Some(EntityState::Failed)),
        ChunkOutcome::Split(_) => ("split", None),
    };
    let halves = match &outcome {
        ChunkOutcome::Split(_) => Some(split(app, action, chunk).await?),
        _ => None,
    };
    let close = ChunkClose {
        chunk: chunk.number,
        runbook_step: action
            .is_runbook()
            .then(|| (chunk.step, chunk.members[0].as_str())),
        chunk_state,
        entity_state,
        outcome: &outcome,
        attempts,
        members: chunk.members.len(),
        halves,
    };
    if !app.action_store().close_chunk(lease.fence(), close).await? {
        tracing::warn!(action = %action.id, chunk = chunk.number, epoch = lease.epoch, outcome = chunk_state,
            "a call's result came back after this replica lost the lease; dropped");
    }
    Ok(())
}

/// The two halves of a refused chunk, each with the approved effects that name its members.
/// Chunk `c` of an action made with `n` chunks splits into `n + 2c` and `n + 2c + 1`: numbers
/// no other split can take, even two at once, and above every chunk read before them, so
/// that the keyset finds them after.
async fn split(app: &App, action: &Action, chunk: &Chunk) -> Result<[ChunkHalf; 2], ActionError> {
    let first = i32::try_from(action.preview.calls()).unwrap_or(i32::MAX) + 2 * chunk.number;
    let query = format!(
        "SELECT position FROM action_entity WHERE {} ORDER BY position",
        in_chunk("$1", "$2")
    );
    let positions: Vec<i32> = on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(&query)
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
        ChunkHalf {
            number,
            key: IdempotencyKey::of_call(&action.id, number),
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
