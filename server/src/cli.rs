//! The command line of SPEC.md's "Running it": `demo`, `serve`, `check-config`, `migrate`;
//! and the clients of a Runboard's API: `login`/`logout`, `action` for actions kept as
//! files, and the reads `sagas`, `batches`, `funds`, `alerts`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use runboard_core::App;
use runboard_core::config::{Config, ConfigError, Overrides};
use runboard_core::connector::ReadError;
use runboard_core::identity::SessionStore;
use runboard_core::services::Fleet;
use runboard_core::store::{Store, StoreError};
use runboard_core::{execution, poller};
#[cfg(feature = "demo")]
use runboard_fleet::{CallerCheck, Fleet as DemoFleet, FleetConfig, Storage};
use tokio::net::TcpListener;

use crate::action_cli::ActionCommand;
use crate::demo;
use crate::http::{ServerState, metrics_router, serve};
use crate::telemetry::{self, LogFormat};

const ENVIRONMENT: &str = "\
Environment variables (each overrides its flag's default and the config file):
  RUNBOARD_CONFIG         path of the config file (--config)
  RUNBOARD_LISTEN         address to serve on (--listen; config http.listen)
  RUNBOARD_DATABASE_URL   postgres://… or sqlite://… store (--database-url; config store.url)
  RUNBOARD_DATA_DIR       directory of the embedded SQLite store (--data-dir; config store.data_dir)
  RUNBOARD_SITE_ROOT      directory of the built site with pkg/ (--site-root; config http.site_root)
  RUNBOARD_OIDC_CLIENT_SECRET  the OpenID provider's client secret (config identity.oidc.client_secret)
  RUNBOARD_LOG_FORMAT     text or json (--log-format)
  RUNBOARD_LOG            what to log, e.g. \"info\" or \"debug,sqlx=warn\"
  RUNBOARD_URL, RUNBOARD_TOKEN  the Runboard and personal API token the clients (action,
                          sagas, batches, funds, alerts) use; a token wins over `runboard login`
Any secret in the config file may be given as <key>_file = \"/path\" (a mounted Secret's file)
or <key>_env = \"VARIABLE\" instead of <key> (README, \"Secrets\").";

/// How often sessions past their timeout are deleted from the store.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Runboard: the run work of a microservice fleet on one dashboard.
#[derive(Debug, Parser)]
#[command(name = "runboard", version, after_help = ENVIRONMENT)]
pub struct Cli {
    /// Log as human-readable text or as JSON lines.
    #[arg(
        long,
        global = true,
        env = "RUNBOARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The embedded default: an SQLite store in DATA_DIR and the demo fleet, on loopback only.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to serve on; must be a loopback address.
        #[arg(long, env = "RUNBOARD_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Directory for the demo's store and files, created if missing.
        #[arg(long, env = "RUNBOARD_DATA_DIR", default_value = "runboard-data")]
        data_dir: PathBuf,
        /// Adds an outage at start: this many onboarding sagas failed in the last hour with
        /// the same error, to try an action on a whole error group at fleet scale.
        #[arg(long, value_name = "SAGAS")]
        outage: Option<u64>,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Production: services and store from the config file.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to serve on (overrides http.listen).
        #[arg(long, env = "RUNBOARD_LISTEN")]
        listen: Option<SocketAddr>,
        /// From a laptop: discover the services in this kubeconfig context and reach them
        /// by port-forward (the config's [kubernetes] otherwise).
        #[arg(long, value_name = "NAME")]
        kube_context: Option<String>,
        #[command(flatten)]
        site: SiteArgs,
    },
    /// Validate a config and reach its store and every service; exit non-zero with the reasons.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Apply the store's migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Plan, submit and follow actions kept as reviewable files, against a running Runboard
    /// (RUNBOARD_URL) with a personal API token (RUNBOARD_TOKEN) or `runboard login`'s sign-in.
    Action {
        #[command(subcommand)]
        command: ActionCommand,
    },
    #[command(flatten)]
    SignIn(crate::cli_login::SignIn),
    #[command(flatten)]
    Read(crate::cli_reads::Read),
    /// Print the API's OpenAPI 3.1 document (also served at /api/v1/openapi.json), for
    /// client generators and reviews.
    Openapi,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The TOML config file.
    #[arg(long, env = "RUNBOARD_CONFIG")]
    config: PathBuf,
    /// The store (overrides store.url).
    #[arg(long, env = "RUNBOARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of the embedded SQLite store (overrides store.data_dir).
    #[arg(long, env = "RUNBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SiteArgs {
    /// Directory of the built site, holding pkg/ (overrides http.site_root).
    #[arg(long, env = "RUNBOARD_SITE_ROOT")]
    site_root: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Fleet(#[from] ReadError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// A request to a Runboard's API that did not go through; the text says why.
    #[error("{0}")]
    Client(String),
    #[error("{0} service(s) could not be read; see above")]
    Services(usize),
    #[cfg(feature = "demo")]
    #[error("the demo fleet did not start: {0}")]
    DemoFleet(String),
    #[error("the server stopped with an error: {0}")]
    Serve(std::io::Error),
    #[error(
        "no one could sign in: configure an OpenID provider under [identity.oidc] (and the groups for each role under [identity.roles]), or run `runboard demo` for the embedded default with demo users"
    )]
    NoWayIn,
    #[error("the demo users' API tokens could not be issued: {0}")]
    DemoTokens(String),
    #[error("[kubernetes] discover is on, but {0}")]
    Cluster(#[from] runboard_cluster::ClusterError),
}

