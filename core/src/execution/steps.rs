//! A runbook's steps, one after the other: every entity's call of step *n* has its result
//! before any call of step *n + 1* leaves, so an entity's later step only ever follows the
//! recorded success of its earlier one (a failure skips its later steps as it is recorded).
//!
//! Each step begins with the dry run again of its calls never sent, compared with what the
//! approvers saw: step *n + 1* was dry-run before step *n* ran. Where the engine stands is
//! the action's `current_step`, moved on in a fenced write, so a replica that takes the
//! action over after a kill resumes at the step it was in and resends only its pending
//! calls, with their keys.

use runboard_model::{Action, ActionProgress};
use serde_json::json;

use super::{Lease, Sent, engine_audit, finish, recheck, send_all};
use crate::App;
use crate::actions::ActionError;
use crate::db::on_pool;

/// Works through a runbook's steps from its current one until it finishes or stops.
pub(super) async fn run_steps(
    app: &App,
    lease: &Lease,
    mut action: Action,
) -> Result<(), ActionError> {
    loop {
        if !recheck(app, lease, &action).await?
            || send_all(app, lease, &action).await? == Sent::Stopped
        {
            return Ok(());
        }
        if action.current_step as usize + 1 >= action.preview.steps.len() {
            return finish(app, lease, &action).await;
        }
        if !next_step(app, lease, &action).await? {
            tracing::warn!(action = %action.id, step = action.current_step,
                "the action was moved or its lease lost before its next step could begin");
            return Ok(());
        }
        action = app.action(&action.id).await?;
    }
}

/// How the calls of the action's current step came out so far.
pub(super) async fn step_progress(
    app: &App,
    action: &Action,
) -> Result<ActionProgress, ActionError> {
    let counts: Vec<(String, i64)> = on_pool!(app.store.pool, |pool| {
        sqlx::query_as(
            "SELECT state, COUNT(*) FROM action_chunk WHERE action_id = $1 AND step = $2
             GROUP BY state",
        )
        .bind(&action.id)
        .bind(i32::try_from(action.current_step).unwrap_or(i32::MAX))
        .fetch_all(pool)
        .await?
    });
    let count = |state: &str| {
        counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    Ok(ActionProgress {
        pending: count("pending"),
        succeeded: count("succeeded"),
        failed: count("failed"),
        ..ActionProgress::default()
    })
}

/// Moves the runbook on to its next step, with the audit entry that says how the step
/// ended, if it is still executing this step under this lease; false when it is not.
async fn next_step(app: &App, lease: &Lease, action: &Action) -> Result<bool, ActionError> {
    let done = step_progress(app, action).await?;
    let step = i32::try_from(action.current_step).unwrap_or(i32::MAX);
    let audit = engine_audit(
        action,
        "action.step_done",
        json!({
            "step": action.current_step + 1,
            "title": action.preview.steps[action.current_step as usize].title,
            "succeeded": done.succeeded,
            "failed": done.failed,
            "epoch": lease.epoch,
        }),
    );
    app.action_store()
        .advance_step(lease.fence(), step, &audit)
        .await
}
