//! Snapshots of each service's numbers, written by the poller and read by the overview.

use chrono::{DateTime, Utc};
use runboard_model::{
    Money, SagaCounts, ServiceFunds, ServiceName, ServiceOverview, ServiceSource,
};

use crate::db::{BeginWrite, on_pool};
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
/// How far back the overview's trends reach.
pub const TREND_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendPoint {
    pub at: DateTime<Utc>,
    pub stuck: u64,
    pub failed: u64,
    /// Counted from the service's own timestamps, for a time before Runboard's first poll
    /// of it; a lower bound, as sagas that recovered since are not seen.
    pub reconstructed: bool,
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
                     WHERE latest.service = service.name AND NOT latest.reconstructed
                     ORDER BY latest.taken_at DESC, latest.id DESC LIMIT 1)
                 WHERE service.retired_at IS NULL
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
    /// that read them (failed polls leave gaps) and the points reconstructed before them.
    pub async fn trend(
        &self,
        service: &ServiceName,
        since: DateTime<Utc>,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let rows: Vec<(DateTime<Utc>, i64, i64, bool)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT taken_at, stuck, failed, reconstructed FROM service_snapshot
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
            .map(|(at, stuck, failed, reconstructed)| TrendPoint {
                at,
                stuck: to_count(stuck),
                failed: to_count(failed),
                reconstructed,
            })
            .collect())
    }

    /// Claims the filling of a service's trend before its first poll for this replica;
    /// where it wins, the time the measured trend begins (its first answered poll, or `now`
    /// before any). Only one replica ever wins, unless the filling is given back.
    pub async fn claim_trend_fill(
        &self,
        service: &ServiceName,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let first: Option<(Option<DateTime<Utc>>,)> = on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let won = sqlx::query(
                "UPDATE service SET trend_filled_at = $2 WHERE name = $1 AND trend_filled_at IS NULL",
            )
            .bind(service)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let first = if won {
                Some(
                    sqlx::query_as(
                        "SELECT MIN(taken_at) FROM service_snapshot
                         WHERE service = $1 AND reachable AND NOT reconstructed",
                    )
                    .bind(service)
                    .fetch_one(&mut *tx)
                    .await?,
                )
            } else {
                None
            };
            tx.commit().await?;
            first
        });
        Ok(first.map(|(first,)| first.map_or(now, |first| first.min(now))))
    }

    /// Gives back a claim of [`Store::claim_trend_fill`] that could not be carried out.
    pub async fn give_back_trend_fill(&self, service: &ServiceName) -> Result<(), StoreError> {
        on_pool!(self.pool, |pool| {
            sqlx::query("UPDATE service SET trend_filled_at = NULL WHERE name = $1")
                .bind(service)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stores the points of a service's trend reconstructed from its own timestamps.
    pub async fn record_reconstructed_trend(
        &self,
        service: &ServiceName,
        points: &[TrendPoint],
    ) -> Result<(), StoreError> {
        on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            for point in points {
                sqlx::query(
                    "INSERT INTO service_snapshot
                       (service, taken_at, reachable, stuck, failed, withheld_funds, reconstructed)
                     VALUES ($1, $2, TRUE, $3, $4, '[]', TRUE)",
                )
                .bind(service)
                .bind(point.at)
                .bind(i64::try_from(point.stuck).unwrap_or(i64::MAX))
                .bind(i64::try_from(point.failed).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
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
