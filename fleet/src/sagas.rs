//! Sagas as the shared saga library keeps them: one `saga` row each, moved along its steps.
//! Payments' transfers also append their events here, so the row and the aggregate agree.

use chrono::{DateTime, Utc};

use crate::FleetError;
use crate::catalog::{Kind, STUCK_AFTER};
use crate::db::Tx;
use crate::mission_control::Effect;
use crate::payments;
use crate::service::Service;

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Saga {
    pub(crate) saga_id: String,
    pub(crate) saga_type: String,
    pub(crate) current_step: String,
    pub(crate) completed: bool,
    pub(crate) error_message: Option<String>,
    pub(crate) fault: Option<String>,
    pub(crate) updated_at: DateTime<Utc>,
}

pub(crate) const SAGA_COLUMNS: &str =
    "saga_id, saga_type, current_step, completed, error_message, fault, updated_at";

/// A saga's status as Runboard derives it from its supervisor row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Completed,
    Failed,
    Stuck,
    Running,
}

impl Saga {
    pub(crate) fn status(&self, now: DateTime<Utc>) -> Status {
        if self.completed {
            Status::Completed
        } else if self.error_message.is_some() {
            Status::Failed
        } else if now - self.updated_at > chrono::Duration::from_std(STUCK_AFTER).expect("small") {
            Status::Stuck
        } else {
            Status::Running
        }
    }

    fn steps(&self, service: &Service) -> &'static [&'static str] {
        service
            .spec
            .saga_type(&self.saga_type)
            .map_or(&[], |t| t.steps)
    }

    fn next_step(&self, service: &Service) -> Option<&'static str> {
        let steps = self.steps(service);
        let at = steps.iter().position(|s| *s == self.current_step)?;
        steps.get(at + 1).copied()
    }
}

pub(crate) async fn find(tx: &mut Tx, saga_id: &str) -> Result<Option<Saga>, FleetError> {
    tx.fetch_optional(
        &format!("SELECT {SAGA_COLUMNS} FROM saga WHERE saga_id = $1"),
        &[saga_id.into()],
    )
    .await
    .map_err(Into::into)
}

impl Service {
    /// Starts a saga of `saga_type` on its first step.
    pub(crate) async fn start_saga(
        &self,
        tx: &mut Tx,
        saga_type: &str,
        now: DateTime<Utc>,
    ) -> Result<String, FleetError> {
        let saga_id = uuid::Uuid::new_v4().to_string();
        let first = self
            .spec
            .saga_type(saga_type)
            .and_then(|t| t.steps.first())
            .ok_or_else(|| FleetError::Invalid(format!("no saga type {saga_type}")))?;
        tx.execute(
            "INSERT INTO saga (saga_id, saga_type, current_step, completed, error_message, fault, \
             stalled, created_at, updated_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, $6)",
            &[
                saga_id.clone().into(),
                saga_type.into(),
                (*first).into(),
                false.into(),
                false.into(),
                now.into(),
            ],
        )
        .await?;
        if self.spec.kind == Kind::Payments {
            payments::initiate_random(tx, self.db.dialect(), &saga_id, now).await?;
        }
        Ok(saga_id)
    }

    /// Finishes the saga's current step: on to the next one, or completed after the last.
    pub(crate) async fn advance(
        &self,
        tx: &mut Tx,
        saga: &Saga,
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        if self.spec.kind == Kind::Payments {
            payments::step_done(
                tx,
                self.db.dialect(),
                &saga.saga_id,
                &saga.current_step,
                now,
            )
            .await?;
        }
        match saga.next_step(self) {
            Some(next) => {
                tx.execute(
                    "UPDATE saga SET current_step = $2, updated_at = $3 WHERE saga_id = $1",
                    &[saga.saga_id.clone().into(), next.into(), now.into()],
                )
                .await?
            }
            None => {
                tx.execute(
                    "UPDATE saga SET completed = $2, error_message = NULL, fault = NULL, \
                     updated_at = $3 WHERE saga_id = $1",
                    &[saga.saga_id.clone().into(), true.into(), now.into()],
                )
                .await?
            }
        };
        Ok(())
    }

    /// Walks the saga through its remaining steps to completion, as a retry does once
    /// the fix is deployed: each step's event where the service keeps events, then the
    /// saga's row moved to done in one write. False when the saga's step is not one of its
    /// type's, so there is nothing to walk.
    pub(crate) async fn run_to_completion(
        &self,
        tx: &mut Tx,
        saga: &Saga,
        now: DateTime<Utc>,
    ) -> Result<bool, FleetError> {
        let steps = self.steps_from(saga);
        let Some(last) = steps.last() else {
            return Ok(false);
        };
        if self.spec.kind == Kind::Payments {
            for step in &steps {
                payments::step_done(tx, self.db.dialect(), &saga.saga_id, step, now).await?;
            }
        }
        tx.execute(
            "UPDATE saga SET current_step = $2, completed = $3, error_message = NULL, fault = NULL, \
             stalled = $4, updated_at = $5 WHERE saga_id = $1",
            &[
                saga.saga_id.clone().into(),
                (*last).into(),
                true.into(),
                false.into(),
                now.into(),
            ],
        )
        .await?;
        Ok(true)
    }

