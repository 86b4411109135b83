//! The promise under faults, at process level: two `runboard serve` replicas on one
//! PostgreSQL store run a 5,000-entity action against the demo fleet while the test kills
//! (SIGKILL, then a restart) or freezes (SIGSTOP for longer than the lease, then SIGCONT)
//! one replica at a time, at least 20 times at random points. The fleet's call log must
//! show every entity applied exactly once, no call applied from a replica after it lost its
//! lease, and the action succeeded. It runs twice: with the demo service's fencing-token check
//! on, and with it off, where no call may even reach the service from a replica after it
//! lost its lease: that is Runboard's own guarantee, not the service's.
//!
//! `FAULT_TEST_ENTITIES`, `FAULT_TEST_FAULTS` and `FAULT_TEST_SEED` make a larger run, or
//! replay one (README, "Testing the promise").

use crate::support as common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::start_fleet;
use runboard_core::App;
use runboard_core::config::{Config, Overrides};
use runboard_model::{ActionState, Role, User};
use runboard_testkit::{Backend, ChaosProxy, TestStore};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(2);
/// Entities per call.
const CHUNK: usize = 25;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small, seeded generator: a failing run can be replayed with its seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.next() % span.max(1))
    }
}

/// One `runboard serve` process of the two.
struct Replica {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
    stopped_until: Option<Instant>,
}

impl Replica {
    fn start(&mut self, config: &Path) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_runboard"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUNBOARD_DATABASE_URL")
            .env_remove("RUNBOARD_LISTEN")
            .env("RUNBOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("run the runboard binary");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("runboard stopped before serving")
                .unwrap();
            if line.starts_with("Runboard is serving at ") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        self.child = Some(child);
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    /// Sends `signal` (`-STOP`, `-CONT`); whether the process was there to get it.
    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Sends `signal` to a replica that must still be running.
    fn must_signal(&self, signal: &str) {
        assert!(self.signal(signal), "kill {signal} {}", self.pid());
    }

    fn kill(&mut self) {
        // Thawed first, so that it dies now; it may have died by itself meanwhile.
        if self.child.is_some() && self.stopped_until.take().is_some() {
            self.signal("-CONT");
        }
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL: no shutdown, no cleanup
            child.wait().unwrap();
        }
    }

    fn warnings(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// With the demo fleet's fencing-token check on, as a careful service runs it: a call from a
/// replica that lost its lease may reach the service, and is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_under_kills_and_freezes_apply_each_entity_once() {
    under_kills_and_freezes(Fence::On).await;
}

/// With the fleet's fence off, Runboard's own lease is all there is: no call may leave a
/// replica once its lease is gone, by its own clock, however long it was frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_replica_sends_a_call_after_losing_its_lease_with_the_services_fence_off() {
    under_kills_and_freezes(Fence::Off).await;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fence {
    On,
    Off,
}

