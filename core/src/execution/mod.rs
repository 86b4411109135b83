//! The execution engine: runs approved actions, one call per entity, and survives being
//! killed at any point.
//!
//! Progress lives in the store, not in memory: each entity's result is written as its call
//! returns, and only entities still `pending` are ever called. A Runboard that dies
//! mid-action leaves a lease that runs out; the next one (or the same, restarted) takes
//! the action over and carries on with what is pending. A call that was sent but not yet
//! recorded is sent again with the same idempotency key, so the service applies it once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use runboard_model::{Action, ActionState, DryRun, Effect};
use serde_json::json;

use crate::App;
use crate::actions::{ActionError, SINGLE_CALL, action_headers, effects_of, variables};
use crate::audit::{NewAuditEntry, append_audit};
use crate::db::on_pool;
use crate::mission_control::CallError;

/// How long a claim on an action lasts without being renewed.
const LEASE: Duration = Duration::from_secs(15);
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

/// Expires old previews, then takes one action that is due and works on it.
/// Returns whether there was work.
pub async fn step(app: &App) -> Result<bool, ActionError> {
    app.expire_previews().await?;
    let Some((action, fresh)) = claim(app).await? else {
        return Ok(false);
    };
    execute(app, action, fresh).await?;
    Ok(true)
}

/// Claims an approved action, or an executing one whose lease ran out (its Runboard died).
async fn claim(app: &App) -> Result<Option<(Action, bool)>, ActionError> {
    let now = Utc::now();
    let candidates: Vec<(String, String)> = on_pool!(app.store.pool, |pool| {
        sqlx::query_as(
            "SELECT id, state FROM action
             WHERE state = 'approved'
                OR (state = 'executing' AND (leased_until IS NULL OR leased_until < $1))
             ORDER BY updated_at LIMIT 5",
        )
        .bind(now)
        .fetch_all(pool)
        .await?
    });
    for (id, state) in candidates {
        let taken = on_pool!(app.store.pool, |pool| {
            sqlx::query(
                "UPDATE action SET state = 'executing', leased_until = $1
                 WHERE id = $2 AND state = $3 AND (leased_until IS NULL OR leased_until < $4)",
            )
            .bind(now + LEASE)
            .bind(&id)
            .bind(&state)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if taken == 1 {
            return Ok(Some((app.action(&id).await?, state == "approved")));
        }
    }
    Ok(None)
}

async fn renew_lease(app: &App, id: &str) -> Result<bool, ActionError> {
    let renewed = on_pool!(app.store.pool, |pool| {
        sqlx::query("UPDATE action SET leased_until = $1 WHERE id = $2 AND state = 'executing'")
            .bind(Utc::now() + LEASE)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(renewed == 1)
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

async fn execute(app: &App, action: Action, fresh: bool) -> Result<(), ActionError> {
    let connector = app
        .fleet
        .service(&action.service)
        .ok_or_else(|| ActionError::UnknownService(action.service.clone()))?;
    let mission_control = connector.mission_control();
    let headers = action_headers(&action);
    let header_refs: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    let entity_ids: Vec<String> = action
        .preview
        .entities
        .iter()
        .map(|e| e.id.clone())
        .collect();

    if fresh {
        audit(
            app,
            &action,
            "action.executing",
            json!({ "entities": entity_ids.len() }),
        )
        .await?;
        // Right before the first call: the dry run again, and a stop if it differs.
        if let DryRun::Effects { effects: approved } = &action.preview.dry_run {
            let now_data = mission_control
                .request(
                    &action.preview.document,
                    &variables(&action.preview, &entity_ids, true, true),
                    &header_refs,
                )
                .await;
            let changed = match now_data {
                Ok(data) => {
                    let effects = effects_of(&data, &action.mutation)?;
                    (sorted(&effects) != sorted(approved)).then_some(effects)
                }
                Err(e) => {
                    return pause(
                        app,
                        &action,
                        &format!("the dry run before executing failed: {e}"),
                    )
                    .await;
                }
            };
            if let Some(effects) = changed {
                return ask_again(app, &action, effects).await;
            }
        }
    }

    let concurrency = action.preview.concurrency.max(1) as usize;
    loop {
        if !renew_lease(app, &action.id).await? {
            // Cancelled (or taken over) meanwhile: stop before the next call.
            return Ok(());
        }
        let pending: Vec<String> = on_pool!(app.store.pool, |pool| {
            sqlx::query_scalar(
                "SELECT entity_id FROM action_entity WHERE action_id = $1 AND state = 'pending'
                 ORDER BY position LIMIT $2",
            )
            .bind(&action.id)
            .bind(i64::try_from(concurrency * 8).unwrap_or(64))
            .fetch_all(pool)
            .await?
        });
        if pending.is_empty() {
            return finish(app, &action).await;
        }
        let calls = pending.into_iter().map(|entity| {
            let header_refs = &header_refs;
            let action = &action;
            async move {
                let outcome = call_entity(app, mission_control, action, &entity, header_refs).await;
                record(app, &action.id, &entity, outcome).await
            }
        });
        let recorded: Vec<Result<(), ActionError>> = futures_util::stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<Vec<()>, _>>()?;
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
            return pause(app, &action, &reason).await;
        }
    }
}

/// One call for one entity, with retries for transient failures: `(attempts, outcome)`.
async fn call_entity(
    app: &App,
    mission_control: &crate::mission_control::MissionControl,
    action: &Action,
    entity: &str,
    headers: &[(&str, String)],
) -> (u32, Result<String, String>) {
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
                return (attempt, Ok(described));
            }
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tokio::time::sleep(BACKOFF * 2_u32.pow(attempt - 1)).await;
            }
            Err(e @ CallError::Refused(_)) => return (attempt, Err(e.to_string())),
            Err(e) => {
                return (
                    attempt,
                    Err(format!("gave up after {attempt} attempts: {e}")),
                );
            }
        }
    }
}

