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
mod pace;
mod recheck;
mod send;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use runboard_model::{Action, ActionId, ActionState, DryRun, EntityState, IdempotencyKey};
use serde_json::{Value, json};

pub(crate) use lease::Lease;

use recheck::recheck;
use send::{Sent, send_all};

use crate::App;
use crate::actions::runbook::with_dry_run;
use crate::actions::{ActionError, Transition, action_headers, in_chunk, variables};
use crate::audit::{Actor, NewAuditEntry};
use crate::db::on_pool;

/// How often the engine looks for work when there is none.
const IDLE: Duration = Duration::from_millis(500);
/// Attempts per entity when the service fails transiently (timeouts, 5xx), with backoff.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(400);

/// Runs actions until the process stops.
pub async fn run(app: Arc<App>) {
    loop {
        match work_on_next_due(&app).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(IDLE).await,
            Err(e) => {
                tracing::error!(error = %e, "the execution engine failed while working on an action; trying again");
                tokio::time::sleep(IDLE * 4).await;
            }
        }
    }
}

/// Expires old previews, then takes the lease of one action that is due and works on it
/// while the lease holds. Returns whether there was work.
pub async fn work_on_next_due(app: &App) -> Result<bool, ActionError> {
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
    let Some(lease) = Lease::claim_due(app).await? else {
        return Ok(None);
    };
    let action = app.action(&lease.action_id).await?;
    Ok(Some((lease, action)))
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
                    json!({
                        "entities": action.preview.entities,
                        "calls": action.preview.calls() * action.preview.steps.len().max(1) as u64,
                    }),
                ),
            );
            start.lease = Some(lease.fence());
            match app.transition(start).await? {
                Some(executing) => executing,
                None => return release(app, lease).await,
            }
        }
        ActionState::Executing => action,
        ActionState::Cancelling => {
            // Taken over from a replica whose lease ran out: a call it sent just before may
            // still be on the wire, so its entities stay held (this lease kept meanwhile)
            // until no call of it can be, unless none was sent without a recorded result.
            let (_, sent_unrecorded) = pending_counts(app, &action.id).await?;
            if sent_unrecorded > 0 && !lease.predecessor_in_flight_for.is_zero() {
                tracing::info!(action = %action.id, wait_ms = lease.predecessor_in_flight_for.as_millis(),
                    "cancelling: holding the entities while the last replica's calls may be in flight");
                tokio::time::sleep(lease.predecessor_in_flight_for).await;
            }
            return conclude_cancelled(app, lease, &action).await;
        }
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
    if action.is_runbook() {
        return steps::run_steps(app, lease, action).await;
    }
    if recheck(app, lease, &action).await?
        && send_all(app, lease, &action).await? == Sent::AllRecorded
    {
        finish(app, lease, &action).await?;
    }
    Ok(())
}

/// Entities in pending chunks, and how many of them were sent before without a recorded
/// result.
async fn pending_counts(app: &App, action_id: &ActionId) -> Result<(i64, i64), ActionError> {
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
    app.action_store().end_lease(lease.fence()).await
}

fn engine_audit<'a>(
    action: &'a Action,
    kind: &'a str,
    detail: serde_json::Value,
) -> NewAuditEntry<'a> {
    NewAuditEntry {
        actor: Actor::Runboard,
        action_id: Some(&action.id),
        kind,
        detail,
    }
}

/// A pending chunk as the engine works on it.
struct Chunk {
    number: i32,
    /// The runbook step it belongs to; 0 for an action of one mutation.
    step: u32,
    key: IdempotencyKey,
    members: Vec<String>,
    /// The approved dry run's effects, as stored.
    planned: Option<String>,
    /// A runbook call's own variables (its entity's values filled in), as stored.
    variables: Option<String>,
}

