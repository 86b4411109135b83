//! `spawn_app`: the real router on a loopback port chosen by the OS, over a store of its own.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::Path;

use runboard_core::App;
use runboard_core::config::{Config, Overrides};
use runboard_server::{ServerState, serve};
use runboard_testkit::{Backend, TestDatabase, TestStore};
use tempfile::TempDir;

/// Two services, as a platform team would register them.
pub const SERVICES: &str = r#"
[[services]]
name = "payouts"
team = "treasury"
database_url = "postgres://ro@payouts-db/payouts"
graphql_url = "http://payouts.internal:8080/graphql"
stuck_after = "15m"

[[services]]
name = "ledger"
team = "core-banking"
database_url = "postgres://ro@ledger-db/ledger"
graphql_url = "http://ledger.internal:8080/graphql"
"#;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The store's database and directory live as long as the app.
    _store_guards: (Option<TestDatabase>, TempDir),
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_on(TestStore::new(backend).await).await
}

pub async fn spawn_app_on(test_store: TestStore) -> TestApp {
    let TestStore {
        store,
        config: store_config,
        database,
        dir,
    } = test_store;
    let mut config = Config::parse(
        SERVICES,
        Path::new("test.toml"),
        &Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            site_root: Some(dir.path().join("site")),
            ..Overrides::default()
        },
    )
    .unwrap();
    config.store = store_config;
    store
        .register_configured_services(&config, chrono::Utc::now())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let state = ServerState::new(App { config, store });
    tokio::spawn(serve(listener, state, std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        _store_guards: (database, dir),
    }
}