async fn record(
    app: &App,
    action_id: &str,
    entity: &str,
    (attempts, outcome): (u32, Result<String, String>),
) -> Result<(), ActionError> {
    let (state, detail) = match outcome {
        Ok(detail) => ("succeeded", detail),
        Err(detail) => ("failed", detail),
    };
    on_pool!(app.store.pool, |pool| {
        sqlx::query(
            "UPDATE action_entity SET state = $1, attempts = attempts + $2, detail = $3, updated_at = $4
             WHERE action_id = $5 AND entity_id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(&detail)
        .bind(Utc::now())
        .bind(action_id)
        .bind(entity)
        .execute(pool)
        .await?;
    });
    Ok(())
}

async fn audit(
    app: &App,
    action: &Action,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), ActionError> {
    app.store
        .append_audit(&NewAuditEntry {
            actor: "runboard",
            action_id: Some(&action.id),
            kind,
            detail,
        })
        .await?;
    Ok(())
}

/// Moves an executing action to `to`, with its audit entry, releasing its entities when it ends.
async fn conclude(
    app: &App,
    action: &Action,
    to: ActionState,
    detail: Option<&str>,
    kind: &str,
    audit_detail: serde_json::Value,
) -> Result<(), ActionError> {
    let entry = NewAuditEntry {
        actor: "runboard",
        action_id: Some(&action.id),
        kind,
        detail: audit_detail,
    };
    let now = crate::audit::now();
    on_pool!(app.store.pool, |pool| {
        let mut tx = pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE action SET state = $1, state_detail = $2, updated_at = $3, leased_until = NULL
             WHERE id = $4 AND state = 'executing'",
        )
        .bind(to.as_str())
        .bind(detail)
        .bind(now)
        .bind(&action.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            app.metrics.record_action_end(&action.service, to.as_str());
            if to.is_final() {
                sqlx::query("DELETE FROM entity_hold WHERE action_id = $1")
                    .bind(&action.id)
                    .execute(&mut *tx)
                    .await?;
            }
            append_audit!(tx, &entry);
            tx.commit().await?;
        }
    });
    app.told(app.action(&action.id).await).map(drop)
}

async fn finish(app: &App, action: &Action) -> Result<(), ActionError> {
    let progress = app.action(&action.id).await?.progress;
    let state = match (progress.succeeded, progress.failed) {
        (_, 0) => ActionState::Succeeded,
        (0, _) => ActionState::Failed,
        _ => ActionState::PartiallyFailed,
    };
    conclude(
        app,
        action,
        state,
        None,
        &format!("action.{}", state.as_str()),
        json!({ "succeeded": progress.succeeded, "failed": progress.failed }),
    )
    .await
}

async fn pause(app: &App, action: &Action, reason: &str) -> Result<(), ActionError> {
    tracing::warn!(action = %action.id, %reason, "action paused");
    conclude(
        app,
        action,
        ActionState::Paused,
        Some(reason),
        "action.paused",
        json!({ "reason": reason }),
    )
    .await
}

/// The dry run now says something else than the approved preview: store the new preview,
/// void the approvals (they were for the old digest) and ask for approval again.
async fn ask_again(app: &App, action: &Action, effects: Vec<Effect>) -> Result<(), ActionError> {
    let mut preview = action.preview.clone();
    preview.dry_run = DryRun::Effects { effects };
    let digest = crate::actions::digest(&preview);
    let reason = "the dry run right before executing differs from the approved preview: the entities changed since; read the new preview and approve again";
    let entry = NewAuditEntry {
        actor: "runboard",
        action_id: Some(&action.id),
        kind: "action.preview_changed",
        detail: json!({ "approved_digest": action.digest, "new_digest": digest }),
    };
    let preview_json = serde_json::to_string(&preview).expect("a preview serializes");
    let now = crate::audit::now();
    on_pool!(app.store.pool, |pool| {
        let mut tx = pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE action SET state = 'awaiting_approval', state_detail = $1, preview = $2,
                 digest = $3, updated_at = $4, leased_until = NULL, expires_at = $6
             WHERE id = $5 AND state = 'executing'",
        )
        .bind(reason)
        .bind(&preview_json)
        .bind(&digest)
        .bind(now)
        .bind(&action.id)
        .bind(
            now + chrono::Duration::from_std(app.config.actions.preview_ttl)
                .unwrap_or(chrono::Duration::days(1)),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query("DELETE FROM action_approval WHERE action_id = $1")
                .bind(&action.id)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, &entry);
            tx.commit().await?;
        }
    });
    app.told(app.action(&action.id).await).map(drop)
}
