//! Keeping an action's calls to its pace, braking when the service's answers slow down or
//! fail, and measuring its rate for the ETA (SPEC.md, "Pace").
//!
//! The pace is read from the store as the calls go, not kept from the start: an operator
//! may change it on any replica, and whichever replica holds the lease honours it. The
//! brake and the rate live with the sending replica, and are written to the action (a
//! fenced write) for every replica's pages to show.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runboard_model::{Action, ActionId, ActionState, Execution, Pace};

use super::Lease;
use crate::App;
use crate::actions::{ActionError, read_pace};
use crate::db::on_pool;

/// How often the pace is read again while calls wait for their turn.
const PACE_READ_EVERY: Duration = Duration::from_millis(100);
/// Answers judged together: when half of them were slow or failed, the brake halves the
/// calls in flight.
const JUDGED_ANSWERS: usize = 4;
/// Healthy answers in a row, per call allowed in flight, before the brake widens again.
const HEALTHY_TO_WIDEN: usize = 2;
/// How far back the rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the measure is written to the action.
const WRITE_EVERY: Duration = Duration::from_millis(500);

/// Lets each call leave once the pace has bought its entities since the last one left.
pub(super) struct Pacer {
    turn: tokio::sync::Mutex<Turn>,
    service_pace: Pace,
}

struct Turn {
    last_left: Option<Instant>,
    pace: Pace,
    read_at: Option<Instant>,
}

impl Pacer {
    pub(super) fn new(app: &App, action: &Action) -> Self {
        Self {
            turn: tokio::sync::Mutex::new(Turn {
                last_left: None,
                pace: Pace::default(),
                read_at: None,
            }),
            service_pace: app.service_pace(&action.service),
        }
    }

    /// Waits until a call of `entities` may leave at the action's pace as the store has it
    /// now (read again while waiting, so that a new pace counts at once), then takes its
    /// turn. Returns early when the action no longer executes: the call's own check then
    /// keeps it from leaving.
    pub(super) async fn wait_turn(
        &self,
        app: &App,
        action: &Action,
        entities: usize,
    ) -> Result<(), ActionError> {
        let mut turn = self.turn.lock().await;
        loop {
            if turn
                .read_at
                .is_none_or(|at| at.elapsed() >= PACE_READ_EVERY)
            {
                let (own, executing) = stored_pace(app, &action.id).await?;
                turn.pace = own.or(self.service_pace);
                turn.read_at = Some(Instant::now());
                if !executing {
                    return Ok(());
                }
            }
            let Some(last) = turn.last_left else { break };
            let due = last + turn.pace.time_for(entities as u64, 1);
            let now = Instant::now();
            if now >= due {
                break;
            }
            tokio::time::sleep((due - now).min(PACE_READ_EVERY)).await;
        }
        turn.last_left = Some(Instant::now());
        Ok(())
    }
}

/// The action's own pace and whether it still executes, as the store has them.
async fn stored_pace(app: &App, action_id: &ActionId) -> Result<(Pace, bool), ActionError> {
    let (pace, state): (Option<String>, String) = on_pool!(app.store.pool, |pool| {
        sqlx::query_as("SELECT pace, state FROM action WHERE id = $1")
            .bind(action_id)
            .fetch_one(pool)
            .await?
    });
    Ok((
        read_pace(pace.as_deref()),
        state == ActionState::Executing.as_str(),
    ))
}

/// The calls one action may have in flight now, as the service's answers allow, and its
/// rate.
pub(super) struct Brake {
    state: Mutex<BrakeState>,
    freed: tokio::sync::Notify,
    concurrency: usize,
    slow: Duration,
}

struct BrakeState {
    limit: usize,
    in_flight: usize,
    /// Since the limit last changed: whether each answer was slow or failed.
    judged: VecDeque<bool>,
    healthy_in_a_row: usize,
    note: Option<String>,
    /// When each result came in, and how many entities it had; the oldest first.
    results: VecDeque<(Instant, u64)>,
    written_at: Option<Instant>,
    /// The brake changed since the last write.
    changed: bool,
    /// Rises at each change of the limit: only the answers of calls sent since count
    /// towards the next.
    generation: u64,
}

/// A call allowed in flight; the next may go once it is dropped.
pub(super) struct InFlight<'a> {
    brake: &'a Brake,
    generation: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.brake.state.lock().expect("not poisoned").in_flight -= 1;
        self.brake.freed.notify_waiters();
    }
}

