//! The execution engine: runs approved actions, one call per entity, on any number of
//! replicas, through kills, freezes and cancels.
//!
//! Only the replica holding an action's fenced [`Lease`] sends or records its calls; every
//! write the engine makes for an action is conditional on owner and epoch, and a heartbeat
//! keeps the lease without waiting on calls.
//!
//! Progress lives in the store, not in memory. Before each call leaves, the entity is
//! marked sent under the lease's epoch, in a statement that also checks that the action is
//! still executing and the lease still this replica's: a cancelled action, or a replica that
//! lost its lease, sends nothing more. Each result is written as its call returns. An action
//! taken over resends only pending entities; one marked sent may have been applied already,
//! and goes again with the same idempotency key, so the service applies it once.
//!
//! Every start (approved, resumed, taken over after a crash) first runs the dry run again
//! for the entities never sent and compares it with what the approvers saw. A difference
//! sends the action back for approval with the entities, money and approvals needed
//! recomputed; a dry run that fails pauses it.

mod lease;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use runboard_model::{Action, ActionState, DryRun, Effect, EntityState, Money};
use serde_json::json;

pub(crate) use lease::{END_LEASE, Lease, fence};

use crate::App;
use crate::actions::{
    ActionError, NewPreview, SINGLE_CALL, Transition, action_headers, digest, effects_of,
    money_moved, resolve_entities, variables,
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
    tokio::select! {
        outcome = work_on(app, &lease, action) => outcome?,
        // Returns only when the lease is lost: the work stops at once, mid-call if need be.
        () = lease.keep(app) => {}
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
                    json!({ "entities": action.preview.entities.len() }),
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

/// Pending entities, and how many of them were sent before without a recorded result.
async fn pending_counts(app: &App, action_id: &str) -> Result<(i64, i64), ActionError> {
    Ok(on_pool!(app.store.pool, |pool| {
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(sent_epoch) FROM action_entity WHERE action_id = $1 AND state = $2",
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

/// Effects as a comparable set: the order a service lists them in does not matter.
fn sorted(effects: &[Effect]) -> Vec<Effect> {
    let mut effects = effects.to_vec();
    effects.sort_by(|a, b| {
        a.entity_id
            .cmp(&b.entity_id)
            .then(a.description.cmp(&b.description))
    });
    effects
}

/// The dry run again, right before the first call of this start, for the entities never
/// sent; true when it says what the approvers saw. Entities sent before (by a replica that
/// died or froze) are left out: they may be applied already, their dry run would differ for
/// that alone, and they are only ever resent with their idempotency key.
async fn recheck(app: &App, lease: &Lease, action: &Action) -> Result<bool, ActionError> {
    let DryRun::Effects { effects: approved } = &action.preview.dry_run else {
        return Ok(true);
    };
    let unsent: Vec<String> = on_pool!(app.store.pool, |pool| {
        sqlx::query_scalar(
            "SELECT entity_id FROM action_entity
             WHERE action_id = $1 AND state = $2 AND sent_epoch IS NULL ORDER BY position",
        )
        .bind(&action.id)
        .bind(EntityState::Pending.as_str())
        .fetch_all(pool)
        .await?
    });
    if unsent.is_empty() {
        return Ok(true);
    }
    let single_call = action.preview.entity_argument.is_none();
    let (called, approved_part): (&[String], Vec<Effect>) = if single_call {
        (&[], approved.clone())
    } else {
        let wanted: HashSet<&str> = unsent.iter().map(String::as_str).collect();
        let part = approved
            .iter()
            .filter(|e| wanted.contains(e.entity_id.as_str()))
            .cloned()
            .collect();
        (&unsent, part)
    };
    let mission_control = mission_control_of(app, action)?;
    let answer = mission_control
        .request(
            &action.preview.document,
            &variables(&action.preview, called, true, true),
            &call_headers(action, lease),
        )
        .await;
    let effects = match answer
        .map_err(ActionError::Service)
        .and_then(|data| effects_of(&data, &action.mutation))
    {
        Ok(effects) => effects,
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
    let same = sorted(&effects) == sorted(&approved_part);
    app.store
        .append_audit(&engine_audit(
            action,
            "action.rechecked",
            json!({ "epoch": lease.epoch, "entities": unsent.len(), "same_as_approved": same }),
        ))
        .await?;
    if !same {
        ask_again(app, lease, action, effects, unsent.len()).await?;
    }
    Ok(same)
}

fn mission_control_of<'a>(
    app: &'a App,
    action: &Action,
) -> Result<&'a MissionControl, ActionError> {
    app.fleet
        .service(&action.service)
        .map(|connector| connector.mission_control())
        .ok_or_else(|| ActionError::UnknownService(action.service.clone()))
}

/// The headers of every call the engine makes: who asked and approved, and the lease it
/// holds, whose epoch a service may use as a fencing token.
fn call_headers(action: &Action, lease: &Lease) -> Vec<(&'static str, String)> {
    let mut headers = action_headers(action);
    headers.push(("x-runboard-replica", lease.owner.clone()));
    headers.push(("x-runboard-lease-epoch", lease.epoch.to_string()));
    headers
}

/// Sends every pending entity's call, `concurrency` at a time, until none is pending, the
/// action is cancelled, or the lease is lost.
async fn send_all(app: &App, lease: &Lease, action: &Action) -> Result<(), ActionError> {
    let mission_control = mission_control_of(app, action)?;
    let headers = call_headers(action, lease);
    let concurrency = action.preview.concurrency.max(1) as usize;
    let stopped = AtomicBool::new(false);
    loop {
        let pending: Vec<String> = on_pool!(app.store.pool, |pool| {
            sqlx::query_scalar(
                "SELECT entity_id FROM action_entity WHERE action_id = $1 AND state = $2
                 ORDER BY position LIMIT $3",
            )
            .bind(&action.id)
            .bind(EntityState::Pending.as_str())
            .bind(i64::try_from(concurrency * 8).unwrap_or(64))
            .fetch_all(pool)
            .await?
        });
        if pending.is_empty() {
            return finish(app, lease, action).await;
        }
        let calls = pending.into_iter().map(|entity| {
            let (headers, stopped) = (&headers, &stopped);
            async move {
                let sent = call_entity(
                    app,
                    mission_control,
                    lease,
                    action,
                    &entity,
                    headers,
                    stopped,
                )
                .await?;
                match sent {
                    Some(outcome) => record(app, lease, action, &entity, outcome).await,
                    None => Ok(()),
                }
            }
        });
        let recorded: Vec<Result<(), ActionError>> = futures_util::stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<Vec<()>, _>>()?;
        if stopped.load(Ordering::SeqCst) {
            // Every call this replica had in flight has ended by now.
            let now = app.action(&action.id).await?;
            if now.state == ActionState::Cancelling {
                return conclude_cancelled(app, lease, &now).await;
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
                "{} of {done} calls failed, more than the {:.0} % that pauses an action; look at the failures, then resume or cancel",
                progress.failed,
                config.pause_failure_share * 100.0
            );
            return pause(app, lease, action, &reason).await;
        }
    }
}

/// Marks `entity` as sent under this lease, if the action is still executing and the lease
/// still this replica's by the store; false when it may not be sent. On PostgreSQL the
/// action's row is share-locked meanwhile, so a cancel commits either before this (and
/// nothing is sent) or after it (and the call counts as in flight).
async fn mark_sent(
    app: &App,
    lease: &Lease,
    action: &Action,
    entity: &str,
) -> Result<bool, ActionError> {
    let query = format!(
        "UPDATE action_entity SET sent_epoch = $3
         WHERE action_id = $1 AND entity_id = $2 AND state = $5
           AND EXISTS (SELECT 1 FROM action a JOIN action_lease l ON l.action_id = a.id
                       WHERE a.id = $1 AND a.state = $6 AND l.owner = $4 AND l.epoch = $3
                         AND l.expires_ms > {now} {lock})",
        now = app.store.pool.now_ms(),
        lock = app.store.pool.share_lock("a"),
    );
    let marked = on_pool!(app.store.pool, |pool| {
        sqlx::query(&query)
            .bind(&action.id)
            .bind(entity)
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

/// One call for one entity, with retries for transient failures: `(attempts, outcome)`,
/// or `None` when it was not sent (anymore) because the action stopped or the lease went.
async fn call_entity(
    app: &App,
    mission_control: &MissionControl,
    lease: &Lease,
    action: &Action,
    entity: &str,
    headers: &[(&str, String)],
    stopped: &AtomicBool,
) -> Result<Option<(u32, Result<String, String>)>, ActionError> {
    let entities: Vec<String> = if entity == SINGLE_CALL {
        Vec::new()
    } else {
        vec![entity.to_owned()]
    };
    let dry_run_offered = !matches!(action.preview.dry_run, DryRun::NotOffered);
    let variables = variables(&action.preview, &entities, false, dry_run_offered);
    let mut headers = headers.to_vec();
    headers.push((
        "idempotency-key",
        format!("runboard:{}:{entity}", action.id),
    ));
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Every attempt leaves only once the store has said it may, and while this
        // replica's own clock says the lease still holds.
        let may_send = !stopped.load(Ordering::SeqCst)
            && lease.holds()
            && mark_sent(app, lease, action, entity).await?
            && lease.holds();
        if !may_send {
            stopped.store(true, Ordering::SeqCst);
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
                let described = effects_of(&data, &action.mutation)
                    .map(|effects| {
                        effects
                            .iter()
                            .map(|e| e.description.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_else(|e| e.to_string());
                return Ok(Some((attempt, Ok(described))));
            }
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tokio::time::sleep(BACKOFF * 2_u32.pow(attempt - 1)).await;
            }
            Err(e @ CallError::Refused(_)) => return Ok(Some((attempt, Err(e.to_string())))),
            Err(e) => {
                return Ok(Some((
                    attempt,
                    Err(format!("gave up after {attempt} attempts: {e}")),
                )));
            }
        }
    }
}

/// Writes an entity's result, if this replica still holds the lease; a result that comes
/// back after the lease was lost is logged and dropped (the new holder resends the call
/// with the same idempotency key).
async fn record(
    app: &App,
    lease: &Lease,
    action: &Action,
    entity: &str,
    (attempts, outcome): (u32, Result<String, String>),
) -> Result<(), ActionError> {
    let (state, detail) = match outcome {
        Ok(detail) => (EntityState::Succeeded, detail),
        Err(detail) => (EntityState::Failed, detail),
    };
    let query = format!(
        "UPDATE action_entity SET state = $1, attempts = attempts + $2, detail = $3, updated_at = $4
         WHERE action_id = $5 AND entity_id = $6 AND state = $7 AND {fence}",
        fence = fence("$5", "$8", "$9"),
    );
    let written = on_pool!(app.store.pool, |pool| {
        sqlx::query(&query)
            .bind(state.as_str())
            .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
            .bind(&detail)
            .bind(crate::audit::now())
            .bind(&action.id)
            .bind(entity)
            .bind(EntityState::Pending.as_str())
            .bind(&lease.owner)
            .bind(lease.epoch)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if written == 0 {
        tracing::warn!(action = %action.id, %entity, epoch = lease.epoch, outcome = state.as_str(),
            "a call's result came back after this replica lost the lease; dropped");
    }
    Ok(())
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
/// (the entities as found now, the new effects of the `remaining` entities still to send,
/// the money they move), recompute the approvals it needs, void the approvals given, and
/// ask for approval again, saying what changed.
async fn ask_again(
    app: &App,
    lease: &Lease,
    action: &Action,
    effects: Vec<Effect>,
    remaining: usize,
) -> Result<(), ActionError> {
    let connector = app.action_connector(&action.service)?;
    let ids: Vec<String> = action
        .preview
        .entities
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let entities = match resolve_entities(connector, &ids).await {
        Ok(entities) => entities,
        Err(e) => {
            let reason = format!(
                "the dry run before executing differs from the approved preview, and the entities could not be read again for a new one: {e}; resume to try again"
            );
            return pause(app, lease, action, &reason).await;
        }
    };
    let mut preview = action.preview.clone();
    preview.entities = entities;
    preview.dry_run = DryRun::Effects { effects };
    preview.money = money_moved(&preview.dry_run)?;
    let new_digest = digest(&preview);
    let needed = app.approvals_needed(&action.service, &action.mutation, &preview.money);
    let scope = if remaining == ids.len() {
        String::new()
    } else {
        format!(
            " The new preview covers the {remaining} of {} entities not yet sent.",
            ids.len()
        )
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
    });
    app.transition(again).await?;
    Ok(())
}
