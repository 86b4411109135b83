//! The demo fleet: simulated services that honour Runboard's service contract for real.
//!
//! Three services, each an HTTP server on loopback with its own database (an SQLite file or
//! a PostgreSQL database) holding the contract's `supervisor_view`, `batch_run` and
//! `batch_item`, and a mission-control GraphQL endpoint at `POST /graphql`:
//!
//! | service | team | what |
//! |---|---|---|
//! | `payments` | payments | event-sourced transfers (`transfer_event`), a `withheld_funds` query, `transferFunds` |
//! | `payouts` | treasury | payout sagas and the weekly payout batch of 5,000 items, `retryBatchItems` |
//! | `onboarding` | growth | sign-up and KYC sagas only |
//!
//! Every service has `retrySagas` and `forceCompleteSagas`; all mission-control mutations
//! take `dryRun`, honour `Idempotency-Key` and are logged (see [`Fleet::call_log`]).
//! `setFixDeployed(on)` is a demo control: with the fix on, retries succeed;
//! `setPayoutWorker(running)` stops and resumes the payout batch; `injectError` makes
//! sagas fail with a message of one's choosing, at a step of one's choosing.
//!
//! [`Fleet::start`] runs them; [`seed`] fills a service database with many sagas for benchmarks.

mod callers;
mod catalog;
mod db;
mod demo_controls;
mod mission_control;
mod payments;
mod payouts;
mod sagas;
mod schema;
mod seed;
mod service;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use callers::CallerCheck;
pub use payments::{
    ENTITY_FACTS as PAYMENTS_ENTITY_FACTS, SAGA_EVENTS as PAYMENTS_SAGA_EVENTS,
    WITHHELD_FUNDS_POSTGRES as PAYMENTS_WITHHELD_FUNDS_POSTGRES,
    WITHHELD_FUNDS_SQLITE as PAYMENTS_WITHHELD_FUNDS_SQLITE,
};

use crate::db::Dialect;
use crate::service::Service;

/// How to run the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub storage: Storage,
    /// Who may call the services' mission control; others get 401.
    pub callers: CallerCheck,
    /// Runs the load generator: sagas start, progress, fail and stall; the batch advances.
    pub load: bool,
}

/// Where the services keep their databases.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file per service in `dir`: `payments.db`, `payouts.db`, `onboarding.db`.
    Sqlite { dir: PathBuf },
    /// One PostgreSQL database per service on the server `admin_url` reaches, named
    /// `{database_prefix}_payments` and so on, created if missing. The prefix is lowercase
    /// letters, digits and underscores.
    Postgres {
        admin_url: String,
        database_prefix: String,
    },
}

/// What Runboard needs to register one service.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: String,
    pub team: String,
    /// An sqlx URL: `sqlite:///abs/path/payments.db` or `postgres://…/prefix_payments`.
    pub database_url: String,
    /// `http://127.0.0.1:<port>/graphql`
    pub graphql_url: String,
    /// No progress for this long makes a saga stuck.
    pub stuck_after: Duration,
    /// The service's `withheld_funds` query for its backend; `None` where it holds no money.
    pub withheld_funds_query: Option<String>,
    /// A regex for the service's ids; `None`: its ids are UUIDs, which Runboard finds by default.
    pub id_pattern: Option<String>,
    /// `(saga_id, at, kind, detail)` for each event of a saga, where the service keeps them:
    /// payments' transfer events.
    pub saga_events_query: Option<String>,
    /// `(saga_id, name, value)`, the facts a service keeps about a saga: payments' accounts
    /// and reference of each transfer.
    pub entity_facts_query: Option<String>,
}

/// One mission-control call a service received, as its `mission_control_call` table keeps it.
#[derive(Debug, Clone, PartialEq, async_graphql::SimpleObject)]
pub struct CallRecord {
    pub received_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    /// The mutation's field name, such as `retrySagas`.
    pub mutation: String,
    /// The request's GraphQL variables.
    pub variables: serde_json::Value,
    pub dry_run: bool,
    /// Whether this call made its effects: false for dry runs, failures and repeated keys.
    pub applied: bool,
    /// The `X-Runboard-Action`, `X-Runboard-Requester` and `X-Runboard-Approvers` headers.
    pub action: Option<String>,
    pub requester: Option<String>,
    pub approvers: Option<String>,
    /// Why the call failed, if it did.
    pub error: Option<String>,
    /// The `X-Runboard-Replica` and `X-Runboard-Lease-Epoch` headers: which Runboard replica
    /// sent it, under which lease.
    pub replica: Option<String>,
    pub lease_epoch: Option<i64>,
    /// The subject of the provider token the call carried, where the service asks for one.
    pub caller: Option<String>,
}

