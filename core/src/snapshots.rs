//! Snapshots of each service's numbers, written by the poller and read by the overview.

use chrono::{DateTime, Utc};
use runboard_model::{
    Money, SagaCounts, ServiceFunds, ServiceName, ServiceOverview, ServiceSource,
};

use crate::db::on_pool;
use crate::screens::SagasHolding;
use crate::store::{Store, StoreError};

/// One poll of one service: its numbers, or why they could not be read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub service: ServiceName,
    pub taken_at: DateTime<Utc>,
    pub reading: Result<Reading, String>,
}

#[derive(Debug, Clone)]
pub struct Reading {
    pub sagas: SagaCounts,
    pub failed_batches: u64,
    pub withheld_funds: Vec<Money>,
    /// The largest of the sagas behind the funds, for the Funds screen (not stored); `None`
    /// where the service holds no money.
    pub holding: Option<SagasHolding>,
}

/// One poll's stuck and failed counts, for trends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendPoint {
    pub at: DateTime<Utc>,
    pub stuck: u64,
    pub failed: u64,
}

#[derive(sqlx::FromRow)]
struct OverviewRow {
    name: String,
    team: String,
    source: String,
    taken_at: Option<DateTime<Utc>>,
    reachable: Option<bool>,
    error: Option<String>,
    running: Option<i64>,
    stuck: Option<i64>,
    failed: Option<i64>,
    completed: Option<i64>,
    failed_batches: Option<i64>,
    withheld_funds: Option<String>,
}

fn to_count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    pub async fn record_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let (reachable, error, reading) = match &snapshot.reading {
            Ok(reading) => (true, None, Some(reading)),
            Err(e) => (false, Some(e.as_str()), None),
        };
        let n = |f: fn(&Reading) -> u64| reading.map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX));
        let funds = serde_json::to_string(reading.map_or(&[][..], |r| &r.withheld_funds))
            .expect("money serializes");
        on_pool!(self.pool, |pool| {
            sqlx::query(
                "INSERT INTO service_snapshot
                   (service, taken_at, reachable, error, running, stuck, failed, completed, failed_batches, withheld_funds)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(snapshot.service.as_str())
            .bind(snapshot.taken_at)
            .bind(reachable)
            .bind(error)
            .bind(n(|r| r.sagas.running))
            .bind(n(|r| r.sagas.stuck))
            .bind(n(|r| r.sagas.failed))
            .bind(n(|r| r.sagas.completed))
            .bind(n(|r| r.failed_batches))
            .bind(&funds)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes snapshots taken before `before`; returns how many.
    pub async fn prune_snapshots(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = on_pool!(self.pool, |pool| {
            sqlx::query("DELETE FROM service_snapshot WHERE taken_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }

    /// Every registered service with its latest snapshot, by name.
    pub async fn overview(&self) -> Result<Vec<ServiceOverview>, StoreError> {
        let rows: Vec<OverviewRow> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT service.name, service.team, service.source, s.taken_at, s.reachable, s.error, s.running, s.stuck,
                        s.failed, s.completed, s.failed_batches, s.withheld_funds
                 FROM service
                 LEFT JOIN service_snapshot s ON s.id = (
                     SELECT id FROM service_snapshot latest
                     WHERE latest.service = service.name
                     ORDER BY latest.taken_at DESC, latest.id DESC LIMIT 1)
                 ORDER BY service.name",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|row| {
                let name: ServiceName = row.name.parse().map_err(StoreError::corrupt)?;
                let withheld_funds = match &row.withheld_funds {
                    Some(json) => serde_json::from_str(json).map_err(StoreError::corrupt)?,
                    None => Vec::new(),
                };
                let sagas = match (row.running, row.stuck, row.failed, row.completed) {
                    (Some(running), Some(stuck), Some(failed), Some(completed)) => {
                        Some(SagaCounts {
                            running: to_count(running),
                            stuck: to_count(stuck),
                            failed: to_count(failed),
                            completed: to_count(completed),
                        })
                    }
                    _ => None,
                };
                Ok(ServiceOverview {
                    name,
                    team: row.team,
                    source: ServiceSource::from_stored(&row.source).map_err(StoreError::corrupt)?,
                    polled_at: row.taken_at,
                    reachable: row.reachable.unwrap_or(false),
                    error: row.error,
                    sagas,
                    failed_batches: row.failed_batches.map(to_count),
                    withheld_funds,
                })
            })
            .collect()
    }

    /// A service's stuck and failed counts since `since`, oldest first, from the snapshots
    /// that read them (failed polls leave gaps).
    pub async fn trend(
        &self,
        service: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let rows: Vec<(DateTime<Utc>, i64, i64)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT taken_at, stuck, failed FROM service_snapshot
                 WHERE service = $1 AND taken_at >= $2 AND reachable
                 ORDER BY taken_at",
            )
            .bind(service)
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(at, stuck, failed)| TrendPoint {
                at,
                stuck: to_count(stuck),
                failed: to_count(failed),
            })
            .collect())
    }

    /// Withheld funds per service, from the latest snapshot of each.
    pub async fn funds(&self) -> Result<Vec<ServiceFunds>, StoreError> {
        Ok(funds_of(&self.overview().await?))
    }
}

/// Withheld funds per service, out of the services' latest snapshots.
pub fn funds_of(services: &[ServiceOverview]) -> Vec<ServiceFunds> {
    services
        .iter()
        .map(|service| ServiceFunds {
            service: service.name.clone(),
            polled_at: service.polled_at,
            withheld_funds: service.withheld_funds.clone(),
        })
        .collect()
}