async fn under_kills_and_freezes(fence: Fence) {
    let entities = setting("FAULT_TEST_ENTITIES", 5_000) as usize;
    let faults = setting("FAULT_TEST_FAULTS", 20) as usize;
    let seed = setting(
        "FAULT_TEST_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    println!(
        "{entities} entities, {faults} faults, the service's fence {fence:?}, FAULT_TEST_SEED={seed}"
    );
    let mut dice = Dice(seed);

    let fleet = start_fleet(Backend::Sqlite).await;
    fleet
        .fleet
        .set_fence("onboarding", fence == Fence::On)
        .unwrap();
    let onboarding = fleet.service("onboarding").clone();
    let seeded =
        runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", entities as u64)
            .await
            .unwrap();
    println!("seeded {} sagas in {:?}", seeded.sagas, seeded.elapsed);
    // Calls take a few ms on the wire, as across a network, so that faults land mid-run.
    let graphql: url::Url = onboarding.graphql_url.parse().unwrap();
    let proxy = ChaosProxy::start(graphql.socket_addrs(|| None).unwrap()[0]).await;
    proxy.slow_down(Duration::from_millis(2));
    let mut behind_proxy = graphql.clone();
    behind_proxy.set_port(Some(proxy.port())).unwrap();

    let store = TestStore::new(Backend::Postgres).await;
    let store_url = store.config.effective_url();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("runboard.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
[identity.oidc]
# Never reached: the replicas only execute; the test asks for and approves the action.
issuer = "http://127.0.0.1:9/"
client_id = "runboard"
[identity.roles]
operator = ["sre"]
approver = ["sre"]
[actions]
concurrency = 4
# Many chunks, so that the faults fall between and inside them all through the run.
chunk_size = {chunk}
lease = "{lease}ms"
[[services]]
name = "onboarding"
team = "growth"
database_url = "{db}"
graphql_url = "{gql}"
"#,
            lease = LEASE.as_millis(),
            chunk = CHUNK,
            db = onboarding.database_url,
            gql = behind_proxy,
        ),
    )
    .unwrap();

    let mut replicas = [
        Replica {
            name: "A",
            child: None,
            log: dir.path().join("a.log"),
            starts: 0,
            stopped_until: None,
        },
        Replica {
            name: "B",
            child: None,
            log: dir.path().join("b.log"),
            starts: 0,
            stopped_until: None,
        },
    ];
    for replica in &mut replicas {
        replica.start(&config_path);
    }

    // The test asks for the action and approves it through the same store, as two people.
    let config = Config::parse(
        &std::fs::read_to_string(&config_path).unwrap(),
        &config_path,
        &Overrides::default(),
    )
    .unwrap();
    let app = App::new(
        config.clone(),
        store.store,
        runboard_core::services::Fleet::connect(&config)
            .await
            .unwrap(),
    );
    let person = |login: &str| User {
        subject: format!("test:{login}").into(),
        name: login.into(),
        roles: [Role::Operator, Role::Approver].into(),
    };
    let mut ids = Vec::new();
    let mut filter = runboard_core::connector::SagaFilter {
        status: Some(runboard_model::SagaStatus::Failed),
        oldest_first: true,
        limit: runboard_core::connector::MAX_PAGE,
        ..Default::default()
    };
    let connector = app.fleet.service(&"onboarding".parse().unwrap()).unwrap();
    while ids.len() < entities {
        let page = connector.sagas(&filter, chrono::Utc::now()).await.unwrap();
        ids.extend(page.sagas.into_iter().map(|s| s.saga_id));
        filter.after = Some(page.next.expect("enough failed sagas").parse().unwrap());
    }
    ids.truncate(entities);
    let action = app
        .create_action(
            &person("alice"),
            &serde_json::from_value(json!({
                "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids },
                "reason": "fault test"
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let id = action.id.clone();
    app.submit_action(&person("alice"), &id, None, None)
        .await
        .unwrap();
    let started = Instant::now();
    app.approve_action(&person("bob"), &id, &action.digest)
        .await
        .unwrap();

    // Faults at random points spread over the run: each one once the action has recorded
    // about its share of the entities. One replica at a time; never both frozen.
    let mut points = Vec::new();
    while points.len() < faults {
        let step = entities as u64 / (faults as u64 + 1);
        let due = step * (points.len() as u64 + 1) + dice.next() % step.max(1) / 2;
        let now = loop {
            for replica in &mut replicas {
                if replica
                    .stopped_until
                    .is_some_and(|until| Instant::now() >= until)
                {
                    replica.must_signal("-CONT");
                    replica.stopped_until = None;
                }
            }
            let now = app.action(&id).await.unwrap();
            assert!(
                !now.state.is_final() && now.state != ActionState::Paused,
                "the action became {:?} after {} of {faults} faults: {:?}",
                now.state,
                points.len(),
                now.state_detail
            );
            if now.progress.succeeded + now.progress.failed >= due {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let running: Vec<usize> = (0..2)
            .filter(|i| replicas[*i].stopped_until.is_none())
            .collect();
        if running.is_empty() {
            continue;
        }
        let target = running[(dice.next() % running.len() as u64) as usize];
        // Never both frozen at once: with one frozen, the other may only be killed.
        let kill = running.len() < 2 || dice.next().is_multiple_of(2);
        let replica = &mut replicas[target];
        let done = now.progress.succeeded + now.progress.failed;
        let kind = if kill {
            replica.kill();
            replica.start(&config_path);
            "SIGKILL, restarted"
        } else {
            replica.must_signal("-STOP");
            let frozen = dice.between(LEASE + Duration::from_millis(500), LEASE * 2);
            replica.stopped_until = Some(Instant::now() + frozen);
            "SIGSTOP, SIGCONT after it lost the lease"
        };
        points.push(format!(
            "{:>6.1}s  replica {}  {kind:<40} {done:>6} of {entities} recorded",
            started.elapsed().as_secs_f64(),
            replica.name
        ));
    }
    for replica in &mut replicas {
        if replica.stopped_until.take().is_some() {
            replica.must_signal("-CONT");
        }
    }
    println!("fault points:\n{}", points.join("\n"));

    let ended = loop {
        let now = app.action(&id).await.unwrap();
        if now.state.is_final() || now.state == ActionState::Paused {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not done after 10 min: {:?}; A:\n{}\nB:\n{}",
            now.progress,
            replicas[0].warnings(),
            replicas[1].warnings()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = started.elapsed();
    assert_eq!(
        ended.state,
        ActionState::Succeeded,
        "{:?} {:?}; A:\n{}\nB:\n{}",
        ended.state_detail,
        ended.progress,
        replicas[0].warnings(),
        replicas[1].warnings()
    );
    assert_eq!(ended.progress.succeeded, entities as u64);

    // The fleet's own log of what reached it.
    let calls = fleet.real_keyed_calls("onboarding", id.as_str()).await;
    let mut applied: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    let mut named: BTreeMap<&str, &serde_json::Value> = BTreeMap::new();
    for call in &calls {
        let key = call.idempotency_key.as_deref().unwrap();
        *sent.entry(key).or_default() += 1;
        let first = named.entry(key).or_insert(&call.variables["ids"]);
        assert_eq!(
            **first, call.variables["ids"],
            "{key} named other entities when sent again"
        );
        if call.applied {
            for entity in call.variables["ids"].as_array().unwrap() {
                *applied.entry(entity.as_str().unwrap()).or_default() += 1;
            }
        }
    }
    assert_eq!(applied.len(), entities, "every entity applied");
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let again = sent.values().filter(|n| **n > 1).count();

    // When each epoch began, by the store: a call applied under an older epoch after a
    // newer one began came from a replica that had lost its lease.
    let starts: Vec<(i64, chrono::DateTime<chrono::Utc>)> = app
        .store
        .audit_of_action(&id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "action.started")
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            (detail["epoch"].as_i64().unwrap(), e.at)
        })
        .collect();
    let late = |call: &&runboard_fleet::CallRecord| {
        let epoch = call.lease_epoch.expect("every call names its lease");
        starts
            .iter()
            .any(|(newer, at)| *newer > epoch && *at < call.received_at)
    };
    let late_sent: Vec<_> = calls
        .iter()
        .filter(late)
        .map(|c| (c.idempotency_key.clone(), c.replica.clone(), c.lease_epoch))
        .collect();
    if fence == Fence::Off {
        assert!(
            late_sent.is_empty(),
            "sent after their replica lost the lease: {late_sent:?}"
        );
    }
    let late_sent = late_sent.len();
    let late_applied: Vec<_> = calls
        .iter()
        .filter(late)
        .filter(|c| c.applied)
        .map(|c| (c.idempotency_key.clone(), c.replica.clone(), c.lease_epoch))
        .collect();
    assert!(
        late_applied.is_empty(),
        "applied after their replica lost the lease: {late_applied:?}"
    );
    let fenced = calls
        .iter()
        .filter(|c| {
            c.error
                .as_deref()
                .is_some_and(|e| e.contains("stale lease"))
        })
        .count();
    println!(
        "succeeded: {entities} entities applied exactly once in {:.1}s with {faults} faults; \
         {again} chunks of {CHUNK} sent again with the same key (answered from the service's idempotency table); \
         {} execution starts (epochs); {late_sent} calls reached the service from a replica after it had lost its lease, \
         none applied ({fenced} refused by the service's fence); \
         replica starts: A {}, B {}",
        wall.as_secs_f64(),
        starts.len(),
        replicas[0].starts,
        replicas[1].starts,
    );
}