/// Runs one command; the exit code is 0 on success and 1 with the reason on stderr otherwise.
pub fn run(cli: Cli) -> ExitCode {
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "runboard stopped");
            // A refusal may quote a service's words: shown, never obeyed, by the terminal.
            eprintln!("error: {}", crate::action_cli::printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Openapi => {
            let document = crate::http::api_document()
                .to_pretty_json()
                .expect("the document serializes");
            println!("{document}");
            Ok(())
        }
        Command::Action { command } => crate::action_cli::run(command)
            .await
            .map_err(Failure::Client),
        Command::SignIn(command) => crate::cli_login::run(command)
            .await
            .map_err(Failure::Client),
        Command::Read(read) => crate::cli_reads::run(read).await.map_err(Failure::Client),
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            data_dir,
            outage,
            site,
        } => {
            let mut config = Config::demo(&Overrides {
                listen: Some(listen),
                data_dir: Some(data_dir.clone()),
                site_root: site.site_root,
                ..Overrides::default()
            })?;
            let fleet = DemoFleet::start(FleetConfig {
                storage: Storage::Sqlite {
                    dir: data_dir.join("fleet"),
                },
                callers: CallerCheck::Anyone,
                load: true,
            })
            .await
            .map_err(|e| Failure::DemoFleet(e.to_string()))?;
            for service in fleet.services() {
                println!(
                    "demo service {:<11} GraphQL {}  database {}",
                    service.name, service.graphql_url, service.database_url
                );
                if let Some(sagas) = outage.filter(|_| service.name == "onboarding") {
                    let seeded =
                        runboard_fleet::seed_outage(&service.database_url, &service.name, sagas)
                            .await
                            .map_err(|e| Failure::DemoFleet(e.to_string()))?;
                    println!(
                        "demo outage: {} onboarding sagas failed with one error, seeded in {:.1}s",
                        seeded.sagas,
                        seeded.elapsed.as_secs_f64()
                    );
                }
                config
                    .services
                    .push(demo::service_config(service).map_err(Failure::DemoFleet)?);
            }
            demo::write_fleet_file(&data_dir, fleet.services()).map_err(Failure::DemoFleet)?;
            let served = start(config, true).await;
            fleet.shutdown().await;
            served
        }
        Command::Serve {
            config,
            listen,
            kube_context,
            site,
        } => {
            let overrides = Overrides {
                listen,
                kube_context,
                site_root: site.site_root,
                ..config.overrides()
            };
            start(Config::load(&config.config, &overrides)?, false).await
        }
        Command::CheckConfig { config } => {
            let loaded = Config::load(&config.config, &config.overrides())?;
            let store = Store::connect(&loaded.store).await?;
            store.check(Duration::from_secs(5)).await?;
            println!(
                "{}: valid; store reachable ({:?})",
                config.config.display(),
                store.kind()
            );
            let fleet = Fleet::connect(&loaded).await?;
            let no_variables = serde_json::json!({});
            let no_variables = &no_variables;
            let checks = fleet.services().into_iter().map(|connector| async move {
                // The smallest GraphQL question, through the client the actions use, with
                // the credentials they carry.
                let (database, mission_control) = tokio::join!(
                    Fleet::check(&connector, chrono::Utc::now()),
                    connector
                        .mission_control()
                        .request("{ __typename }", no_variables, &[])
                );
                let problems: Vec<String> = [
                    database.err().map(|e| e.problem.to_string()),
                    mission_control.err().map(|e| e.to_string()),
                ]
                .into_iter()
                .flatten()
                .collect();
                (connector.name().to_string(), problems)
            });
            let mut unreachable = 0;
            for (service, problems) in futures_util::future::join_all(checks).await {
                if problems.is_empty() {
                    println!("ok      {service}: database and mission control answer");
                } else {
                    unreachable += 1;
                    println!("FAILED  {service}: {}", problems.join("; "));
                }
            }
            match unreachable {
                0 => Ok(()),
                n => Err(Failure::Services(n)),
            }
        }
        Command::Migrate { config } => {
            let loaded = Config::load(&config.config, &config.overrides())?;
            let store = Store::connect(&loaded.store).await?;
            store.migrate().await?;
            println!("store migrated ({:?})", store.kind());
            Ok(())
        }
    }
}

