//! Each service's mission-control GraphQL endpoint (`POST /graphql`).
//!
//! Every mutation that changes state takes `dryRun: Boolean!` and returns a
//! `MissionControlResult`. A dry run runs the very same code in a transaction that is
//! rolled back, so its effects are exactly what the real call would do. A real call
//! stores its response under its `Idempotency-Key` in the same transaction as its effects,
//! so a repeated key replays that response and applies nothing. Every mutation call is
//! logged in `mission_control_call`.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ID, MergedObject, Object, ObjectType, Schema, SimpleObject,
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Extension;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::callers::{self, Caller, CallerCheck, ProviderKeys};
use crate::catalog::Kind;
use crate::db::{Arg, Dialect, Tx};
use crate::demo_controls::DemoMutations;
use crate::payments::{self, ManualTransfer, Transfer};
use crate::payouts;
use crate::service::Service;
use crate::{CallRecord, FleetError};

mod objects;

use objects::{OnboardingMutation, PaymentsMutation, PaymentsQuery, PayoutsMutation, ServiceQuery};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SimpleObject)]
pub(crate) struct MissionControlResult {
    pub(crate) dry_run: bool,
    pub(crate) effects: Vec<Effect>,
}

/// What a call does (or, in a dry run, would do) to one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SimpleObject)]
pub(crate) struct Effect {
    pub(crate) entity_id: ID,
    pub(crate) description: String,
    /// Money the effect moves or releases, as decimal text.
    pub(crate) amount: Option<String>,
    pub(crate) currency: Option<String>,
}

impl Effect {
    pub(crate) fn new(
        entity_id: &str,
        description: String,
        money: Option<(Decimal, String)>,
    ) -> Effect {
        let (amount, currency) = money.map(|(a, c)| (a.to_string(), c)).unzip();
        Effect {
            entity_id: entity_id.into(),
            description,
            amount,
            currency,
        }
    }

    pub(crate) fn skipped(entity_id: &str, why: &str) -> Effect {
        Effect::new(entity_id, format!("skipped: {why}"), None)
    }
}

/// The HTTP request a mutation arrived in: what the call log keeps about it.
pub(crate) struct Call {
    received_at: DateTime<Utc>,
    idempotency_key: Option<String>,
    action: Option<String>,
    requester: Option<String>,
    approvers: Option<String>,
    replica: Option<String>,
    lease_epoch: Option<i64>,
    /// The subject of the provider token the call carried.
    caller: Option<String>,
    variables: String,
}

impl Call {
    fn received(
        headers: &HeaderMap,
        request: &async_graphql::Request,
        caller: Option<String>,
    ) -> Call {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Call {
            received_at: now(),
            idempotency_key: header("idempotency-key"),
            action: header("x-runboard-action"),
            requester: header("x-runboard-requester"),
            approvers: header("x-runboard-approvers"),
            replica: header("x-runboard-replica"),
            lease_epoch: header("x-runboard-lease-epoch").and_then(|e| e.parse().ok()),
            caller,
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
        }
    }
}

/// Now, to the microsecond both databases keep.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

enum Outcome {
    Applied(MissionControlResult),
    /// A dry run, or a repeated idempotency key answered from the first response.
    NotApplied(MissionControlResult),
}

const LOG_CALL: &str = "INSERT INTO mission_control_call (received_at, idempotency_key, mutation, \
    variables, dry_run, applied, action, requester, approvers, error, replica, lease_epoch, caller) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

fn log_args(
    call: &Call,
    mutation: &str,
    dry_run: bool,
    applied: bool,
    error: Option<String>,
) -> [Arg; 13] {
    [
        call.received_at.into(),
        call.idempotency_key.clone().into(),
        mutation.into(),
        call.variables.clone().into(),
        dry_run.into(),
        applied.into(),
        call.action.clone().into(),
        call.requester.clone().into(),
        call.approvers.clone().into(),
        error.into(),
        call.replica.clone().into(),
        call.lease_epoch.into(),
        call.caller.clone().into(),
    ]
}

