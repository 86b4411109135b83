//! The engine's writes of an action's chunks and entities as its calls go: each carries
//! the lease's [`Fence`].

use runboard_model::{ActionState, EntityState, IdempotencyKey, StepState};

use super::{ActionStore, Fence, fenced, in_chunk};
use crate::actions::{ActionError, ChunkOutcome};
use crate::db::{BeginWrite, on_pool};

/// One half of a refused chunk, stored as a chunk of its own.
pub(crate) struct ChunkHalf {
    pub(crate) number: i32,
    pub(crate) key: IdempotencyKey,
    pub(crate) members: Vec<String>,
    /// The first and last position of its members.
    pub(crate) positions: (i32, i32),
    pub(crate) planned: Option<String>,
}

/// How a chunk's call ended, as [`ActionStore::close_chunk`] writes it.
pub(crate) struct ChunkClose<'a> {
    pub(crate) chunk: i32,
    /// A runbook's step (counted from 0) and its one entity; `None` for a mutation's chunk.
    pub(crate) runbook_step: Option<(u32, &'a str)>,
    /// `succeeded`, `failed` or `split`.
    pub(crate) chunk_state: &'a str,
    /// What its entities became; `None` while they have more to go through (a runbook's
    /// step before the last, a split).
    pub(crate) entity_state: Option<EntityState>,
    pub(crate) outcome: &'a ChunkOutcome,
    pub(crate) attempts: u32,
    pub(crate) members: usize,
    /// A refused chunk's two halves, which take its entities.
    pub(crate) halves: Option<[ChunkHalf; 2]>,
}

impl ActionStore<'_> {
    /// Marks a chunk as sent under the fence, if the action is still executing and the
    /// lease still the fence's by the store's clock; false when it may not be sent. On
    /// PostgreSQL the action's row is share-locked meanwhile, so a cancel commits either
    /// before this (and nothing is sent) or after it (and the call counts as in flight).
    pub(crate) async fn mark_chunk_sent(
        &self,
        fence: Fence<'_>,
        chunk: i32,
    ) -> Result<bool, ActionError> {
        let query = format!(
            "UPDATE action_chunk SET sent_epoch = $3
             WHERE action_id = $1 AND chunk = $2 AND state = $5
               AND EXISTS (SELECT 1 FROM action a JOIN action_lease l ON l.action_id = a.id
                           WHERE a.id = $1 AND a.state = $6 AND l.owner = $4 AND l.epoch = $3
                             AND l.expires_ms > {now} {lock})",
            now = self.pool.dialect().now_ms(),
            lock = self.pool.dialect().share_lock("a"),
        );
        let marked = on_pool!(self.pool, |pool| {
            sqlx::query(&query)
                .bind(fence.action)
                .bind(chunk)
                .bind(fence.epoch)
                .bind(fence.owner)
                .bind(EntityState::Pending.as_str())
                .bind(ActionState::Executing.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(marked == 1)
    }

    /// Closes a pending chunk with its call's outcome, in one transaction under the fence:
    /// its entities take their new state and the action's counters move; a runbook entity
    /// that failed has its later steps skipped; a split chunk's halves become chunks of
    /// their own. False when the fence no longer holds (or the chunk was closed): nothing
    /// is written then.
    pub(crate) async fn close_chunk(
        &self,
        fence: Fence<'_>,
        close: ChunkClose<'_>,
    ) -> Result<bool, ActionError> {
        let now = crate::audit::now();
        let attempts = i32::try_from(close.attempts).unwrap_or(i32::MAX);
        let members = i64::try_from(close.members).unwrap_or(i64::MAX);
        let outcome_json = serde_json::to_string(close.outcome).expect("an outcome serializes");
        let close_chunk = format!(
            "UPDATE action_chunk SET state = $1, outcome = $2, attempts = attempts + $3, updated_at = $4
             WHERE action_id = $5 AND chunk = $6 AND state = $7 AND {fence}",
            fence = fenced("$5", "$8", "$9"),
        );
        let close_members = format!(
            "UPDATE action_entity SET state = $2, attempts = attempts + $3, updated_at = $4 WHERE {}",
            in_chunk("$5", "$1")
        );
        let id = fence.action;
        let written = on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let written = sqlx::query(&close_chunk)
                .bind(close.chunk_state)
                .bind(&outcome_json)
                .bind(attempts)
                .bind(now)
                .bind(id)
                .bind(close.chunk)
                .bind(EntityState::Pending.as_str())
                .bind(fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if written == 1 {
                if let Some(state) = close.entity_state {
                    // The members first ($1): the two kinds name them by different columns.
                    let entity_rows = match close.runbook_step {
                        Some((_, entity)) => sqlx::query(
                            "UPDATE action_entity SET state = $2, attempts = attempts + $3, updated_at = $4
                             WHERE action_id = $5 AND entity_id = $1",
                        )
                        .bind(entity),
                        None => sqlx::query(&close_members).bind(close.chunk),
                    };
                    entity_rows
                        .bind(state.as_str())
                        .bind(attempts)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if let (Some((step, entity)), EntityState::Failed) = (close.runbook_step, state)
                    {
                        let why = ChunkOutcome::Failed(format!(
                            "not sent: step {} failed for it",
                            step + 1
                        ));
                        sqlx::query(
                            "UPDATE action_chunk SET state = $1, outcome = $2, updated_at = $3
                             WHERE action_id = $4 AND entity_id = $5 AND step > $6 AND state = $7",
                        )
                        .bind(StepState::Skipped.as_str())
                        .bind(serde_json::to_string(&why).expect("an outcome serializes"))
                        .bind(now)
                        .bind(id)
                        .bind(entity)
                        .bind(i32::try_from(step).unwrap_or(i32::MAX))
                        .bind(EntityState::Pending.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    let counter = if state == EntityState::Succeeded {
                        "succeeded_count"
                    } else {
                        "failed_count"
                    };
                    sqlx::query(&format!(
                        "UPDATE action SET {counter} = {counter} + $1 WHERE id = $2"
                    ))
                    .bind(members)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                for half in close.halves.iter().flatten() {
                    sqlx::query(
                        "INSERT INTO action_chunk (action_id, chunk, parent, state, members, idempotency_key,
                             planned, outcome, attempts, sent_epoch, updated_at, first_position, last_position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, NULL, $8, $9, $10)",
                    )
                    .bind(id)
                    .bind(half.number)
                    .bind(close.chunk)
                    .bind(EntityState::Pending.as_str())
                    .bind(i32::try_from(half.members.len()).unwrap_or(i32::MAX))
                    .bind(&half.key)
                    .bind(&half.planned)
                    .bind(now)
                    .bind(half.positions.0)
                    .bind(half.positions.1)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE action_entity SET chunk = $1, attempts = attempts + $2, updated_at = $3
                         WHERE action_id = $4 AND chunk = $5 AND position BETWEEN $6 AND $7",
                    )
                    .bind(half.number)
                    .bind(attempts)
                    .bind(now)
                    .bind(id)
                    .bind(close.chunk)
                    .bind(half.positions.0)
                    .bind(half.positions.1)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            written
        });
        Ok(written == 1)
    }
}
