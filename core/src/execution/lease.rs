//! An action's fenced lease: who may send and record its calls (SPEC.md, "only the replica
//! holding an action's fenced lease may send or record its calls").
//!
//! One row per action in `action_lease`: an owner (a replica), an epoch that rises at every
//! take-over, and a deadline by the store's clock. The engine's writes for the action carry
//! [`Lease::fence`], so they land only while owner and epoch still match. A heartbeat
//! renews the deadline without waiting on calls; by its own monotonic clock a replica stops
//! sending once the deadline may have passed, so one frozen past it (SIGSTOP, a long GC
//! pause of a VM) finds the lease gone when it wakes, before the store tells it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::App;
use crate::actions::ActionError;
use crate::db::on_pool;
use crate::graphql_client::CALL_TIMEOUT;

/// One replica's hold on one action.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) action_id: String,
    /// The replica holding it ([`App::replica`]).
    pub(crate) owner: String,
    /// Rises at every take-over; sent to the service with every call, so that a service
    /// can refuse a call from an older epoch (the fencing token).
    pub(crate) epoch: i64,
    length: Duration,
    /// Until when this replica may send, by its own monotonic clock: the start of the last
    /// renewal plus the lease, less a margin for the store's clock running ahead.
    sendable_until: Mutex<Instant>,
    /// The store said another replica holds it now, or it ended.
    lost: AtomicBool,
    /// Taken over from a lease that ran out (its replica gone, or frozen): how much longer
    /// a call that replica sent just before may still be on the wire. Zero otherwise.
    pub(crate) predecessor_in_flight_for: Duration,
}

/// Ends a lease (`$1` action, `$2` owner, `$3` epoch) without a take-over: the row stays,
/// so the next epoch is still higher.
pub(crate) const END_LEASE: &str =
    "UPDATE action_lease SET expires_ms = 0 WHERE action_id = $1 AND owner = $2 AND epoch = $3";

/// The SQL condition that a write is still this lease's: `$owner` and `$epoch` are the
/// placeholders the caller binds.
pub(crate) fn fence(action: &str, owner: &str, epoch: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM action_lease fence WHERE fence.action_id = {action} \
         AND fence.owner = {owner} AND fence.epoch = {epoch} AND fence.expires_ms > 0)"
    )
}

impl Lease {
    fn margin(length: Duration) -> Duration {
        length / 5
    }

    /// Whether this replica may still send calls for the action.
    pub(crate) fn holds(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && Instant::now() < *self.sendable_until.lock().expect("not poisoned")
    }

    pub(crate) fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            tracing::warn!(action = %self.action_id, epoch = self.epoch, %why,
                "lost the action's lease: sending nothing more, dropping what comes back");
        }
    }

    /// Takes the lease of `action_id` when nobody holds it: never taken, ended, or run out
    /// by the store's clock. `None` when another replica holds it.
    pub(crate) async fn take(app: &App, action_id: &str) -> Result<Option<Lease>, ActionError> {
        let length = app.config.actions.lease;
        let asked = Instant::now();
        let now = app.store.pool.dialect().now_ms();
        let query = format!(
            "INSERT INTO action_lease (action_id, owner, epoch, expires_ms) VALUES ($1, $2, 1, {now} + $3)
             ON CONFLICT (action_id) DO UPDATE
                SET owner = excluded.owner, epoch = action_lease.epoch + 1, expires_ms = excluded.expires_ms
                WHERE action_lease.expires_ms < {now}
             RETURNING epoch"
        );
        // The deadline of the lease taken over, by the store's clock, read first: a lease
        // that ended (0) had no call left in flight, one that ran out may have.
        let before: Option<(i64, i64)> = on_pool!(app.store.pool, |pool| {
            sqlx::query_as(&format!(
                "SELECT expires_ms, {now} FROM action_lease WHERE action_id = $1"
            ))
            .bind(action_id)
            .fetch_optional(pool)
            .await?
        });
        let predecessor_in_flight_for = match before {
            Some((expired_ms, now_ms)) if expired_ms > 0 => Duration::from_millis(
                u64::try_from(expired_ms + millis(CALL_TIMEOUT) - now_ms).unwrap_or(0),
            ),
            _ => Duration::ZERO,
        };
        let epoch: Option<i64> = on_pool!(app.store.pool, |pool| {
            sqlx::query_scalar(&query)
                .bind(action_id)
                .bind(&app.replica)
                .bind(millis(length))
                .fetch_optional(pool)
                .await?
        });
        Ok(epoch.map(|epoch| Lease {
            action_id: action_id.to_owned(),
            owner: app.replica.clone(),
            epoch,
            length,
            sendable_until: Mutex::new(asked + length - Self::margin(length)),
            lost: AtomicBool::new(false),
            predecessor_in_flight_for,
        }))
    }

    /// Renews the lease every quarter of its length until it is lost; returns then. Runs
    /// beside the calls, never behind them. A store that does not answer is retried: the
    /// local deadline stops the sending meanwhile if it stays away too long.
    pub(crate) async fn keep(&self, app: &App) {
        let now = app.store.pool.dialect().now_ms();
        let query = format!(
            "UPDATE action_lease SET expires_ms = {now} + $1
             WHERE action_id = $2 AND owner = $3 AND epoch = $4 AND expires_ms > 0"
        );
        loop {
            tokio::time::sleep(self.length / 4).await;
            let asked = Instant::now();
            let renewed: Result<u64, sqlx::Error> = on_pool!(app.store.pool, |pool| {
                sqlx::query(&query)
                    .bind(millis(self.length))
                    .bind(&self.action_id)
                    .bind(&self.owner)
                    .bind(self.epoch)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            });
            match renewed {
                Ok(1) => {
                    *self.sendable_until.lock().expect("not poisoned") =
                        asked + self.length - Self::margin(self.length);
                }
                Ok(_) => {
                    self.lose("another replica took it over, or it ended");
                    return;
                }
                Err(error) => {
                    tracing::warn!(action = %self.action_id, %error, "could not renew the action's lease; trying again");
                }
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