impl Service {
    /// Runs one mission-control mutation: `apply` makes its effects inside a transaction
    /// that commits only for a real call not seen before.
    async fn mission_control(
        &self,
        call: &Call,
        mutation: &str,
        dry_run: bool,
        apply: impl AsyncFnOnce(&mut Tx, DateTime<Utc>) -> Result<Vec<Effect>, FleetError>,
    ) -> Result<MissionControlResult, FleetError> {
        // A slow service (a demo control) is slow before anything else, calls side by side.
        self.injected_latency().await;
        // One writer per service: a repeated key waits for the first call to commit. Dry
        // runs on PostgreSQL run side by side, as a real service's would: each rolls back,
        // and no writer runs meanwhile. SQLite takes one writing transaction at a time, so
        // there they queue like real calls.
        let (_shared, _exclusive) = if dry_run && self.db.dialect() == Dialect::Postgres {
            (Some(self.writer.read().await), None)
        } else {
            (None, Some(self.writer.write().await))
        };
        let outcome = match self.check_fence(call, dry_run).await {
            Ok(()) => self.apply_once(call, mutation, dry_run, apply).await,
            Err(e) => Err(e),
        };
        let (result, error) = match outcome {
            Ok(Outcome::Applied(result)) => return Ok(result),
            Ok(Outcome::NotApplied(result)) => (Ok(result), None),
            Err(e) => {
                let message = e.to_string();
                (Err(e), Some(message))
            }
        };
        self.db
            .execute(LOG_CALL, &log_args(call, mutation, dry_run, false, error))
            .await?;
        result
    }

    /// The fencing token's check: a real call from an older lease epoch of the same action
    /// than one already seen comes from a Runboard replica that lost the lease, and is
    /// refused. A newer epoch, in a real call or a dry run (a new holder's re-check), becomes
    /// the one to beat.
    async fn check_fence(&self, call: &Call, dry_run: bool) -> Result<(), FleetError> {
        #[derive(sqlx::FromRow)]
        struct Fence {
            epoch: i64,
        }
        let (Some(action), Some(epoch)) = (&call.action, call.lease_epoch) else {
            return Ok(());
        };
        if !self.fence_on() {
            return Ok(());
        }
        let highest: Vec<Fence> = self
            .db
            .fetch_all(
                "SELECT epoch FROM runboard_fence WHERE action = $1",
                &[action.as_str().into()],
            )
            .await?;
        match highest.first() {
            Some(Fence { epoch: highest }) if epoch < *highest => {
                if dry_run {
                    return Ok(());
                }
                return Err(FleetError::Invalid(format!(
                    "stale lease: action {action} has called with lease epoch {highest}, this call has {epoch}"
                )));
            }
            Some(Fence { epoch: highest }) if epoch == *highest => return Ok(()),
            _ => {}
        }
        self.db
            .execute(
                "INSERT INTO runboard_fence (action, epoch) VALUES ($1, $2) \
                 ON CONFLICT (action) DO UPDATE SET epoch = excluded.epoch",
                &[action.as_str().into(), epoch.into()],
            )
            .await?;
        Ok(())
    }

