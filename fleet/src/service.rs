//! One simulated service: its database, its load generator's tick, its fix switch and its
//! demo controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::FleetError;
use crate::catalog::{Kind, ServiceSpec};
use crate::db::{Db, Tx};
use crate::mission_control::now;
use crate::payouts::{self, BATCH_ITEMS, NewBatch};
use crate::sagas::{SAGA_COLUMNS, Saga};
use crate::{schema, seed};

/// Sagas the demo's first start seeds per service.
const HISTORY_SAGAS: u64 = 400;
/// Payout items worked off per tick: a 5,000-item batch takes about ten minutes.
const PAYOUT_ITEMS_PER_TICK: i64 = 8;

pub(crate) struct Service {
    pub(crate) spec: &'static ServiceSpec,
    pub(crate) db: Db,
    /// The fleet's "fix deployed" switch, shared by all its services.
    fix: Arc<AtomicBool>,
    /// Serialises this process's writes: the load generator and mission-control calls,
    /// taken exclusively; dry runs on PostgreSQL share it (see `Service::mission_control`).
    pub(crate) writer: tokio::sync::RwLock<()>,
    /// Whether the load generator works off the payout batch (a demo control: off, the
    /// batch stalls as the Friday batch did).
    payout_worker: AtomicBool,
    /// Entities on legal hold (a demo control): a real call naming one is refused as a
    /// whole, as a service refuses an entity it objects to; dry runs still pass.
    legal_hold: std::sync::Mutex<std::collections::HashSet<String>>,
    /// How much longer every mission-control call takes (a demo control), in milliseconds.
    latency_ms: std::sync::atomic::AtomicU64,
    /// Whether real calls from an older lease epoch than one already seen are refused (the
    /// fencing token's check, on by default): a safety net behind Runboard's own lease,
    /// which a test turns off to prove that lease alone.
    fence: AtomicBool,
}

impl Service {
    /// Connects to (creating if needed) the service's database and its schema; a fresh
    /// database gets some history so the dashboard has something to show at once.
    pub(crate) async fn open(
        spec: &'static ServiceSpec,
        database_url: &str,
        fix: Arc<AtomicBool>,
    ) -> Result<Service, FleetError> {
        let db = crate::db::connect(database_url).await?;
        schema::ensure(&db, spec.kind == Kind::Payments).await?;
        let service = Service {
            spec,
            db,
            fix,
            writer: tokio::sync::RwLock::new(()),
            payout_worker: AtomicBool::new(true),
            legal_hold: Default::default(),
            latency_ms: Default::default(),
            fence: AtomicBool::new(true),
        };
        service.seed_history_if_empty().await?;
        Ok(service)
    }

    pub(crate) fn fix_deployed(&self) -> bool {
        self.fix.load(Ordering::Relaxed)
    }

    pub(crate) fn set_fix_deployed(&self, on: bool) {
        self.fix.store(on, Ordering::Relaxed);
    }

    /// Starts or stops the payout batch's worker; `false` for a service that has none.
    pub(crate) fn set_payout_worker(&self, running: bool) -> bool {
        if self.spec.kind != Kind::Payouts {
            return false;
        }
        self.payout_worker.store(running, Ordering::Relaxed);
        true
    }

    /// Starts `count` sagas that fail at once with `message`, as a fault nobody has seen
    /// yet would make them; returns their ids.
    pub(crate) async fn inject_error(
        &self,
        message: &str,
        count: u32,
        at_step: Option<&str>,
    ) -> Result<Vec<String>, FleetError> {
        let saga_type = &self.spec.saga_types[0];
        let done_before = match at_step {
            None => 0,
            Some(step) => saga_type
                .steps
                .iter()
                .position(|s| *s == step)
                .ok_or_else(|| {
                    FleetError::Invalid(format!(
                        "{}'s {} sagas have no step {step:?}; their steps are {}",
                        self.spec.name,
                        saga_type.name,
                        saga_type.steps.join(", ")
                    ))
                })?,
        };
        let _writer = self.writer.write().await;
        let now = now();
        let mut tx = self.db.begin().await?;
        let mut started = Vec::new();
        for _ in 0..count {
            let saga_id = self.start_saga(&mut tx, saga_type.name, now).await?;
            let mut saga = crate::sagas::find(&mut tx, &saga_id)
                .await?
                .ok_or_else(|| FleetError::Corrupt(format!("saga {saga_id} vanished")))?;
            // The steps before the failing one finish, as they would have: a transfer
            // failing after `reserve_funds` holds its money.
            for step in &saga_type.steps[..done_before] {
                saga.current_step = (*step).to_owned();
                self.advance(&mut tx, &saga, now).await?;
            }
            self.fail(&mut tx, &saga, message, now).await?;
            started.push(saga_id);
        }
        tx.commit().await?;
        Ok(started)
    }

