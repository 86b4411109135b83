//! The poller: every interval, reads each service's numbers into a snapshot, several
//! services at once but never more than the configured bound, and prunes old snapshots.
//! However many replicas share the store, each service is read once per interval: the
//! replica that claims a service's slot of the store's clock reads it.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::App;
use crate::connector::with_reserved_connections;
use crate::connector::{Connector, ReadError, ReadProblem};
use crate::db::on_pool;
use crate::services::Fleet;
use crate::snapshots::{Snapshot, TREND_HOURS, TrendPoint};
use crate::store::StoreError;

/// Polls every service once and stores the snapshots; returns how many services answered.
pub async fn poll_once(app: &App) -> Result<usize, StoreError> {
    poll(app, app.fleet.services()).await
}

/// Polls the services whose slot for this interval this replica claims first; the other
/// replicas leave them alone until the next interval. Returns how many answered.
pub async fn poll_claimed(app: &App) -> Result<usize, StoreError> {
    let interval_ms = i64::try_from(app.config.poller.interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let claim = format!(
        "INSERT INTO poll_claim (service, slot, owner)
         SELECT $1, {now} / $2, $3 WHERE 1 = 1
         ON CONFLICT (service, slot) DO NOTHING",
        now = app.store.pool.dialect().now_ms()
    );
    let mut claimed = HashSet::new();
    let services = app.fleet.services();
    for connector in &services {
        let name = connector.name();
        let won = on_pool!(app.store.pool, |pool| {
            sqlx::query(&claim)
                .bind(name)
                .bind(interval_ms)
                .bind(&app.replica)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if won == 1 {
            claimed.insert(name.clone());
        }
    }
    let retention_ms = i64::try_from(app.config.poller.retention.as_millis()).unwrap_or(i64::MAX);
    let prune = format!(
        "DELETE FROM poll_claim WHERE slot < ({now} - $1) / $2",
        now = app.store.pool.dialect().now_ms()
    );
    on_pool!(app.store.pool, |pool| {
        sqlx::query(&prune)
            .bind(retention_ms)
            .bind(interval_ms)
            .execute(pool)
            .await?;
    });
    let services = services
        .into_iter()
        .filter(|connector| claimed.contains(connector.name()))
        .collect();
    poll(app, services).await
}

async fn poll(app: &App, services: Vec<Arc<Connector>>) -> Result<usize, StoreError> {
    let now = app.clock.now();
    let bound = Semaphore::new(app.config.poller.concurrency);
    let bound = &bound;
    let reads = services.iter().map(|connector| async move {
        let _permit = bound
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // However many different things people ask the service for, the poll has a connection.
        // A service whose settings cannot be read from the cluster now reads as unreachable:
        // its last figures stay on the overview with the reason, and it alerts as one.
        let reading = match app.fleet.unreadable(connector.name().as_str()) {
            Some(reason) => Err(ReadError {
                service: connector.name().clone(),
                problem: ReadProblem::SettingsUnreadable(reason),
            }),
            None => with_reserved_connections(Fleet::read(connector, now)).await,
        };
        (connector, reading)
    });
    let mut answered = 0;
    for (connector, reading) in join_all(reads).await {
        let service = connector.name();
        let outcome = match &reading {
            Ok(reading) => {
                answered += 1;
                fill_trend(app, connector, now).await?;
                // The Funds screen shows these sagas without reading the service again.
                app.screens
                    .polled_funds(service, reading.holding.clone(), now);
                "ok"
            }
            Err(error) => {
                tracing::warn!(%error, "poll failed");
                error.problem.label()
            }
        };
        app.metrics.record_poll(service, outcome, now.timestamp());
        let snapshot = Snapshot {
            service: service.clone(),
            taken_at: now,
            reading: reading.map_err(|e| e.problem.to_string()),
        };
        app.store.record_snapshot(&snapshot).await?;
        // With this poll's snapshot stored, the watches judge the streak it ends.
        crate::watches::judge_poll(app, connector, &snapshot.reading, now).await?;
    }
    app.screens.snapshots_recorded();
    app.screens.alerts_changed();
    let retention =
        chrono::Duration::from_std(app.config.poller.retention).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = now.checked_sub_signed(retention) {
        app.store.prune_snapshots(cutoff).await?;
    }
    Ok(answered)
}

/// Fills a service's trend for the hours before its first poll from the service's own
/// timestamps, once: so that the first look at the overview already shows whether things
/// are getting worse. A service that cannot say is asked again at the next poll.
async fn fill_trend(
    app: &App,
    connector: &Connector,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let name = connector.name();
    if app
        .trends_filled
        .lock()
        .expect("never poisoned")
        .contains(name)
    {
        return Ok(());
    }
    // This poll's snapshot is not stored yet: it is the first if none is.
    if let Some(first) = app.store.claim_trend_fill(name, now).await? {
        let since = now - chrono::Duration::hours(TREND_HOURS);
        let times: Vec<DateTime<Utc>> = (1..=TREND_HOURS)
            .rev()
            .map(|hours| first - chrono::Duration::hours(hours))
            .filter(|at| *at >= since)
            .collect();
        if !times.is_empty() {
            match with_reserved_connections(connector.counts_in_the_past(&times)).await {
                Ok(counts) => {
                    let points: Vec<TrendPoint> = times
                        .into_iter()
                        .zip(counts)
                        .map(|(at, (stuck, failed))| TrendPoint {
                            at,
                            stuck,
                            failed,
                            reconstructed: true,
                        })
                        .collect();
                    app.store.record_reconstructed_trend(name, &points).await?;
                }
                Err(error) => {
                    tracing::warn!(%error, "the trend before the first poll could not be read");
                    return app.store.give_back_trend_fill(name).await;
                }
            }
        }
    }
    app.trends_filled
        .lock()
        .expect("never poisoned")
        .insert(name.clone());
    Ok(())
}

/// Polls until the process stops. A failing store is logged and retried next interval.
pub async fn run(app: Arc<App>) {
    let mut ticks = tokio::time::interval(app.config.poller.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = std::time::Instant::now();
        match poll_claimed(&app).await {
            Ok(answered) => tracing::debug!(
                answered,
                services = app.fleet.services().len(),
                took = ?started.elapsed(),
                "poll done"
            ),
            Err(error) => tracing::error!(%error, "poll could not store its snapshots"),
        }
    }
}
