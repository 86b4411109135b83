//! The one owner of an action's data: every statement that writes the action's tables
//! (`action`, `action_entity`, `action_chunk`, `action_approval`, `entity_hold`,
//! `action_lease`) is here, behind a method named for what it does. The rules (who may do
//! what, which move the lifecycle allows, what the engine does next) stay with their
//! callers: the lifecycle, the approvals, the runbooks and the engine. `scripts/test`
//! fails when such a statement appears elsewhere in the core, and `action.state` is
//! written only by [`ActionStore::move_state`].
//!
//! The engine's writes carry its lease as a [`Fence`]: they land only while that owner
//! still holds that epoch.

mod engine;
mod lease;
mod preview;
mod transition;

use runboard_model::{ActionId, ActionState};

pub(crate) use engine::{ChunkClose, ChunkHalf};
pub(crate) use preview::{NewAction, NewChunk, PreviewWrite};
pub(crate) use transition::{MoveOutcome, NewApproval};

use super::ActionError;
use crate::App;
use crate::audit::{NewAuditEntry, append_audit};
use crate::db::{BeginWrite, Pool, on_pool};

/// The action's data in Runboard's store.
pub(crate) struct ActionStore<'a> {
    pool: &'a Pool,
}

/// The engine's hold on an action, as its writes carry it: they land only while `owner`
/// still holds the action's lease at `epoch`, and it has not ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fence<'a> {
    pub(crate) action: &'a ActionId,
    pub(crate) owner: &'a str,
    pub(crate) epoch: i64,
}

/// The SQL condition that a write is still the fence's: `action`, `owner` and `epoch` are
/// the placeholders the caller binds.
fn fenced(action: &str, owner: &str, epoch: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM action_lease fence WHERE fence.action_id = {action} \
         AND fence.owner = {owner} AND fence.epoch = {epoch} AND fence.expires_ms > 0)"
    )
}

/// The SQL condition that a row of `action_entity` is a member of a chunk: `action` and
/// `chunk` are the placeholders the caller binds. A chunk's members are a range of
/// positions, which its row keeps, so the entities' key finds them: an index by chunk would
/// be written once more for each of a million entities a preview writes. A chunk written by
/// a release before the range (during a rolling upgrade) has none, and is found among all
/// the action's entities.
pub(crate) fn in_chunk(action: &str, chunk: &str) -> String {
    let bound = |end: &str, none: &str| {
        format!(
            "COALESCE((SELECT own.{end}_position FROM action_chunk own \
             WHERE own.action_id = {action} AND own.chunk = {chunk}), {none})"
        )
    };
    format!(
        "action_id = {action} AND chunk = {chunk} AND position BETWEEN {} AND {}",
        bound("first", "0"),
        bound("last", "2147483647")
    )
}

/// Ends a lease (`$1` action, `$2` owner, `$3` epoch) without a take-over: the row stays,
/// so the next epoch is still higher.
const END_LEASE: &str =
    "UPDATE action_lease SET expires_ms = 0 WHERE action_id = $1 AND owner = $2 AND epoch = $3";

impl App {
    /// The action's data ([`ActionStore`]).
    pub(crate) fn action_store(&self) -> ActionStore<'_> {
        ActionStore {
            pool: &self.store.pool,
        }
    }
}

impl ActionStore<'_> {
    /// Gives an action that has not ended the pace `text`, with its audit entry; false when
    /// it has ended (and nothing is written).
    pub(crate) async fn set_pace(
        &self,
        id: &ActionId,
        text: &str,
        audit: &NewAuditEntry<'_>,
    ) -> Result<bool, ActionError> {
        let finals: Vec<String> = ActionState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let update = format!(
            "UPDATE action SET pace = $1 WHERE id = $2 AND state NOT IN ({})",
            finals.join(", ")
        );
        Ok(on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(&update)
                .bind(text)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 1 {
                append_audit!(tx, audit);
                tx.commit().await?;
            }
            changed == 1
        }))
    }

    /// Writes the engine's measure of its pace to the action, while the fence holds.
    pub(crate) async fn write_measure(
        &self,
        fence: Fence<'_>,
        execution: &str,
    ) -> Result<(), ActionError> {
        let query = format!(
            "UPDATE action SET execution = $2 WHERE id = $1 AND {fence}",
            fence = fenced("$1", "$3", "$4")
        );
        on_pool!(self.pool, |pool| {
            sqlx::query(&query)
                .bind(fence.action)
                .bind(execution)
                .bind(fence.owner)
                .bind(fence.epoch)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Moves an executing runbook on from step `step` (counted from 0) to the next, with the
    /// audit entry that says how the step ended, if it is still at that step and the fence
    /// holds; false when it is not.
    pub(crate) async fn advance_step(
        &self,
        fence: Fence<'_>,
        step: i32,
        audit: &NewAuditEntry<'_>,
    ) -> Result<bool, ActionError> {
        let query = format!(
            "UPDATE action SET current_step = $2 + 1, updated_at = $3
             WHERE id = $1 AND current_step = $2 AND state = $4 AND {fence}",
            fence = fenced("$1", "$5", "$6"),
        );
        Ok(on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query(&query)
                .bind(fence.action)
                .bind(step)
                .bind(crate::audit::now())
                .bind(ActionState::Executing.as_str())
                .bind(fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved == 1 {
                append_audit!(tx, audit);
                tx.commit().await?;
            }
            moved == 1
        }))
    }
}
