//! An action's fenced lease: who may send and record its calls (SPEC.md, "only the replica
//! holding an action's fenced lease may send or record its calls").
//!
//! One row per action in `action_lease`: an owner (a replica), an epoch that rises at every
//! take-over, and a deadline by the store's clock. The engine's writes for the action carry
//! [`Lease::fence`], so they land only while owner and epoch still match. A heartbeat
//! renews the deadline without waiting on calls; by its own monotonic clock a replica stops
//! sending once the deadline may have passed, so one frozen past it (SIGSTOP, a long GC
//! pause of a VM) finds the lease gone when it wakes, before the store tells it. Each call's
//! body asks once more as the connection takes it (`graphql_client`'s gate): a replica
//! frozen after the engine's check and before the socket holds the call back when it wakes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runboard_model::ActionId;

use crate::App;
use crate::actions::{ActionError, Fence};
use crate::graphql_client::{CALL_TIMEOUT, SendGate};

/// One replica's hold on one action.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) action_id: ActionId,
    /// The replica holding it ([`App::replica`]).
    pub(crate) owner: String,
    /// Rises at every take-over; sent to the service with every call, so that a service
    /// can refuse a call from an older epoch (the fencing token).
    pub(crate) epoch: i64,
    length: Duration,
    /// Whether this replica may send: shared with each call's body, which asks it last.
    window: Arc<SendWindow>,
    /// Taken over from a lease that ran out (its replica gone, or frozen): how much longer
    /// a call that replica sent just before may still be on the wire. Zero otherwise.
    pub(crate) predecessor_in_flight_for: Duration,
}

/// Until when a replica may send an action's calls, by its own monotonic clock.
#[derive(Debug)]
struct SendWindow {
    /// The start of the last renewal plus the lease, less a margin for the store's clock
    /// running ahead.
    until: Mutex<Instant>,
    /// The store said another replica holds it now, or it ended.
    lost: AtomicBool,
}

impl SendGate for SendWindow {
    fn open(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
            && Instant::now() < *self.until.lock().expect("not poisoned")
    }
}

impl Lease {
    fn margin(length: Duration) -> Duration {
        length / 5
    }

    /// Whether this replica may still send calls for the action.
    pub(crate) fn holds(&self) -> bool {
        self.window.open()
    }

    /// What a call's body asks as its bytes leave (see `graphql_client`'s gate).
    pub(crate) fn gate(&self) -> Arc<dyn SendGate> {
        self.window.clone()
    }

    pub(crate) fn lose(&self, why: &str) {
        if !self.window.lost.swap(true, Ordering::SeqCst) {
            tracing::warn!(action = %self.action_id, epoch = self.epoch, %why,
                "lost the action's lease: sending nothing more, dropping what comes back");
        }
    }

    /// The fence the engine's writes for the action carry.
    pub(crate) fn fence(&self) -> Fence<'_> {
        Fence {
            action: &self.action_id,
            owner: &self.owner,
            epoch: self.epoch,
        }
    }

    /// Takes the lease of one action that needs the engine and that no live replica holds
    /// (the action store's `claim_due`); `None` when there is none.
    pub(crate) async fn claim_due(app: &App) -> Result<Option<Lease>, ActionError> {
        let length = app.config.actions.lease;
        let asked = Instant::now();
        let Some(claimed) = app
            .action_store()
            .claim_due(&app.replica, millis(length))
            .await?
        else {
            return Ok(None);
        };
        // A lease that ended (0) had no call left in flight; one that ran out may have.
        let predecessor_in_flight_for = match claimed.before {
            Some((expired_ms, now_ms)) if expired_ms > 0 => Duration::from_millis(
                u64::try_from(expired_ms + millis(CALL_TIMEOUT) - now_ms).unwrap_or(0),
            ),
            _ => Duration::ZERO,
        };
        Ok(Some(Lease {
            action_id: claimed.action_id,
            owner: app.replica.clone(),
            epoch: claimed.epoch,
            length,
            window: Arc::new(SendWindow {
                until: Mutex::new(asked + length - Self::margin(length)),
                lost: AtomicBool::new(false),
            }),
            predecessor_in_flight_for,
        }))
    }

    /// Renews the lease every quarter of its length until it is lost; returns then. Runs
    /// beside the calls, never behind them. A store that does not answer is retried: the
    /// local deadline stops the sending meanwhile if it stays away too long.
    pub(crate) async fn keep(&self, app: &App) {
        loop {
            tokio::time::sleep(self.length / 4).await;
            let asked = Instant::now();
            let renewed = app
                .action_store()
                .renew_lease(self.fence(), millis(self.length))
                .await;
            match renewed {
                Ok(true) => {
                    *self.window.until.lock().expect("not poisoned") =
                        asked + self.length - Self::margin(self.length);
                }
                Ok(false) => {
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
