//! The poller: every interval, reads each service's numbers into a snapshot, several
//! services at once but never more than the configured bound, and prunes old snapshots.

use std::sync::Arc;

use chrono::Utc;
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::App;
use crate::fleet::Fleet;
use crate::snapshots::Snapshot;
use crate::store::StoreError;

/// Polls every service once and stores the snapshots; returns how many services answered.
pub async fn poll_once(app: &App) -> Result<usize, StoreError> {
    let now = Utc::now();
    let bound = Semaphore::new(app.config.poller.concurrency);
    let reads = app.fleet.services().map(|connector| async {
        let _permit = bound
            .acquire()
            .await
            .expect("the semaphore is never closed");
        (connector.name(), Fleet::read(connector, now).await)
    });
    let mut answered = 0;
    for (service, reading) in join_all(reads).await {
        let outcome = match &reading {
            Ok(_) => {
                answered += 1;
                "ok"
            }
            Err(error) => {
                tracing::warn!(%error, "poll failed");
                error.problem.label()
            }
        };
        app.metrics
            .record_poll(service.as_str(), outcome, now.timestamp());
        let snapshot = Snapshot {
            service: service.clone(),
            taken_at: now,
            reading: reading.map_err(|e| e.problem.to_string()),
        };
        app.store.record_snapshot(&snapshot).await?;
    }
    let retention =
        chrono::Duration::from_std(app.config.poller.retention).unwrap_or(chrono::Duration::MAX);
    if let Some(cutoff) = now.checked_sub_signed(retention) {
        app.store.prune_snapshots(cutoff).await?;
    }
    Ok(answered)
}

/// Polls until the process stops. A failing store is logged and retried next interval.
pub async fn run(app: Arc<App>) {
    let mut ticks = tokio::time::interval(app.config.poller.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = std::time::Instant::now();
        match poll_once(&app).await {
            Ok(answered) => tracing::debug!(
                answered,
                services = app.config.services.len(),
                took = ?started.elapsed(),
                "poll done"
            ),
            Err(error) => tracing::error!(%error, "poll could not store its snapshots"),
        }
    }
}