impl InFlight<'_> {
    /// Judges this call's answer: slow (over `actions.brake_latency`) or failed for a cause
    /// on the service's side (a timeout, a 5xx) counts against the service.
    pub(super) fn answered(&self, took: Duration, failed_transiently: bool) {
        self.brake
            .answered(self.generation, took, failed_transiently);
    }
}

impl Brake {
    pub(super) fn new(app: &App, concurrency: usize) -> Self {
        Self {
            state: Mutex::new(BrakeState {
                limit: concurrency,
                in_flight: 0,
                judged: VecDeque::new(),
                healthy_in_a_row: 0,
                note: None,
                results: VecDeque::new(),
                written_at: None,
                changed: false,
                generation: 0,
            }),
            freed: tokio::sync::Notify::new(),
            concurrency,
            slow: app.config.actions.brake_latency,
        }
    }

    /// Waits until one more call may be in flight.
    pub(super) async fn enter(&self) -> InFlight<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state.lock().expect("not poisoned");
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    return InFlight {
                        brake: self,
                        generation: state.generation,
                    };
                }
            }
            freed.await;
        }
    }

    fn answered(&self, generation: u64, took: Duration, failed_transiently: bool) {
        let unhealthy = failed_transiently || took > self.slow;
        let mut state = self.state.lock().expect("not poisoned");
        // A call sent before the last change says nothing about the new limit.
        if generation != state.generation {
            return;
        }
        state.judged.push_back(unhealthy);
        if state.judged.len() > JUDGED_ANSWERS {
            state.judged.pop_front();
        }
        state.healthy_in_a_row = if unhealthy {
            0
        } else {
            state.healthy_in_a_row + 1
        };
        let bad = state.judged.iter().filter(|u| **u).count();
        if state.judged.len() >= JUDGED_ANSWERS.min(state.limit.max(2))
            && bad * 2 >= state.judged.len()
            && state.limit > 1
        {
            state.limit /= 2;
            state.note = Some(format!(
                "braking: the service's answers slowed down or failed ({bad} of the last {} took over {} or failed); {} of {} calls in flight",
                state.judged.len(),
                humantime::format_duration(self.slow),
                state.limit,
                self.concurrency
            ));
            state.judged.clear();
            state.healthy_in_a_row = 0;
            state.generation += 1;
            state.changed = true;
        } else if state.limit < self.concurrency
            && state.healthy_in_a_row >= HEALTHY_TO_WIDEN * state.limit
        {
            state.limit = (state.limit * 2).min(self.concurrency);
            state.note = (state.limit < self.concurrency).then(|| {
                format!(
                    "widening again as the service's answers recover: {} of {} calls in flight",
                    state.limit, self.concurrency
                )
            });
            state.judged.clear();
            state.healthy_in_a_row = 0;
            state.generation += 1;
            state.changed = true;
        }
        drop(state);
        self.freed.notify_waiters();
    }

    /// Counts `entities` with a result, and writes the measure to the action when it is due
    /// or the brake changed.
    pub(super) async fn recorded(
        &self,
        app: &App,
        lease: &Lease,
        entities: u64,
    ) -> Result<(), ActionError> {
        let execution = {
            let mut state = self.state.lock().expect("not poisoned");
            let now = Instant::now();
            state.results.push_back((now, entities));
            while state
                .results
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
            {
                state.results.pop_front();
            }
            let due = state
                .written_at
                .is_none_or(|at| at.elapsed() >= WRITE_EVERY);
            if !due && !state.changed {
                return Ok(());
            }
            state.written_at = Some(now);
            state.changed = false;
            self.execution(&state, now)
        };
        write_measure(app, lease, &execution).await
    }

    fn execution(&self, state: &BrakeState, now: Instant) -> Execution {
        // From the first result in the window on: the time before a run's first result (the
        // recheck's dry run, the canary's round trip) is not the rate the rest goes at, and
        // an ETA that counted it would put the end too late on a slow start.
        let rate = state.results.front().and_then(|&(first_at, _)| {
            let entities: u64 = state.results.iter().skip(1).map(|(_, n)| n).sum();
            let span = now.duration_since(first_at).as_secs_f64();
            (span > 0.0 && entities > 0).then(|| entities as f64 / span)
        });
        Execution {
            entities_per_second: rate,
            in_flight: state.limit as u32,
            concurrency: self.concurrency as u32,
            brake: state.note.clone(),
            measured_at: Some(chrono::Utc::now()),
        }
    }
}

/// Writes the engine's measure to the action, while the lease holds.
async fn write_measure(app: &App, lease: &Lease, execution: &Execution) -> Result<(), ActionError> {
    let text = serde_json::to_string(execution).expect("a measure serializes");
    app.action_store().write_measure(lease.fence(), &text).await
}
