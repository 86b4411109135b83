//! Runboard's server-side modules. This file only wires them together.

pub mod actions;
pub mod audit;
pub mod clock;
pub mod config;
pub mod connector;
mod db;
pub mod error_text;
pub mod execution;
pub mod failure;
pub mod graphql_client;
pub mod identity;
pub mod lookup;
pub mod metrics;
pub mod notify;
pub mod poller;
pub mod registry;
pub mod screens;
pub mod services;
pub mod snapshots;
pub mod store;
pub mod watches;

use config::Config;
use identity::Identity;
use metrics::Metrics;
use services::Fleet;
use store::Store;

/// What every request handler, server function and background task shares.
pub struct App {
    /// The validated configuration this process started with, overrides applied.
    pub config: Config,
    /// Runboard's own store: the service registry now; snapshots, actions and audit as they arrive.
    pub store: Store,
    /// A connector per registered service, for live reads and the poller.
    pub fleet: Fleet,
    /// What the screens show of each service's database: one shared read per query a poll
    /// interval, however many people watch.
    pub screens: screens::ScreenReads,
    /// What time it is for the watches, the silences, the alert board, sessions, tokens,
    /// limits, previews and the screens' shared reads: a test moves it rather than waiting.
    pub clock: clock::Clock,
    /// What the poller counted, for `/metrics`.
    pub metrics: Metrics,
    /// The ways to sign in and the mapping from provider groups to roles.
    pub identity: Identity,
    /// Each service's mission-control actions, read by introspection and kept a while.
    pub catalogs: actions::Catalogs,
    /// Tells the configured webhook what happens to actions.
    pub notifier: notify::Notifier,
    /// This process among the replicas sharing the store: owner of the action leases and
    /// poll claims it takes (host name, process id and a random part).
    pub replica: String,
    /// Services whose trend before their first poll this process has filled in (or found
    /// needing none), so that the store is asked once per service.
    pub trends_filled: std::sync::Mutex<std::collections::HashSet<runboard_model::ServiceName>>,
}

impl App {
    /// The app over its config, store and fleet, with fresh metrics.
    pub fn new(config: Config, store: Store, fleet: Fleet) -> Self {
        let metrics = Metrics::new(fleet.reads());
        let clock = clock::Clock::default();
        Self {
            identity: Identity::new(&config, &clock),
            notifier: notify::Notifier::new(
                config.actions.webhook_url.clone(),
                config.public_url(),
            ),
            screens: screens::ScreenReads::new(config.poller.interval, &clock),
            config,
            store,
            fleet,
            metrics,
            clock,
            catalogs: actions::Catalogs::default(),
            replica: replica_name(),
            trends_filled: Default::default(),
        }
    }
}

fn replica_name() -> String {
    // In Kubernetes HOSTNAME is the pod's name, which is what an operator looks for.
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "runboard".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}
