//! The GraphQL objects a service serves: the mutations on its sagas, batches and transfers
//! (each a dry run or a real call) and the queries that introspect them.

use super::*;

#[derive(Default)]
pub(super) struct SagaMutations;

#[Object]
impl SagaMutations {
    /// Retries failed or stuck sagas: clears the error and moves each on from its current
    /// step. Without the fix deployed, a retried saga fails again with the same error on
    /// its next step. Sagas that are neither failed nor stuck are skipped.
    async fn retry_sagas(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        dry_run: bool,
    ) -> async_graphql::Result<MissionControlResult> {
        let (service, call) = parts(ctx)?;
        let ids = distinct(ids);
        let result = service
            .mission_control(call, "retrySagas", dry_run, async |tx, now| {
                service.refuse_held(&ids, dry_run)?;
                let mut effects = Vec::with_capacity(ids.len());
                for id in &ids {
                    effects.push(service.retry_saga(tx, id, now).await?);
                }
                Ok(effects)
            })
            .await?;
        Ok(result)
    }

    /// Marks failed or stuck sagas completed without running their remaining steps, with the
    /// reason kept on the saga; a transfer releases the money it holds. Other sagas are skipped.
    async fn force_complete_sagas(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        reason: String,
        dry_run: bool,
    ) -> async_graphql::Result<MissionControlResult> {
        let (service, call) = parts(ctx)?;
        let ids = distinct(ids);
        let reason = reason.trim().to_owned();
        let result = service
            .mission_control(call, "forceCompleteSagas", dry_run, async |tx, now| {
                if reason.is_empty() {
                    return Err(FleetError::Invalid("reason is required".to_owned()));
                }
                service.refuse_held(&ids, dry_run)?;
                let mut effects = Vec::with_capacity(ids.len());
                for id in &ids {
                    effects.push(service.force_complete_saga(tx, id, &reason, now).await?);
                }
                Ok(effects)
            })
            .await?;
        Ok(result)
    }
}

#[derive(Default)]
pub(super) struct BatchMutations;

#[Object]
impl BatchMutations {
    /// Re-runs failed items of a payout batch: each goes back to pending and the batch
    /// works it off again. Items that are not failed are skipped.
    async fn retry_batch_items(
        &self,
        ctx: &Context<'_>,
        batch_id: ID,
        item_ids: Vec<ID>,
        dry_run: bool,
    ) -> async_graphql::Result<MissionControlResult> {
        let (service, call) = parts(ctx)?;
        let item_ids = distinct(item_ids);
        let batch_id = batch_id.0.trim().to_owned();
        let result = service
            .mission_control(call, "retryBatchItems", dry_run, async |tx, now| {
                if !payouts::batch_exists(tx, &batch_id).await? {
                    return Err(FleetError::Invalid(format!("no batch {batch_id:?}")));
                }
                service.refuse_held(&item_ids, dry_run)?;
                let fixed = service.fix_deployed();
                let mut effects = Vec::with_capacity(item_ids.len());
                for id in &item_ids {
                    effects.push(payouts::retry_item(tx, &batch_id, id, fixed, now).await?);
                }
                Ok(effects)
            })
            .await?;
        Ok(result)
    }
}

#[derive(Default)]
pub(super) struct TransferMutations;

#[Object]
impl TransferMutations {
    /// Books a manual transfer between two accounts, settled at once, as a new transfer.
    /// An account on legal hold refuses the real call (dry runs pass).
    /// `amount` is a decimal with at most two places (such as "12.34"); `currency` is one of
    /// EUR, USD, GBP, CHF; `reference` must not have been used before and names the effect.
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn transfer_funds(
        &self,
        ctx: &Context<'_>,
        from_account: String,
        to_account: String,
        amount: String,
        currency: String,
        reference: String,
        dry_run: bool,
    ) -> async_graphql::Result<MissionControlResult> {
        let (service, call) = parts(ctx)?;
        let backend = service.db.dialect();
        let result = service
            .mission_control(call, "transferFunds", dry_run, async |tx, now| {
                let transfer = ManualTransfer::parse(
                    &from_account,
                    &to_account,
                    &amount,
                    &currency,
                    &reference,
                )?;
                service.refuse_held(
                    &[transfer.from_account.clone(), transfer.to_account.clone()],
                    dry_run,
                )?;
                Ok(vec![transfer.book(tx, backend, now).await?])
            })
            .await?;
        Ok(result)
    }
}

#[derive(Default)]
pub(super) struct ServiceQuery;

#[Object]
impl ServiceQuery {
    /// "ok" while the service answers.
    async fn health(&self) -> &'static str {
        "ok"
    }

    /// Whether the fleet's fix is deployed (see `setFixDeployed`).
    async fn fix_deployed(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(parts(ctx)?.0.fix_deployed())
    }

    /// The mission-control calls this service received, oldest first.
    async fn call_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: i32,
    ) -> async_graphql::Result<Vec<CallRecord>> {
        Ok(parts(ctx)?.0.call_log(i64::from(limit)).await?)
    }
}

#[derive(Default)]
pub(super) struct TransferQuery;

#[Object]
impl TransferQuery {
    /// A transfer's current state, folded from its events; by id or by reference.
    async fn transfer(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        reference: Option<String>,
    ) -> async_graphql::Result<Option<Transfer>> {
        let (service, _) = parts(ctx)?;
        let mut tx = service.db.begin_read().await?;
        let id = match (id, reference) {
            (Some(id), _) => Some(id.0),
            (None, Some(reference)) => payments::find_by_reference(&mut tx, &reference).await?,
            (None, None) => {
                return Err(FleetError::Invalid("give an id or a reference".to_owned()).into());
            }
        };
        let transfer = match id {
            Some(id) => payments::load(&mut tx, &id).await?,
            None => None,
        };
        tx.rollback().await?;
        Ok(transfer)
    }
}

#[derive(MergedObject, Default)]
pub(super) struct PaymentsQuery(ServiceQuery, TransferQuery);
#[derive(MergedObject, Default)]
pub(super) struct PaymentsMutation(SagaMutations, TransferMutations, DemoMutations);
#[derive(MergedObject, Default)]
pub(super) struct PayoutsMutation(SagaMutations, BatchMutations, DemoMutations);
#[derive(MergedObject, Default)]
pub(super) struct OnboardingMutation(SagaMutations, DemoMutations);
