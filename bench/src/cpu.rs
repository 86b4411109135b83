//! Where the processors' time went during a stretch of the run, by whom it worked for:
//! Runboard, this process (the demo fleet and the bench's own requests), and PostgreSQL's
//! processes by the database they served. On two cores a preview takes the processor time of
//! everything it sets going, so this says what a change has to cut (README, "Beyond 100,000
//! entities"). Read from Linux's `/proc`, every half second: a process that lives less than
//! that is missed, and PostgreSQL's processes are counted only when its server runs on this
//! machine.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_millis(500);
/// `/proc/<pid>/stat` counts in clock ticks of 1/100 s on every Linux architecture (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// Whom a process worked for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Worker {
    Runboard,
    FleetAndBench,
    Store,
    Service,
    PostgresOther,
}

impl Worker {
    const ALL: [Worker; 5] = [
        Worker::Runboard,
        Worker::FleetAndBench,
        Worker::Store,
        Worker::Service,
        Worker::PostgresOther,
    ];

    fn label(self) -> &'static str {
        match self {
            Worker::Runboard => "Runboard",
            Worker::FleetAndBench => "the demo fleet and the bench (this process)",
            Worker::Store => "PostgreSQL: Runboard's store",
            Worker::Service => "PostgreSQL: the service's database",
            Worker::PostgresOther => "PostgreSQL: the rest (autovacuum, WAL, checkpoints)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Worker::Runboard => "runboard",
            Worker::FleetAndBench => "fleet_and_bench",
            Worker::Store => "postgres_store",
            Worker::Service => "postgres_service",
            Worker::PostgresOther => "postgres_other",
        }
    }
}

/// The processes to watch and the databases that tell PostgreSQL's apart.
pub struct Watched {
    pub admin_url: String,
    pub runboard_pid: u32,
    pub store_database: String,
    pub service_database: String,
}

/// Processor seconds by worker over `seconds` of the wall clock.
pub struct CpuUse {
    pub seconds: f64,
    used: HashMap<Worker, f64>,
    /// Whether any of PostgreSQL's processes could be read (not when it runs elsewhere).
    postgres_seen: bool,
}

impl CpuUse {
    fn of(&self, worker: Worker) -> f64 {
        self.used.get(&worker).copied().unwrap_or_default()
    }

    fn total(&self) -> f64 {
        self.used.values().sum()
    }

    pub fn json(&self) -> Value {
        let mut figures = json!({ "wall_s": self.seconds, "total_s": self.total() });
        for worker in Worker::ALL {
            figures[worker.key()] = json!(self.of(worker));
        }
        figures
    }
}

/// Prints processor seconds by worker, a column for each stretch, with the cores they kept
/// busy on average.
pub fn print_table(stretches: &[(&str, &CpuUse)]) {
    print!("\n{:<52}", "processor time (s)");
    for (name, _) in stretches {
        print!(" {name:>22}");
    }
    println!();
    for worker in Worker::ALL {
        print!("{:<52}", worker.label());
        for (_, used) in stretches {
            print!(" {:>22.1}", used.of(worker));
        }
        println!();
    }
    print!("{:<52}", "all (cores busy on average)");
    for (_, used) in stretches {
        let all = format!("{:.1} ({:.2})", used.total(), used.total() / used.seconds);
        print!(" {all:>22}");
    }
    println!();
    if stretches.iter().any(|(_, used)| !used.postgres_seen) {
        println!(
            "(PostgreSQL's processes could not be read: it runs elsewhere, and is not counted)"
        );
    }
}

/// Samples the watched processes until stopped.
pub struct CpuMeter {
    stop: oneshot::Sender<()>,
    sampling: JoinHandle<Result<CpuUse, String>>,
}

impl CpuMeter {
    /// Starts counting from now.
    pub async fn start(watched: Watched) -> Result<Self, String> {
        let mut db = PgConnection::connect(&watched.admin_url)
            .await
            .map_err(|e| format!("PostgreSQL, for its processes: {e}"))?;
        let started = Instant::now();
        let mut tally = Tally::default();
        tally.sample(&processes(&mut db, &watched).await?, true);
        let (stop, mut stopped) = oneshot::channel();
        let sampling = tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => tally.sample(&processes(&mut db, &watched).await?, false),
                }
            }
            tally.sample(&processes(&mut db, &watched).await?, false);
            Ok(tally.finish(started.elapsed()))
        });
        Ok(Self { stop, sampling })
    }

    /// What was used since the start.
    pub async fn stop(self) -> Result<CpuUse, String> {
        let _ = self.stop.send(());
        self.sampling
            .await
            .map_err(|e| format!("counting processor time: {e}"))?
    }
}

/// Each process's processor seconds when first and last seen; those of processes that ended
/// are kept by worker.
#[derive(Default)]
struct Tally {
    /// At the start, for processes already running then.
    baseline: HashMap<u32, f64>,
    last: HashMap<u32, (Worker, f64)>,
    ended: HashMap<Worker, f64>,
    postgres_seen: bool,
}

impl Tally {
    fn sample(&mut self, processes: &[(u32, Worker)], first: bool) {
        let mut seen = HashMap::with_capacity(processes.len());
        for &(pid, worker) in processes {
            let Some(cpu) = cpu_seconds(pid) else {
                continue;
            };
            if first {
                self.baseline.insert(pid, cpu);
            }
            if !matches!(worker, Worker::Runboard | Worker::FleetAndBench) {
                self.postgres_seen = true;
            }
            seen.insert(pid, (worker, cpu));
        }
        for (pid, (worker, cpu)) in &self.last {
            if !seen.contains_key(pid) {
                *self.ended.entry(*worker).or_default() += cpu - self.since(*pid);
            }
        }
        self.last = seen;
    }

    fn since(&self, pid: u32) -> f64 {
        self.baseline.get(&pid).copied().unwrap_or_default()
    }

    fn finish(self, elapsed: Duration) -> CpuUse {
        let mut used = self.ended.clone();
        for (pid, (worker, cpu)) in &self.last {
            *used.entry(*worker).or_default() += cpu - self.since(*pid);
        }
        CpuUse {
            seconds: elapsed.as_secs_f64(),
            used,
            postgres_seen: self.postgres_seen,
        }
    }
}

/// The watched processes now: Runboard, this one, and PostgreSQL's (but the one answering).
async fn processes(db: &mut PgConnection, watched: &Watched) -> Result<Vec<(u32, Worker)>, String> {
    let backends: Vec<(i32, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT pid, datname::text, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
    )
    .fetch_all(db)
    .await
    .map_err(|e| format!("PostgreSQL's processes: {e}"))?;
    let mut processes = vec![
        (watched.runboard_pid, Worker::Runboard),
        (std::process::id(), Worker::FleetAndBench),
    ];
    processes.extend(backends.into_iter().map(|(pid, database, kind)| {
        let serves_a_database =
            matches!(kind.as_deref(), Some("client backend" | "parallel worker"));
        let worker = match database {
            Some(d) if serves_a_database && d == watched.store_database => Worker::Store,
            Some(d) if serves_a_database && d == watched.service_database => Worker::Service,
            _ => Worker::PostgresOther,
        };
        (u32::try_from(pid).unwrap_or_default(), worker)
    }));
    Ok(processes)
}

/// A process's user and system time so far, from `/proc/<pid>/stat`; `None` once it ended
/// (or where it does not run on this machine).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields are counted after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |at: usize| fields.get(at)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}