    fn steps_from(&self, saga: &Saga) -> Vec<&'static str> {
        let steps = saga.steps(self);
        let at = steps
            .iter()
            .position(|s| *s == saga.current_step)
            .unwrap_or(steps.len());
        steps[at..].to_vec()
    }

    /// The saga hits `fault` at its current step.
    pub(crate) async fn fail(
        &self,
        tx: &mut Tx,
        saga: &Saga,
        fault: &str,
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        tx.execute(
            "UPDATE saga SET error_message = $2, fault = $2, updated_at = $3 WHERE saga_id = $1",
            &[saga.saga_id.clone().into(), fault.into(), now.into()],
        )
        .await?;
        self.record_transfer_event(
            tx,
            &saga.saga_id,
            payments::Event::detail("failed", fault),
            now,
        )
        .await?;
        Ok(())
    }

    /// Retries one saga: failed and stuck ones are moved on, anything else is skipped.
    pub(crate) async fn retry_saga(
        &self,
        tx: &mut Tx,
        saga_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Effect, FleetError> {
        let Some(saga) = find(tx, saga_id).await? else {
            return Ok(Effect::skipped(saga_id, "no saga with this id"));
        };
        let fixed = self.fix_deployed();
        let description = match saga.status(now) {
            Status::Failed => format!(
                "retry {} at {} (failed: {})",
                saga.saga_type,
                saga.current_step,
                saga.error_message.as_deref().unwrap_or_default()
            ),
            Status::Stuck => format!(
                "resume stuck {} at {} (no progress since {})",
                saga.saga_type,
                saga.current_step,
                saga.updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            status => return Ok(skipped_for(&saga, status)),
        };
        let description = if fixed {
            format!("{description}; runs to completion with the fix deployed")
        } else {
            description
        };
        let money = self.money_of(tx, &saga.saga_id, false).await?;
        self.record_transfer_event(tx, &saga.saga_id, payments::Event::kind("retried"), now)
            .await?;
        let completed = fixed && self.run_to_completion(tx, &saga, now).await?;
        if !completed {
            // The fault stays behind: without the fix the next step hits it again.
            tx.execute(
                "UPDATE saga SET error_message = NULL, stalled = $2, updated_at = $3 WHERE saga_id = $1",
                &[saga.saga_id.clone().into(), false.into(), now.into()],
            )
            .await?;
        }
        Ok(Effect::new(&saga.saga_id, description, money))
    }

    /// Marks one failed or stuck saga completed without running its remaining steps.
    pub(crate) async fn force_complete_saga(
        &self,
        tx: &mut Tx,
        saga_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Effect, FleetError> {
        let Some(saga) = find(tx, saga_id).await? else {
            return Ok(Effect::skipped(saga_id, "no saga with this id"));
        };
        let status = saga.status(now);
        if !matches!(status, Status::Failed | Status::Stuck) {
            return Ok(skipped_for(&saga, status));
        }
        let money = self.money_of(tx, &saga.saga_id, true).await?;
        let released = match &money {
            Some((amount, currency)) => format!("; releases {amount} {currency} held"),
            None => String::new(),
        };
        let description = format!(
            "force-complete {} {} at {}{released}: {reason}",
            if status == Status::Failed {
                "failed"
            } else {
                "stuck"
            },
            saga.saga_type,
            saga.current_step
        );
        tx.execute(
            "UPDATE saga SET completed = $2, error_message = NULL, fault = NULL, stalled = $3, \
             note = $4, updated_at = $5 WHERE saga_id = $1",
            &[
                saga.saga_id.clone().into(),
                true.into(),
                false.into(),
                reason.into(),
                now.into(),
            ],
        )
        .await?;
        self.record_transfer_event(
            tx,
            &saga.saga_id,
            payments::Event::detail("force_completed", reason),
            now,
        )
        .await?;
        Ok(Effect::new(&saga.saga_id, description, money))
    }

    /// The money a saga moves (`held_only`: the money it holds), where the service has any.
    /// Payments keeps its transfers as events: what happens to a saga is appended there too.
    async fn record_transfer_event(
        &self,
        tx: &mut Tx,
        saga_id: &str,
        event: payments::Event,
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        if self.spec.kind == Kind::Payments {
            payments::append(tx, self.db.dialect(), saga_id, event, now).await?;
        }
        Ok(())
    }

    async fn money_of(
        &self,
        tx: &mut Tx,
        saga_id: &str,
        held_only: bool,
    ) -> Result<Option<(rust_decimal::Decimal, String)>, FleetError> {
        if self.spec.kind != Kind::Payments {
            return Ok(None);
        }
        let Some(transfer) = payments::load(tx, saga_id).await? else {
            return Ok(None);
        };
        let amount = if held_only {
            transfer.held
        } else {
            transfer.amount
        };
        Ok(Some((amount, transfer.currency)).filter(|(a, _)| !a.is_zero()))
    }
}

fn skipped_for(saga: &Saga, status: Status) -> Effect {
    let status = match status {
        Status::Completed => "completed",
        Status::Failed => "failed",
        Status::Stuck => "stuck",
        Status::Running => "running",
    };
    Effect::skipped(&saga.saga_id, &format!("{} is {status}", saga.saga_type))
}