impl ConfigArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            database_url: self.database_url.clone().map(Into::into),
            data_dir: self.data_dir.clone(),
            // From the environment only: a secret on the command line shows in `ps`.
            oidc_client_secret: std::env::var("RUNBOARD_OIDC_CLIENT_SECRET")
                .ok()
                .map(Into::into),
            mission_control_client_secret: std::env::var("RUNBOARD_MISSION_CONTROL_CLIENT_SECRET")
                .ok()
                .map(Into::into),
            ..Overrides::default()
        }
    }
}

/// Opens and migrates the store, syncs the registry (with the demo fleet's runbooks when
/// `demo_runbooks`), and serves until SIGTERM or Ctrl-C.
async fn start(config: Config, demo_runbooks: bool) -> Result<(), Failure> {
    if config.identity.oidc.is_none() && !config.identity.demo_users {
        return Err(Failure::NoWayIn);
    }
    let store = Store::connect(&config.store).await?;
    store.migrate().await?;
    if config.identity.demo_users {
        demo::issue_demo_tokens(&store, &config.store.data_dir)
            .await
            .map_err(Failure::DemoTokens)?;
    }
    store
        .register_configured_services(&config, chrono::Utc::now())
        .await?;
    let address = config.http.listen;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Failure::Listen { address, source })?;
    let bound = listener.local_addr().map_err(Failure::Serve)?;
    let metrics_listener = match config.http.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|source| Failure::Listen { address, source })?,
        ),
        None => None,
    };
    let cluster = if config.kubernetes.discover {
        Some(runboard_cluster::client(&config.kubernetes).await?)
    } else {
        None
    };
    let fleet = Fleet::connect(&config).await?;
    let state = ServerState::new(App::new(config, store, fleet));
    let app = state.app.clone();
    if demo_runbooks {
        demo::save_runbooks(&app).await;
    }
    let discovery =
        cluster.map(|client| tokio::spawn(runboard_cluster::discover(app.clone(), client)));
    let poller = tokio::spawn(poller::run(app.clone()));
    let session_sweeper = tokio::spawn(sweep_sessions(SessionStore::new(&app.store)));
    let engine = tokio::spawn(execution::run(app.clone()));
    let metrics = match metrics_listener {
        Some(listener) => {
            let metrics_bound = listener.local_addr().map_err(Failure::Serve)?;
            tracing::info!(%metrics_bound, "/metrics is served on its own listener");
            println!("Runboard's metrics are at http://{metrics_bound}/metrics");
            let router = metrics_router(state.clone());
            Some(tokio::spawn(
                async move { axum::serve(listener, router).await },
            ))
        }
        None => None,
    };
    tracing::info!(%bound, store = ?app.store.kind(), "runboard is serving");
    println!("Runboard is serving at http://{bound}");
    let served = serve(listener, state, shutdown_signal()).await;
    // The last scrape may be cut short; the pages' requests were let finish above.
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    poller.abort();
    if let Some(discovery) = discovery {
        discovery.abort();
    }
    session_sweeper.abort();
    engine.abort();
    // The last alerts and action messages reach the team (each within the webhook's timeout).
    app.notifier.settled().await;
    app.fleet.close().await;
    app.store.close().await;
    served.map_err(Failure::Serve)?;
    tracing::info!("runboard stopped cleanly");
    Ok(())
}

/// Deletes sessions past their timeout from the store, now and then; a failure is logged
/// and tried again next time (an expired session is refused when read anyway).
async fn sweep_sessions(sessions: SessionStore) {
    use tower_sessions::session_store::ExpiredDeletion;
    let mut every = tokio::time::interval(SESSION_SWEEP_INTERVAL);
    loop {
        every.tick().await;
        if let Err(e) = sessions.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
    }
}

/// Resolves on SIGTERM (Kubernetes, `docker stop`) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
