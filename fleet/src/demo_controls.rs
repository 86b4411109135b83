//! The demo controls each service offers beside its mission control (they take no
//! `dryRun`): the fleet's fix switch, the payout worker, injected errors, legal holds, and
//! latency.

use async_graphql::{Context, ID, Object};

use crate::mission_control::{distinct, parts};

#[derive(Default)]
pub(crate) struct DemoMutations;

#[Object]
impl DemoMutations {
    /// Demo control, not a mission-control action (it takes no dryRun): switches the whole
    /// fleet's "fix deployed" flag. With it on, retried sagas and payout items run to
    /// completion; with it off, they fail again with the same error. Returns the new setting.
    async fn set_fix_deployed(&self, ctx: &Context<'_>, on: bool) -> async_graphql::Result<bool> {
        let (service, _) = parts(ctx)?;
        service.set_fix_deployed(on);
        Ok(on)
    }

    /// Demo control, not a mission-control action: stops (`false`) or resumes (`true`) the
    /// worker of payouts' batch, so that it stalls half-way as the Friday batch did.
    /// Returns the new setting; an error on a service with no payout batch.
    async fn set_payout_worker(
        &self,
        ctx: &Context<'_>,
        running: bool,
    ) -> async_graphql::Result<bool> {
        let (service, _) = parts(ctx)?;
        if !service.set_payout_worker(running) {
            return Err(format!("{} has no payout batch; ask payouts", service.spec.name).into());
        }
        Ok(running)
    }

    /// Demo control, not a mission-control action: starts `count` sagas (1 to 1,000) that
    /// fail with `message`, as a fault nobody has seen yet would make them, at `atStep`
    /// (their first step if not given) once the steps before it are done: on payments,
    /// `atStep: "post_to_ledger"` leaves transfers failed and holding their money.
    /// Returns their ids.
    async fn inject_error(
        &self,
        ctx: &Context<'_>,
        message: String,
        #[graphql(default = 1)] count: i32,
        at_step: Option<String>,
    ) -> async_graphql::Result<Vec<ID>> {
        let (service, _) = parts(ctx)?;
        let count = u32::try_from(count)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or("count must be 1 to 1000")?;
        if message.trim().is_empty() {
            return Err("message must say what failed".into());
        }
        let ids = service
            .inject_error(&message, count, at_step.as_deref().map(str::trim))
            .await?;
        Ok(ids.into_iter().map(ID).collect())
    }

    /// Demo control, not a mission-control action: puts exactly these entities (or, for
    /// `transferFunds`, accounts) of this service on legal hold (an empty list lifts every
    /// hold). A real call naming one is refused as a whole, as a service refuses an entity it
    /// objects to; dry runs pass.
    /// Returns how many are held.
    async fn set_legal_hold(&self, ctx: &Context<'_>, ids: Vec<ID>) -> async_graphql::Result<i32> {
        let (service, _) = parts(ctx)?;
        let ids = distinct(ids);
        let held = i32::try_from(ids.len()).unwrap_or(i32::MAX);
        service.set_legal_hold(ids);
        Ok(held)
    }

    /// Demo control, not a mission-control action: every mission-control call of this
    /// service (dry runs too) takes `millis` longer before it is answered, as a service under
    /// load would; 0 makes it fast again. Returns the new latency.
    async fn set_latency(&self, ctx: &Context<'_>, millis: i32) -> async_graphql::Result<i32> {
        let (service, _) = parts(ctx)?;
        let latency = u64::try_from(millis)
            .ok()
            .filter(|ms| *ms <= 60_000)
            .ok_or("millis must be 0 to 60000")?;
        service.set_latency(std::time::Duration::from_millis(latency));
        Ok(millis)
    }
}
