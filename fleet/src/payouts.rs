//! Payouts' weekly payout batch: about 5,000 items worked off a few at a time, some
//! failing with one of a few errors; a retried item pays out once the fix is deployed.

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::FleetError;
use crate::catalog::PAYOUT_ITEM_FAULTS;
use crate::db::{Arg, Dialect, Tx};
use crate::mission_control::Effect;

/// Items in a weekly payout batch.
pub(crate) const BATCH_ITEMS: u64 = 5_000;

/// A batch to create in one set-based statement, with part of it already worked off.
pub(crate) struct NewBatch {
    pub(crate) name: String,
    pub(crate) items: u64,
    pub(crate) started_secs_ago: f64,
    /// Share of items already done or failed.
    pub(crate) processed: f64,
    /// Share of processed items that failed.
    pub(crate) failed: f64,
    /// Seconds ago it finished, when it has.
    pub(crate) finished_secs_ago: Option<f64>,
}

impl NewBatch {
    pub(crate) async fn create(self, tx: &mut Tx, backend: Dialect) -> Result<String, FleetError> {
        let batch_id = uuid::Uuid::new_v4().to_string();
        let finished_at = match self.finished_secs_ago {
            Some(ago) => backend.ago(&ago.to_string()),
            None => "NULL".to_owned(),
        };
        tx.execute(
            &format!(
                "INSERT INTO batch_run (batch_id, name, started_at, finished_at) \
                 VALUES ($1, $2, {}, {finished_at})",
                backend.ago(&self.started_secs_ago.to_string())
            ),
            &[batch_id.clone().into(), self.name.into()],
        )
        .await?;
        let fault = format!(
            "CASE {} {} END",
            backend.floor(&format!("r3 * {}", PAYOUT_ITEM_FAULTS.len())),
            PAYOUT_ITEM_FAULTS
                .iter()
                .enumerate()
                .map(|(i, f)| format!("WHEN {i} THEN {}", quote(f)))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let (processed, failed, started) = (self.processed, self.failed, self.started_secs_ago);
        // Done items finished evenly between the start and now (or the finish).
        let until = self.finished_secs_ago.unwrap_or(0.0);
        let done_at = backend.ago(&format!(
            "{until} + ({started} - {until}) * (1 - r / {})",
            processed.max(f64::MIN_POSITIVE)
        ));
        // The draws are materialised: SQLite would otherwise evaluate random() again at
        // every mention of a draw.
        let sql = format!(
            "WITH draw AS MATERIALIZED (
                SELECT {rnd} AS r, {rnd} AS r2, {rnd} AS r3, {rnd} AS r4, {rnd} AS r5 FROM {series})
             INSERT INTO payout_item (batch_id, item_id, status, error, fault, amount, currency, updated_at)
             SELECT $2, {uuid},
                    CASE WHEN r >= {processed} THEN 'pending' WHEN r2 < {failed} THEN 'failed' ELSE 'done' END,
                    CASE WHEN r < {processed} AND r2 < {failed} THEN {fault} END,
                    CASE WHEN r < {processed} AND r2 < {failed} THEN {fault} END,
                    {amount},
                    CASE WHEN r4 < 0.8 THEN 'EUR' ELSE 'USD' END,
                    CASE WHEN r < {processed} THEN {done_at} ELSE {started_at} END
             FROM draw",
            uuid = backend.uuid(),
            amount = backend.money("20 + r5 * 1980"),
            started_at = backend.ago(&started.to_string()),
            rnd = backend.random(),
            series = backend.series("$1"),
        );
        tx.execute(&sql, &[(self.items as i64).into(), batch_id.clone().into()])
            .await?;
        Ok(batch_id)
    }
}

/// An SQL string literal.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[derive(sqlx::FromRow)]
struct Item {
    batch_id: String,
    item_id: String,
    status: String,
    error: Option<String>,
    fault: Option<String>,
    amount: String,
    currency: String,
}

const ITEM_COLUMNS: &str =
    "batch_id, item_id, status, error, fault, CAST(amount AS TEXT) AS amount, currency";

