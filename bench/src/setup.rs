//! What a run measures against: fresh PostgreSQL databases, the demo fleet seeded on them,
//! and Runboard itself as a separate `runboard serve` process, as users run it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runboard_core::config::StoreConfig;
use runboard_core::store::Store;
use runboard_fleet::{CallerCheck, Fleet, FleetConfig, ServiceInfo, Storage};
use runboard_model::{Role, User};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::process::{Child, Command};

/// Where to find things and how big to make them.
#[derive(Clone)]
pub struct Settings {
    /// The maintenance database the run creates its databases from.
    pub admin_url: String,
    pub sagas_per_service: u64,
    /// Seed only this service; the others keep the fleet's own few sagas.
    pub seed_only: Option<&'static str>,
    /// Instead of the fleet on PostgreSQL, seeded: this many services, each on its own
    /// SQLite file copied from one of the fleet's (its own few sagas), as many services'
    /// databases are on their own servers.
    pub service_copies: Option<usize>,
    /// The release binary and the site it serves.
    pub runboard: PathBuf,
    pub site_root: PathBuf,
    /// Keep the databases after the run, to look at them.
    pub keep: bool,
}

/// Everything a run started; [`Setup::stop`] ends it all and drops the databases.
pub struct Setup {
    pub fleet: Fleet,
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// Signed in as a viewer with a personal API token.
    pub client: reqwest::Client,
    /// How long seeding the fleet took.
    pub seeded_in: Duration,
    store_url: String,
    runboard: Runboard,
    databases: Vec<String>,
    admin_url: String,
    keep: bool,
    dir: PathBuf,
}