    async fn apply_once(
        &self,
        call: &Call,
        mutation: &str,
        dry_run: bool,
        apply: impl AsyncFnOnce(&mut Tx, DateTime<Utc>) -> Result<Vec<Effect>, FleetError>,
    ) -> Result<Outcome, FleetError> {
        #[derive(sqlx::FromRow)]
        struct Stored {
            mutation: String,
            response: String,
        }
        let mut tx = self.db.begin().await?;
        let key = call.idempotency_key.as_deref().filter(|_| !dry_run);
        if let Some(key) = key {
            let stored: Option<Stored> = tx
                .fetch_optional(
                    "SELECT mutation, response FROM idempotent_response WHERE idempotency_key = $1",
                    &[key.into()],
                )
                .await?;
            if let Some(stored) = stored {
                tx.rollback().await?;
                if stored.mutation != mutation {
                    return Err(FleetError::Invalid(format!(
                        "Idempotency-Key {key:?} was already used for {}",
                        stored.mutation
                    )));
                }
                return Ok(Outcome::NotApplied(serde_json::from_str(&stored.response)?));
            }
        }
        let effects = apply(&mut tx, now()).await?;
        let result = MissionControlResult { dry_run, effects };
        if dry_run {
            tx.rollback().await?;
            return Ok(Outcome::NotApplied(result));
        }
        if let Some(key) = key {
            tx.execute(
                "INSERT INTO idempotent_response (idempotency_key, mutation, response, created_at) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    key.into(),
                    mutation.into(),
                    serde_json::to_string(&result)?.into(),
                    now().into(),
                ],
            )
            .await?;
        }
        tx.execute(LOG_CALL, &log_args(call, mutation, false, true, None))
            .await?;
        tx.commit().await?;
        Ok(Outcome::Applied(result))
    }

    pub(crate) async fn call_log(&self, limit: i64) -> Result<Vec<CallRecord>, FleetError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            received_at: DateTime<Utc>,
            idempotency_key: Option<String>,
            mutation: String,
            variables: String,
            dry_run: bool,
            applied: bool,
            action: Option<String>,
            requester: Option<String>,
            approvers: Option<String>,
            error: Option<String>,
            replica: Option<String>,
            lease_epoch: Option<i64>,
            caller: Option<String>,
        }
        let rows: Vec<Row> = self
            .db
            .fetch_all(
                "SELECT received_at, idempotency_key, mutation, variables, dry_run, applied, \
                 action, requester, approvers, error, replica, lease_epoch, caller FROM mission_control_call \
                 ORDER BY id LIMIT $1",
                &[limit.into()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| CallRecord {
                received_at: r.received_at,
                idempotency_key: r.idempotency_key,
                mutation: r.mutation,
                variables: serde_json::from_str(&r.variables).unwrap_or_default(),
                dry_run: r.dry_run,
                applied: r.applied,
                action: r.action,
                requester: r.requester,
                approvers: r.approvers,
                error: r.error,
                replica: r.replica,
                lease_epoch: r.lease_epoch,
                caller: r.caller,
            })
            .collect())
    }
}

pub(crate) fn parts<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Arc<Service>, &'a Call)> {
    Ok((ctx.data::<Arc<Service>>()?, ctx.data::<Call>()?))
}

/// The ids in order, each once: a pasted list often repeats one.
pub(crate) fn distinct(ids: Vec<ID>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .map(|id| id.0.trim().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// The service's HTTP routes: `POST /graphql`, behind the check of its callers.
pub(crate) fn router(service: Arc<Service>, callers: &CallerCheck) -> Router {
    let router = match service.spec.kind {
        Kind::Payments => endpoint::<PaymentsQuery, PaymentsMutation>(service),
        Kind::Payouts => endpoint::<ServiceQuery, PayoutsMutation>(service),
        Kind::Onboarding => endpoint::<ServiceQuery, OnboardingMutation>(service),
    };
    match callers {
        CallerCheck::Anyone => router,
        CallerCheck::Token(token) => router.layer(axum::middleware::from_fn_with_state(
            Arc::<str>::from(token.as_str()),
            callers::require_token,
        )),
        CallerCheck::ProviderTokens { issuer, audience } => {
            router.layer(axum::middleware::from_fn_with_state(
                Arc::new(ProviderKeys::new(issuer.clone(), audience.clone())),
                callers::require_provider_token,
            ))
        }
    }
}

fn endpoint<Q, M>(service: Arc<Service>) -> Router
where
    Q: ObjectType + Default + 'static,
    M: ObjectType + Default + 'static,
{
    // Introspection stays on: Runboard finds a service's actions by it.
    let schema = Schema::build(Q::default(), M::default(), EmptySubscription)
        .data(service)
        .finish();
    Router::new().route(
        "/graphql",
        axum::routing::post(
            move |caller: Option<Extension<Caller>>,
                  headers: HeaderMap,
                  request: GraphQLRequest| {
                let schema = schema.clone();
                async move {
                    let request = request.into_inner();
                    let caller = caller.map(|Extension(Caller(subject))| subject);
                    let call = Call::received(&headers, &request, caller);
                    // On its own task: a caller that hangs up (or is killed) mid-call must not
                    // cancel the call half-way, with its transaction still open; it finishes
                    // or rolls back, and a retry with the same key finds the outcome.
                    let response =
                        tokio::spawn(async move { schema.execute(request.data(call)).await });
                    match response.await {
                        Ok(response) => GraphQLResponse::from(response).into_response(),
                        Err(e) => {
                            tracing::error!(error = %e, "a mission-control call panicked");
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                    }
                }
            },
        ),
    )
}