/// Works off up to `max` pending items of the open batches, then closes batches with none left.
pub(crate) async fn work_off(
    tx: &mut Tx,
    max: i64,
    fix_deployed: bool,
    now: DateTime<Utc>,
) -> Result<(), FleetError> {
    let items: Vec<Item> = tx
        .fetch_all(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM payout_item WHERE status = 'pending' AND batch_id IN \
                 (SELECT batch_id FROM batch_run WHERE finished_at IS NULL) ORDER BY item_id LIMIT $1"
            ),
            &[max.into()],
        )
        .await?;
    for item in items {
        let fault = match item.fault {
            // A retried item fails again the same way until the fix is deployed.
            Some(fault) if !fix_deployed => Some(fault),
            Some(_) => None,
            None => {
                let mut rng = rand::rng();
                rng.random_bool(0.015)
                    .then(|| PAYOUT_ITEM_FAULTS[rng.random_range(0..PAYOUT_ITEM_FAULTS.len())])
                    .map(str::to_owned)
            }
        };
        tx.execute(
            "UPDATE payout_item SET status = $3, error = $4, fault = $4, updated_at = $5 \
             WHERE batch_id = $1 AND item_id = $2",
            &[
                item.batch_id.into(),
                item.item_id.into(),
                if fault.is_some() { "failed" } else { "done" }.into(),
                fault.into(),
                now.into(),
            ],
        )
        .await?;
    }
    tx.execute(
        "UPDATE batch_run SET finished_at = $1 WHERE finished_at IS NULL AND NOT EXISTS \
         (SELECT 1 FROM payout_item i WHERE i.batch_id = batch_run.batch_id AND i.status = 'pending')",
        &[now.into()],
    )
    .await?;
    Ok(())
}

/// Whether a new payout batch is due: none is running and the last finished a while ago.
pub(crate) async fn next_batch_due(tx: &mut Tx, now: DateTime<Utc>) -> Result<bool, FleetError> {
    #[derive(sqlx::FromRow)]
    struct Run {
        finished_at: Option<DateTime<Utc>>,
    }
    let runs: Vec<Run> = tx
        .fetch_all(
            "SELECT finished_at FROM batch_run ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(match runs.first() {
        None => true,
        Some(Run { finished_at: None }) => false,
        Some(Run {
            finished_at: Some(at),
        }) => now - *at > chrono::Duration::minutes(2),
    })
}

/// Puts one failed item back to pending (or, with the fix deployed, pays it out at once).
pub(crate) async fn retry_item(
    tx: &mut Tx,
    batch_id: &str,
    item_id: &str,
    fix_deployed: bool,
    now: DateTime<Utc>,
) -> Result<Effect, FleetError> {
    let found: Option<Item> = tx
        .fetch_optional(
            &format!("SELECT {ITEM_COLUMNS} FROM payout_item WHERE batch_id = $1 AND item_id = $2"),
            &[batch_id.into(), item_id.into()],
        )
        .await?;
    let Some(item) = found else {
        return Ok(Effect::skipped(item_id, "no such item in this batch"));
    };
    if item.status != "failed" {
        return Ok(Effect::skipped(
            item_id,
            &format!("payout item is {}", item.status),
        ));
    }
    let amount = item
        .amount
        .parse()
        .map_err(|e| FleetError::Corrupt(format!("payout item {item_id}: bad amount: {e}")))?;
    let (status, outcome) = if fix_deployed {
        ("done", "; pays out with the fix deployed")
    } else {
        ("pending", "")
    };
    tx.execute(
        "UPDATE payout_item SET status = $3, error = NULL, updated_at = $4, \
         fault = CASE WHEN $3 = 'done' THEN NULL ELSE fault END \
         WHERE batch_id = $1 AND item_id = $2",
        &[batch_id.into(), item_id.into(), status.into(), now.into()],
    )
    .await?;
    // The batch runs again until its retried items are worked off.
    if status == "pending" {
        tx.execute(
            "UPDATE batch_run SET finished_at = NULL WHERE batch_id = $1",
            &[Arg::from(batch_id)],
        )
        .await?;
    }
    Ok(Effect::new(
        item_id,
        format!(
            "retry payout item (failed: {}){outcome}",
            item.error.unwrap_or_default()
        ),
        Some((amount, item.currency)),
    ))
}

/// Whether the batch exists at all; retrying items of an unknown batch is an input error.
pub(crate) async fn batch_exists(tx: &mut Tx, batch_id: &str) -> Result<bool, FleetError> {
    #[derive(sqlx::FromRow)]
    struct Found {
        batch_id: String,
    }
    let found: Option<Found> = tx
        .fetch_optional(
            "SELECT batch_id FROM batch_run WHERE batch_id = $1",
            &[batch_id.into()],
        )
        .await?;
    Ok(found.is_some_and(|f| f.batch_id == batch_id))
}

pub(crate) fn batch_name(now: DateTime<Utc>) -> String {
    format!("weekly payout {}", now.format("%G-W%V, run %H:%M UTC"))
}