impl Setup {
    pub async fn start(settings: &Settings) -> Result<Self, String> {
        for (what, path) in [
            ("binary", &settings.runboard),
            ("site", &settings.site_root),
        ] {
            if !path.exists() {
                return Err(format!(
                    "the release {what} {} is missing; build it with `cargo xtask build --release` (scripts/bench does)",
                    path.display()
                ));
            }
        }
        let prefix = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let store_database = format!("{prefix}_store");
        let mut databases = vec![store_database.clone()];
        admin(
            &settings.admin_url,
            &format!("CREATE DATABASE {store_database}"),
        )
        .await?;
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (fleet, services, seeded_in) = match settings.service_copies {
            Some(copies) => {
                let (fleet, services) = fleet_copies(&dir, copies).await?;
                (fleet, services, Duration::ZERO)
            }
            None => {
                let (fleet, seeded_in) = seeded_fleet(settings, &prefix).await?;
                databases.extend(
                    fleet
                        .services()
                        .iter()
                        .map(|s| database_name(&s.database_url)),
                );
                let services = fleet.services().to_vec();
                (fleet, services, seeded_in)
            }
        };
        let port = free_port()?;
        let address = format!("http://127.0.0.1:{port}");
        let store_url = database_url(&settings.admin_url, &store_database)?;
        let config = config_toml(settings, port, &store_url, &services)?;
        let config_path = dir.join("runboard.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let runboard = spawn_runboard(&settings.runboard, &config_path, &dir.join("runboard.log"))?;
        let mut setup = Self {
            fleet,
            address,
            client: reqwest::Client::new(),
            seeded_in,
            store_url: store_url.clone(),
            runboard,
            databases,
            admin_url: settings.admin_url.clone(),
            keep: settings.keep,
            dir,
        };
        setup.wait_until_ready().await?;
        let token = issue_token(&store_url, "bench:viewer", Role::Viewer).await?;
        setup.client = bearer_client(&token)?;
        setup.wait_for_first_poll().await?;
        Ok(setup)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A client signed in with a personal API token of `subject`, who holds `role`.
    pub async fn client_for(&self, subject: &str, role: Role) -> Result<reqwest::Client, String> {
        bearer_client(&issue_token(&self.store_url, subject, role).await?)
    }

    /// What [`crate::cpu::CpuMeter`] watches: Runboard's process, and PostgreSQL's for the store
    /// and for the service whose database is at `service_database_url`.
    pub fn watched(&self, service_database_url: &str) -> crate::cpu::Watched {
        crate::cpu::Watched {
            admin_url: self.admin_url.clone(),
            runboard_pid: self.runboard.0.id(),
            store_database: database_name(&self.store_url),
            service_database: database_name(service_database_url),
        }
    }

    /// The most memory Runboard's process has held so far (its high-water mark).
    pub fn runboard_peak_rss_mb(&self) -> Result<f64, String> {
        self.runboard_memory_mb("VmHWM")
    }

    /// One of the memory figures of Runboard's process in `/proc/<pid>/status` (`VmRSS`,
    /// what it holds now; `VmHWM`, the most it held), in MB.
    pub fn runboard_memory_mb(&self, field: &str) -> Result<f64, String> {
        let pid = self.runboard.0.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
        let kb: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))?;
        Ok(kb / 1024.0)
    }

    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.runboard.0.try_wait() {
                return Err(format!(
                    "runboard serve exited ({status}); its log is {}",
                    self.dir.join("runboard.log").display()
                ));
            }
            let ready = reqwest::get(self.url("/readyz")).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "runboard serve was not ready within 60 s; its log is {}",
            self.dir.join("runboard.log").display()
        ))
    }

    /// Pages show the poller's figures: measure once every service has them.
    async fn wait_for_first_poll(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let services: serde_json::Value = self
                .client
                .get(self.url("/api/v1/services"))
                .send()
                .await
                .map_err(|e| format!("GET /api/v1/services: {e}"))?
                .json()
                .await
                .map_err(|e| format!("GET /api/v1/services: {e}"))?;
            let listed = services["services"].as_array().cloned().unwrap_or_default();
            if !listed.is_empty() && listed.iter().all(|s| !s["polled_at"].is_null()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err("the services were not polled within 120 s".into())
    }

    /// Stops Runboard and the fleet, and drops the databases unless asked to keep them.
    pub async fn stop(self) {
        drop(self.runboard);
        self.fleet.shutdown().await;
        if self.keep {
            say(&format!(
                "kept the databases {} and {}",
                self.databases.join(", "),
                self.dir.display()
            ));
            return;
        }
        for database in &self.databases {
            let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
            if let Err(e) = admin(&self.admin_url, &drop).await {
                eprintln!("could not drop {database}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The demo fleet on PostgreSQL (`{prefix}_*`), seeded as `settings` says, and how long
/// seeding took.
async fn seeded_fleet(settings: &Settings, prefix: &str) -> Result<(Fleet, Duration), String> {
    say(&format!(
        "starting the demo fleet on PostgreSQL ({prefix}_*)"
    ));
    let fleet = Fleet::start(FleetConfig {
        storage: Storage::Postgres {
            admin_url: settings.admin_url.clone(),
            database_prefix: prefix.to_owned(),
        },
        callers: CallerCheck::Anyone,
        // A quiet fleet: the figures are Runboard's, not the load generator's.
        load: false,
    })
    .await
    .map_err(|e| format!("the demo fleet did not start: {e}"))?;
    let seeding = Instant::now();
    for service in fleet
        .services()
        .iter()
        .filter(|s| settings.seed_only.is_none_or(|only| s.name == only))
    {
        let report = runboard_fleet::seed(
            &service.database_url,
            &service.name,
            settings.sagas_per_service,
        )
        .await
        .map_err(|e| format!("seeding {} failed: {e}", service.name))?;
        say(&format!(
            "seeded {} sagas into {} in {:.1} s",
            report.sagas,
            service.name,
            report.elapsed.as_secs_f64()
        ));
    }
    Ok((fleet, seeding.elapsed()))
}

/// The demo fleet on SQLite files in `dir`, and `copies` services for Runboard: copy `i` of
/// the fleet's service `i mod 3`, named after it, on its own copy of that service's file
/// (`VACUUM INTO`, consistent while the fleet runs), answering on its GraphQL endpoint.
async fn fleet_copies(dir: &Path, copies: usize) -> Result<(Fleet, Vec<ServiceInfo>), String> {
    say(&format!(
        "starting the demo fleet on SQLite and copying its databases for {copies} services"
    ));
    let fleet = Fleet::start(FleetConfig {
        storage: Storage::Sqlite {
            dir: dir.join("fleet"),
        },
        callers: CallerCheck::Anyone,
        load: false,
    })
    .await
    .map_err(|e| format!("the demo fleet did not start: {e}"))?;
    let originals = fleet.services().to_vec();
    let mut services = Vec::with_capacity(copies);
    for (i, original) in originals.iter().cycle().take(copies).enumerate() {
        let file = dir.join(format!("{}-{i}.db", original.name));
        let mut connection = sqlx::SqliteConnection::connect(&original.database_url)
            .await
            .map_err(|e| format!("{}: {e}", original.database_url))?;
        sqlx::query("VACUUM INTO ?")
            .bind(file.display().to_string())
            .execute(&mut connection)
            .await
            .map_err(|e| format!("copying {} to {}: {e}", original.name, file.display()))?;
        services.push(ServiceInfo {
            name: format!("{}-{i}", original.name),
            database_url: format!("sqlite://{}", file.display()),
            ..original.clone()
        });
    }
    Ok((fleet, services))
}

/// Progress, on stderr: stdout is the table and the JSON.
pub fn say(what: &str) {
    eprintln!("==> {what}");
}

async fn admin(admin_url: &str, sql: &str) -> Result<(), String> {
    let mut connection = PgConnection::connect(admin_url).await.map_err(|e| {
        format!("PostgreSQL at {admin_url} did not answer ({e}); start it, or pass --postgres-url")
    })?;
    sqlx::query(sql)
        .execute(&mut connection)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    Ok(())
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

fn database_url(admin_url: &str, database: &str) -> Result<String, String> {
    let mut url = url::Url::parse(admin_url).map_err(|e| format!("{admin_url}: {e}"))?;
    url.set_path(&format!("/{database}"));
    Ok(url.into())
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A production config: the PostgreSQL store, the fleet's services, and an OpenID provider
/// nobody signs in with (the run signs in with an API token; the provider is reached only
/// at sign-in, so it need not exist).
fn config_toml(
    settings: &Settings,
    port: u16,
    store_url: &str,
    services: &[ServiceInfo],
) -> Result<String, String> {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut toml = format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\nsite_root = {site}\npublic_url = \"http://127.0.0.1:{port}\"\nrequest_timeout = \"480s\"\n\n\
         [store]\nurl = {store}\n\n\
         [identity.oidc]\nissuer = \"http://127.0.0.1:9/no-sign-in-during-the-bench\"\nclient_id = \"runboard-bench\"\n\n\
         [identity.roles]\nviewer = [\"bench\"]\n\n\
         # The viewers share one token on purpose, to measure rendering, not the limits.\n\
         [limits]\nper_person_per_second = 1000000\nper_person_burst = 1000000\n\n\
         # A preview of a million entities takes longer than the default minute a request may.\n\
         [actions]\ndry_run_time_limit = \"420s\"\n\n",
        site = quote(
            &settings
                .site_root
                .canonicalize()
                .map_err(|e| e.to_string())?
                .display()
                .to_string()
        ),
        store = quote(store_url),
    );
    for service in services {
        toml += &format!(
            "[[services]]\nname = {}\nteam = {}\ndatabase_url = {}\ngraphql_url = {}\nstuck_after = \"{}s\"\n",
            quote(&service.name),
            quote(&service.team),
            quote(&service.database_url),
            quote(&service.graphql_url),
            service.stuck_after.as_secs(),
        );
        let queries: Vec<String> = [
            ("withheld_funds", &service.withheld_funds_query),
            ("saga_events", &service.saga_events_query),
            ("entity_facts", &service.entity_facts_query),
        ]
        .into_iter()
        .filter_map(|(key, query)| query.as_ref().map(|q| format!("{key} = {}\n", quote(q))))
        .collect();
        if !queries.is_empty() {
            toml += &format!("[services.queries]\n{}", queries.concat());
        }
        toml += "\n";
    }
    Ok(toml)
}

/// The `runboard serve` process, stopped when dropped, also when a run fails half-way.
struct Runboard(Child);

impl Drop for Runboard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_runboard(binary: &Path, config: &Path, log: &Path) -> Result<Runboard, String> {
    let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let stderr = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUNBOARD_LOG", "warn,runboard_core::actions=info")
        // The allocator's settings of the image (Dockerfile): Runboard as it is shipped.
        .env("MIMALLOC_PURGE_DELAY", "0")
        .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .map(Runboard)
        .map_err(|e| format!("could not start {}: {e}", binary.display()))
}

/// A personal API token of `subject`, who holds `role`, issued straight into the store
/// `runboard serve` migrated.
async fn issue_token(store_url: &str, subject: &str, role: Role) -> Result<String, String> {
    let store = Store::connect(&StoreConfig {
        url: Some(store_url.into()),
        ..StoreConfig::default()
    })
    .await
    .map_err(|e| format!("the store at {store_url}: {e}"))?;
    let user = User {
        subject: subject.into(),
        name: subject.into(),
        roles: [role].into_iter().collect(),
    };
    let issued = store
        .issue_api_token(
            &user,
            "bench",
            Duration::from_secs(24 * 3600),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| format!("issuing the bench's API token: {e}"))?;
    Ok(issued.secret)
}

fn bearer_client(token: &str) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .map_err(|e| format!("{e}"))?,
    );
    reqwest::Client::builder()
        .default_headers(headers)
        // Longer than Runboard's own request timeout: a slow answer is Runboard's to give.
        .timeout(Duration::from_secs(510))
        // Viewers keep their connections, as browsers do.
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())
}
