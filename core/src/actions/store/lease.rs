//! The engine's lease of an action (`action_lease`): claimed, renewed and ended here; what
//! it means and how the engine keeps it is `crate::execution::Lease`'s.

use runboard_model::{ActionId, ActionState};

use super::{ActionStore, END_LEASE, Fence};
use crate::actions::ActionError;
use crate::db::on_pool;

/// A lease taken by [`ActionStore::claim_due`].
pub(crate) struct Claimed {
    pub(crate) action_id: ActionId,
    pub(crate) epoch: i64,
    /// The deadline of the lease taken over and the store's time, both in ms by the store's
    /// clock, read just before; `None` when it had none (never taken). A deadline of 0 is
    /// a lease that ended.
    pub(crate) before: Option<(i64, i64)>,
}

impl ActionStore<'_> {
    /// Takes the lease, for `owner` and `length_ms`, of one action that needs the engine
    /// (approved, executing or being cancelled) and that no live replica holds: the longest
    /// untouched first, of a few, so that two replicas asking at once each find one.
    pub(crate) async fn claim_due(
        &self,
        owner: &str,
        length_ms: i64,
    ) -> Result<Option<Claimed>, ActionError> {
        let query = format!(
            "SELECT a.id FROM action a LEFT JOIN action_lease l ON l.action_id = a.id
             WHERE a.state IN ($1, $2, $3) AND (l.action_id IS NULL OR l.expires_ms < {now})
             ORDER BY a.updated_at LIMIT 5",
            now = self.pool.dialect().now_ms()
        );
        let candidates: Vec<ActionId> = on_pool!(self.pool, |pool| {
            sqlx::query_scalar(&query)
                .bind(ActionState::Approved.as_str())
                .bind(ActionState::Executing.as_str())
                .bind(ActionState::Cancelling.as_str())
                .fetch_all(pool)
                .await?
        });
        for action_id in candidates {
            if let Some(claimed) = self.take_lease(action_id, owner, length_ms).await? {
                return Ok(Some(claimed));
            }
        }
        Ok(None)
    }

    /// Takes the lease of `action_id` when nobody holds it: never taken, ended, or run out
    /// by the store's clock. `None` when another replica holds it.
    async fn take_lease(
        &self,
        action_id: ActionId,
        owner: &str,
        length_ms: i64,
    ) -> Result<Option<Claimed>, ActionError> {
        let now = self.pool.dialect().now_ms();
        let query = format!(
            "INSERT INTO action_lease (action_id, owner, epoch, expires_ms) VALUES ($1, $2, 1, {now} + $3)
             ON CONFLICT (action_id) DO UPDATE
                SET owner = excluded.owner, epoch = action_lease.epoch + 1, expires_ms = excluded.expires_ms
                WHERE action_lease.expires_ms < {now}
             RETURNING epoch"
        );
        let before: Option<(i64, i64)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(&format!(
                "SELECT expires_ms, {now} FROM action_lease WHERE action_id = $1"
            ))
            .bind(&action_id)
            .fetch_optional(pool)
            .await?
        });
        let epoch: Option<i64> = on_pool!(self.pool, |pool| {
            sqlx::query_scalar(&query)
                .bind(&action_id)
                .bind(owner)
                .bind(length_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(epoch.map(|epoch| Claimed {
            action_id,
            epoch,
            before,
        }))
    }

    /// Moves the fence's deadline to `length_ms` from now by the store's clock, unless the
    /// lease was taken over or ended meanwhile: false then.
    pub(crate) async fn renew_lease(
        &self,
        fence: Fence<'_>,
        length_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let query = format!(
            "UPDATE action_lease SET expires_ms = {now} + $1
             WHERE action_id = $2 AND owner = $3 AND epoch = $4 AND expires_ms > 0",
            now = self.pool.dialect().now_ms()
        );
        on_pool!(self.pool, |pool| {
            sqlx::query(&query)
                .bind(length_ms)
                .bind(fence.action)
                .bind(fence.owner)
                .bind(fence.epoch)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Ends the lease without a change of state: the action moved on meanwhile.
    pub(crate) async fn end_lease(&self, fence: Fence<'_>) -> Result<(), ActionError> {
        on_pool!(self.pool, |pool| {
            sqlx::query(END_LEASE)
                .bind(fence.action)
                .bind(fence.owner)
                .bind(fence.epoch)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