/// What [`seed`] wrote and how long it took.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub service: String,
    pub sagas: u64,
    /// Payments only: the events of the seeded transfers.
    pub transfer_events: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database URL {url} is not usable: {reason}")]
    DatabaseUrl { url: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no service named {0:?} in the fleet")]
    UnknownService(String),
    /// A mission-control call's input was rejected; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("stored response is unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

/// A running fleet. Dropping it leaves its tasks running until the runtime ends;
/// [`Fleet::shutdown`] stops them.
pub struct Fleet {
    infos: Vec<ServiceInfo>,
    running: Vec<Running>,
    fix: Arc<AtomicBool>,
}

struct Running {
    service: Arc<Service>,
    server: std::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    load: Option<JoinHandle<()>>,
}

impl Fleet {
    /// Opens every service's database (creating it, its schema and, when empty, some
    /// history) and starts its HTTP server on an OS-chosen loopback port.
    pub async fn start(config: FleetConfig) -> Result<Fleet, FleetError> {
        let mut fleet = Fleet {
            infos: Vec::new(),
            running: Vec::new(),
            fix: Arc::new(AtomicBool::new(false)),
        };
        for spec in catalog::SERVICES {
            match start_service(&config, spec, &fleet.fix).await {
                Ok((info, running)) => {
                    fleet.infos.push(info);
                    fleet.running.push(running);
                }
                Err(e) => {
                    // Leave nothing half-started behind.
                    fleet.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(fleet)
    }

    pub fn services(&self) -> &[ServiceInfo] {
        &self.infos
    }

    /// The demo's "fix deployed" switch: with it on, retried sagas and payout items run to
    /// completion; with it off, they fail again with the same error.
    pub fn set_fix_deployed(&self, on: bool) {
        self.fix.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The demo's payout worker switch: off, payouts' running batch stops advancing (as the
    /// Friday batch did) while its service answers as ever; on, it moves again.
    pub fn set_payout_worker(&self, running: bool) {
        for r in &self.running {
            r.service.set_payout_worker(running);
        }
    }

    /// Starts `count` sagas of `service` that fail with `message` at `at_step` (their first
    /// step when `None`), the steps before it done; returns their ids.
    pub async fn inject_error(
        &self,
        service: &str,
        message: &str,
        count: u32,
        at_step: Option<&str>,
    ) -> Result<Vec<String>, FleetError> {
        self.find(service)?
            .service
            .inject_error(message, count, at_step)
            .await
    }

    /// Makes every mission-control call of `service` take `latency` longer (zero: as fast as
    /// it can), as its `setLatency` demo control does.
    pub fn set_latency(
        &self,
        service: &str,
        latency: std::time::Duration,
    ) -> Result<(), FleetError> {
        self.find(service)?.service.set_latency(latency);
        Ok(())
    }

    /// Turns `service`'s check of the fencing token on or off (on from the start). Off, a
    /// call from a Runboard replica that lost its lease is applied like any other: only
    /// Runboard's own lease keeps such calls from being sent.
    pub fn set_fence(&self, service: &str, on: bool) -> Result<(), FleetError> {
        self.find(service)?.service.set_fence(on);
        Ok(())
    }

    /// Puts exactly these entities of `service` on legal hold, as its `setLegalHold` demo
    /// control does: a real call naming one is refused as a whole.
    pub fn set_legal_hold(&self, service: &str, ids: Vec<String>) -> Result<(), FleetError> {
        self.find(service)?.service.set_legal_hold(ids);
        Ok(())
    }

    /// Every mission-control call `service` received, oldest first.
    pub async fn call_log(&self, service: &str) -> Result<Vec<CallRecord>, FleetError> {
        self.find(service)?.service.call_log(i64::MAX).await
    }

    /// Shuts `service`'s HTTP server down, so its GraphQL endpoint is unreachable; its
    /// database and load generator stay. Unknown names and stopped services are ignored.
    pub async fn stop_service(&self, service: &str) {
        let server = self
            .find(service)
            .ok()
            .and_then(|r| r.server.lock().expect("server slot").take());
        if let Some((stop, server)) = server {
            let _ = stop.send(());
            let _ = server.await;
        }
    }

    /// Stops every server and load generator and closes the databases.
    pub async fn shutdown(self) {
        for name in self.infos.iter().map(|i| i.name.clone()) {
            self.stop_service(&name).await;
        }
        for running in self.running {
            if let Some(load) = running.load {
                load.abort();
                let _ = load.await;
            }
            running.service.db.close().await;
        }
    }

    fn find(&self, service: &str) -> Result<&Running, FleetError> {
        self.running
            .iter()
            .find(|r| r.service.spec.name == service)
            .ok_or_else(|| FleetError::UnknownService(service.to_owned()))
    }
}

async fn start_service(
    config: &FleetConfig,
    spec: &'static catalog::ServiceSpec,
    fix: &Arc<AtomicBool>,
) -> Result<(ServiceInfo, Running), FleetError> {
    let database_url = database_url(&config.storage, spec.name)?;
    let service = Arc::new(Service::open(spec, &database_url, fix.clone()).await?);
    let bind_error = |source| FleetError::Io {
        path: "127.0.0.1:0".to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let app = mission_control::router(service.clone(), &config.callers);
    let (stop, stopped) = oneshot::channel::<()>();
    let name = spec.name;
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            tracing::warn!(service = name, "HTTP server stopped: {e}");
        }
    });
    let load = config
        .load
        .then(|| tokio::spawn(generate_load(service.clone())));
    let info = ServiceInfo {
        name: spec.name.to_owned(),
        team: spec.team.to_owned(),
        database_url,
        graphql_url: format!("http://127.0.0.1:{port}/graphql"),
        stuck_after: catalog::STUCK_AFTER,
        withheld_funds_query: (spec.kind == catalog::Kind::Payments)
            .then(|| payments::withheld_funds_query(service.db.dialect()).to_owned()),
        saga_events_query: (spec.kind == catalog::Kind::Payments)
            .then(|| payments::SAGA_EVENTS.to_owned()),
        entity_facts_query: (spec.kind == catalog::Kind::Payments)
            .then(|| payments::ENTITY_FACTS.to_owned()),
        id_pattern: None,
    };
    let running = Running {
        service,
        server: std::sync::Mutex::new(Some((stop, server))),
        load,
    };
    Ok((info, running))
}

async fn generate_load(service: Arc<Service>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if let Err(e) = service.tick().await {
            tracing::warn!(
                service = service.spec.name,
                "load generator tick failed: {e}"
            );
        }
    }
}

fn database_url(storage: &Storage, service: &str) -> Result<String, FleetError> {
    match storage {
        Storage::Sqlite { dir } => {
            std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let dir = dir.canonicalize().map_err(|source| FleetError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            Ok(format!(
                "sqlite://{}",
                dir.join(format!("{service}.db")).display()
            ))
        }
        Storage::Postgres {
            admin_url,
            database_prefix,
        } => {
            let mut url = url::Url::parse(admin_url).map_err(|e| FleetError::DatabaseUrl {
                url: admin_url.clone(),
                reason: e.to_string(),
            })?;
            url.set_path(&format!("/{database_prefix}_{service}"));
            Ok(url.into())
        }
    }
}

/// Adds `sagas` sagas of `service` (`payments`, `payouts` or `onboarding`) to the database at
/// `database_url`, creating the database and its schema if missing: most completed, 2.5%
/// failed across the service's five errors, 1% stuck, 0.5% running, created over the last
/// 30 days; payments also gets its transfers' events. Set-based SQL, one transaction.
pub async fn seed(database_url: &str, service: &str, sagas: u64) -> Result<SeedReport, FleetError> {
    seed_mix(database_url, service, sagas, seed::REALISTIC).await
}

/// Like [`seed`], but as an outage leaves them: all `sagas` failed in the last hour with one
/// error of their own ("upstream provider outage: connection refused"), one error group
/// for a bulk retry.
pub async fn seed_outage(
    database_url: &str,
    service: &str,
    sagas: u64,
) -> Result<SeedReport, FleetError> {
    seed_mix(database_url, service, sagas, seed::OUTAGE).await
}

async fn seed_mix(
    database_url: &str,
    service: &str,
    sagas: u64,
    mix: seed::Mix,
) -> Result<SeedReport, FleetError> {
    let started = std::time::Instant::now();
    let spec =
        catalog::find(service).ok_or_else(|| FleetError::UnknownService(service.to_owned()))?;
    let db = crate::db::connect(database_url).await?;
    let with_transfers = spec.kind == catalog::Kind::Payments;
    schema::ensure(&db, with_transfers).await?;
    let mut tx = db.begin().await?;
    let seeded = seed::sagas(&mut tx, db.dialect(), spec, sagas, mix).await?;
    tx.commit().await?;
    // Fresh statistics, so the planner knows the tables grew.
    db.execute_script(match (db.dialect(), with_transfers) {
        (Dialect::Sqlite, _) => "ANALYZE",
        (Dialect::Postgres, false) => "ANALYZE saga",
        (Dialect::Postgres, true) => "ANALYZE saga; ANALYZE transfer_event",
    })
    .await?;
    db.close().await;
    Ok(SeedReport {
        service: spec.name.to_owned(),
        sagas: seeded.sagas,
        transfer_events: seeded.transfer_events,
        elapsed: started.elapsed(),
    })
}