/// Pending chunks of the action's current step after `after` in order, at most `limit`,
/// with their members; only those never sent when `unsent_only`.
async fn pending_chunks(
    app: &App,
    action: &Action,
    after: i32,
    limit: usize,
    unsent_only: bool,
) -> Result<Vec<Chunk>, ActionError> {
    let query = format!(
        "SELECT chunk, idempotency_key, planned, entity_id, variables, members FROM action_chunk
         WHERE action_id = $1 AND state = $2 AND chunk > $3 AND step = $5 {}
         ORDER BY chunk LIMIT $4",
        if unsent_only {
            "AND sent_epoch IS NULL"
        } else {
            ""
        }
    );
    type Row = (
        i32,
        IdempotencyKey,
        Option<String>,
        Option<String>,
        Option<String>,
        i32,
    );
    let rows: Vec<Row> = on_pool!(app.store.pool, |pool| {
        sqlx::query_as(&query)
            .bind(&action.id)
            .bind(EntityState::Pending.as_str())
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(64))
            .bind(i32::try_from(action.current_step).unwrap_or(i32::MAX))
            .fetch_all(pool)
            .await?
    });
    let mut chunks = Vec::with_capacity(rows.len());
    for (number, key, planned, entity, variables, expected) in rows {
        let members = match entity {
            Some(entity) => vec![entity],
            None => chunk_members(app, action, number).await?,
        };
        // A call that named fewer entities than were approved would record them as done.
        if usize::try_from(expected).ok() != Some(members.len()) {
            return Err(ActionError::Store(crate::store::StoreError::corrupt(
                MembersMissing {
                    chunk: number,
                    action: action.id.clone(),
                    expected,
                    found: members.len(),
                },
            )));
        }
        chunks.push(Chunk {
            members,
            number,
            step: action.current_step,
            key,
            planned,
            variables,
        });
    }
    Ok(chunks)
}

/// A chunk whose stored entities are not as many as its row says: rows changed by hand, or
/// written by a release that keeps them otherwise.
#[derive(Debug, thiserror::Error)]
#[error(
    "chunk {chunk} of action {action} should name {expected} entities and the store holds {found} \
     for it, so nothing of it is sent: restore the store's rows from a backup, or cancel the action"
)]
struct MembersMissing {
    chunk: i32,
    action: ActionId,
    expected: i32,
    found: usize,
}

/// The entities a chunk's call names: a runbook's call names its one entity.
async fn chunk_members(app: &App, action: &Action, chunk: i32) -> Result<Vec<String>, ActionError> {
    let query = if action.is_runbook() {
        "SELECT entity_id FROM action_chunk WHERE action_id = $1 AND chunk = $2".to_owned()
    } else {
        format!(
            "SELECT entity_id FROM action_entity WHERE {} ORDER BY position",
            in_chunk("$1", "$2")
        )
    };
    Ok(on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(&query)
            .bind(&action.id)
            .bind(chunk)
            .fetch_all(pool)
            .await?
    }))
}

/// What a chunk's call sends: its document, the mutation whose answer it reads, and its
/// variables, as a dry run or for real. A runbook's call sends its step's document with the
/// variables stored for its entity; any other sends the action's, with the chunk's IDs (none
/// for the single call of a mutation without a list).
fn call_of<'a>(
    action: &'a Action,
    chunk: &Chunk,
    dry_run: bool,
) -> Result<(&'a str, &'a str, Value), ActionError> {
    let offered = |d: &DryRun| !matches!(d, DryRun::NotOffered);
    if let Some(step) = action.preview.steps.get(chunk.step as usize) {
        let stored: Value = chunk
            .variables
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ActionError::Store(crate::store::StoreError::corrupt(e)))?
            .unwrap_or(Value::Null);
        let variables = if offered(&step.dry_run) {
            with_dry_run(&stored, dry_run)
        } else {
            stored
        };
        return Ok((&step.document, &step.mutation, variables));
    }
    let ids: &[String] = if action.preview.entity_argument.is_none() {
        &[]
    } else {
        &chunk.members
    };
    let variables = variables(
        &action.preview,
        ids,
        dry_run,
        offered(&action.preview.dry_run),
    );
    Ok((&action.preview.document, &action.mutation, variables))
}

/// The headers of every call the engine makes: who asked and approved, and the lease it
/// holds, whose epoch a service may use as a fencing token.
fn call_headers(action: &Action, lease: &Lease) -> Vec<(&'static str, String)> {
    let mut headers = action_headers(action);
    headers.push(("x-runboard-replica", lease.owner.clone()));
    headers.push(("x-runboard-lease-epoch", lease.epoch.to_string()));
    headers
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
    conclusion.lease = Some(lease.fence());
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
    cancelled.lease = Some(lease.fence());
    app.transition(cancelled).await?;
    Ok(())
}
