//! `fleet`: runs the demo fleet, or seeds a service database with many sagas.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use runboard_fleet::{CallerCheck, Fleet, FleetConfig, Storage};

#[derive(Parser)]
#[command(about = "The demo fleet: simulated services that honour Runboard's service contract")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the services until Ctrl-C or SIGTERM, printing each one's database and GraphQL URLs.
    Serve {
        /// Keeps one SQLite file per service here.
        #[arg(long, default_value = "fleet-data", conflicts_with = "postgres_url")]
        data_dir: PathBuf,
        /// Keeps one database per service (`fleet_payments`, …) on this PostgreSQL server.
        #[arg(long, env = "FLEET_POSTGRES_URL")]
        postgres_url: Option<String>,
        /// Requires `Authorization: Bearer <TOKEN>` on every GraphQL call.
        #[arg(long, env = "FLEET_TOKEN", conflicts_with = "token_issuer")]
        token: Option<String>,
        /// Requires a JWT access token from this OpenID provider on every GraphQL call
        /// (for `--token-audience`); its subject goes into the call log.
        #[arg(long, env = "FLEET_TOKEN_ISSUER", requires = "token_audience")]
        token_issuer: Option<url::Url>,
        /// The audience the provider's tokens must name.
        #[arg(long, env = "FLEET_TOKEN_AUDIENCE", requires = "token_issuer")]
        token_audience: Option<String>,
        /// Leaves the services idle: no new sagas, no batch progress.
        #[arg(long)]
        no_load: bool,
    },
    /// Adds many sagas to one service's database (created if missing) and says how long it took.
    Seed {
        /// `sqlite:///abs/path/payments.db` or `postgres://user@host/db`.
        #[arg(long)]
        database_url: String,
        /// payments, payouts or onboarding.
        #[arg(long)]
        service: String,
        #[arg(long, default_value_t = 100_000)]
        sagas: u64,
        /// Seeds an outage instead: every saga failed in the last hour with the same error.
        #[arg(long)]
        outage: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::query=error".into()),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Serve {
            data_dir,
            postgres_url,
            token,
            token_issuer,
            token_audience,
            no_load,
        } => {
            let callers = match (token, token_issuer, token_audience) {
                (Some(token), _, _) => CallerCheck::Token(token),
                (None, Some(issuer), Some(audience)) => {
                    CallerCheck::ProviderTokens { issuer, audience }
                }
                _ => CallerCheck::Anyone,
            };
            let storage = match postgres_url {
                Some(admin_url) => Storage::Postgres {
                    admin_url,
                    database_prefix: "fleet".to_owned(),
                },
                None => Storage::Sqlite { dir: data_dir },
            };
            serve(FleetConfig {
                storage,
                callers,
                load: !no_load,
            })
            .await
        }
        Command::Seed {
            database_url,
            service,
            sagas,
            outage,
        } => if outage {
            runboard_fleet::seed_outage(&database_url, &service, sagas).await
        } else {
            runboard_fleet::seed(&database_url, &service, sagas).await
        }
        .map(|report| {
            println!(
                "seeded {} sagas ({} transfer events) into {} in {:.1}s",
                report.sagas,
                report.transfer_events,
                report.service,
                report.elapsed.as_secs_f64()
            );
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: FleetConfig) -> Result<(), runboard_fleet::FleetError> {
    let fleet = Fleet::start(config).await?;
    for service in fleet.services() {
        println!(
            "{:<11} team {:<9} database {}  graphql {}",
            service.name, service.team, service.database_url, service.graphql_url
        );
    }
    stopped().await;
    fleet.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stopped() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