    /// Makes every mission-control call `latency` slower (zero: as fast as it can).
    pub(crate) fn set_latency(&self, latency: std::time::Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_fence(&self, on: bool) {
        self.fence.store(on, Ordering::Relaxed);
    }

    pub(crate) fn fence_on(&self) -> bool {
        self.fence.load(Ordering::Relaxed)
    }

    /// Waits out the latency a demo control injected, if any.
    pub(crate) async fn injected_latency(&self) {
        let ms = self.latency_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// Puts exactly these entities on legal hold (none: lifts every hold).
    pub(crate) fn set_legal_hold(&self, ids: Vec<String>) {
        *self.legal_hold.lock().expect("not poisoned") = ids.into_iter().collect();
    }

    /// Refuses a real call that names an entity on legal hold, saying which.
    pub(crate) fn refuse_held(&self, ids: &[String], dry_run: bool) -> Result<(), FleetError> {
        let held = self.legal_hold.lock().expect("not poisoned");
        match ids.iter().find(|id| held.contains(*id)) {
            Some(id) if !dry_run => Err(FleetError::Invalid(format!(
                "{id} is on legal hold and may not be changed; leave it out of the call"
            ))),
            _ => Ok(()),
        }
    }

    async fn seed_history_if_empty(&self) -> Result<(), FleetError> {
        #[derive(sqlx::FromRow)]
        struct Count {
            n: i64,
        }
        let _writer = self.writer.write().await;
        let mut tx = self.db.begin().await?;
        let counted: Vec<Count> = tx.fetch_all("SELECT COUNT(*) AS n FROM saga", &[]).await?;
        if counted.first().is_some_and(|c| c.n > 0) {
            return Ok(tx.rollback().await?);
        }
        let backend = self.db.dialect();
        seed::sagas(
            &mut tx,
            backend,
            self.spec,
            HISTORY_SAGAS,
            seed::DEMO_HISTORY,
        )
        .await?;
        if self.spec.kind == Kind::Payouts {
            let week = 7.0 * 86_400.0;
            NewBatch {
                name: payouts::batch_name(now() - chrono::Duration::days(7)),
                items: BATCH_ITEMS,
                started_secs_ago: week,
                processed: 1.0,
                failed: 0.012,
                finished_secs_ago: Some(week - 700.0),
            }
            .create(&mut tx, backend)
            .await?;
            NewBatch {
                name: payouts::batch_name(now() - chrono::Duration::minutes(5)),
                items: BATCH_ITEMS,
                started_secs_ago: 300.0,
                processed: 0.45,
                failed: 0.015,
                finished_secs_ago: None,
            }
            .create(&mut tx, backend)
            .await?;
        }
        Ok(tx.commit().await?)
    }

    /// One step of the load generator: sagas start, move on, now and then fail or stall;
    /// retried sagas fail again until the fix is deployed; the payout batch advances.
    pub(crate) async fn tick(&self) -> Result<(), FleetError> {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let fixed = self.fix_deployed();
        let _writer = self.writer.write().await;
        let now = now();
        let mut tx = self.db.begin().await?;

        let retried: Vec<Saga> = tx
            .fetch_all(
                &format!(
                    "SELECT {SAGA_COLUMNS} FROM saga WHERE fault IS NOT NULL \
                     AND error_message IS NULL AND NOT completed LIMIT 100"
                ),
                &[],
            )
            .await?;
        for saga in retried {
            match (&saga.fault, fixed) {
                (Some(fault), false) => self.fail(&mut tx, &saga, fault, now).await?,
                _ => {
                    self.run_to_completion(&mut tx, &saga, now).await?;
                }
            }
        }

        for _ in 0..rng.random_range(0..=2) {
            let saga_type = &self.spec.saga_types[rng.random_range(0..self.spec.saga_types.len())];
            self.start_saga(&mut tx, saga_type.name, now).await?;
        }

        let due: Vec<Saga> = tx
            .fetch_all(
                &format!(
                    "SELECT {SAGA_COLUMNS} FROM saga WHERE NOT completed AND error_message IS NULL \
                     AND fault IS NULL AND NOT stalled AND updated_at < $1 \
                     ORDER BY updated_at LIMIT 50"
                ),
                &[(now - chrono::Duration::seconds(3)).into()],
            )
            .await?;
        for saga in due {
            self.move_on(&mut tx, &mut rng, &saga, now).await?;
        }

        if self.spec.kind == Kind::Payouts && self.payout_worker.load(Ordering::Relaxed) {
            payouts::work_off(&mut tx, PAYOUT_ITEMS_PER_TICK, fixed, now).await?;
            if payouts::next_batch_due(&mut tx, now).await? {
                NewBatch {
                    name: payouts::batch_name(now),
                    items: BATCH_ITEMS,
                    started_secs_ago: 0.0,
                    processed: 0.0,
                    failed: 0.0,
                    finished_secs_ago: None,
                }
                .create(&mut tx, self.db.dialect())
                .await?;
            }
        }
        Ok(tx.commit().await?)
    }

    /// A running saga's next moment: most wait a little longer or finish their step;
    /// a few hit a fault of their step, fewer stall for good.
    async fn move_on(
        &self,
        tx: &mut Tx,
        rng: &mut StdRng,
        saga: &Saga,
        now: DateTime<Utc>,
    ) -> Result<(), FleetError> {
        let roll: f64 = rng.random();
        if roll < 0.4 {
            return Ok(());
        }
        if roll < 0.412 {
            let faults = self.spec.faults_at(&saga.saga_type, &saga.current_step);
            if !faults.is_empty() {
                let fault = faults[rng.random_range(0..faults.len())];
                return self.fail(tx, saga, fault, now).await;
            }
        } else if roll < 0.416 {
            tx.execute(
                "UPDATE saga SET stalled = $2 WHERE saga_id = $1",
                &[saga.saga_id.clone().into(), true.into()],
            )
            .await?;
            return Ok(());
        }
        self.advance(tx, saga, now).await
    }
}
