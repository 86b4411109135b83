//! `spawn_app`: the real router on a loopback port chosen by the OS, over a store of its own;
//! the demo fleet; the people who ask Runboard ([`Person`]) and the one [`Setup`] of Runboard
//! over the demo fleet with its staff; and what tests share about them.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runboard_core::App;
use runboard_core::config::{Config, Overrides, ServiceConfig};
use runboard_core::services::Fleet;
use runboard_fleet::{CallerCheck, Fleet as DemoFleet, FleetConfig, ServiceInfo, Storage};
use runboard_model::{Role, User};
use runboard_server::{ServerState, serve};
use runboard_testkit::{Backend, TestDatabase, TestStore, admin_url};
use serde_json::Value;
use tempfile::TempDir;

mod calls;
mod people;
mod process;
mod setup;

pub use calls::*;
pub use people::*;
pub use process::*;
pub use setup::*;

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
    /// The app behind the server, for driving the poller from a test.
    pub app: Arc<App>,
    /// Signed in as a viewer with a personal API token: reads everything.
    pub client: reqwest::Client,
    /// The store's database and directory live as long as the app.
    _store_guards: (Option<TestDatabase>, TempDir),
}

impl TestApp {
    /// Another replica on this app's config and store, with its own connectors (not serving).
    pub async fn second_replica(&self) -> App {
        let config = self.app.config.clone();
        let store = runboard_core::store::Store::connect(&config.store)
            .await
            .unwrap();
        let fleet = Fleet::connect(&config).await.unwrap();
        App::new(config, store, fleet)
    }

    /// What `/metrics` says now.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Statements Runboard sent to `service`'s database about `relation`, as `/metrics` says.
    pub async fn service_reads(&self, service: &str, relation: &str) -> u64 {
        let labels = format!("{{service=\"{service}\",relation=\"{relation}\"}}");
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(&format!("runboard_service_reads_total{labels} ")))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// A personal API token for a user with these roles, issued straight into the store.
    pub async fn token_for(&self, login: &str, roles: &[Role]) -> String {
        let user = User {
            subject: format!("test:{login}").into(),
            name: login.to_owned(),
            roles: roles.iter().copied().collect(),
        };
        self.app
            .store
            // By Runboard's clock, and for longer than any test moves it: a test that moves
            // time by hours still holds a valid token.
            .issue_api_token(
                &user,
                "test",
                Duration::from_secs(30 * 24 * 3600),
                self.app.clock.now(),
            )
            .await
            .expect("a token is issued")
            .secret
    }

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

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A GET whose answer must be JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.expect("a JSON answer")
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_on(TestStore::new(backend).await, example_services()).await
}

/// The services of [`SERVICES`], parsed as `runboard serve` would.
pub fn example_services() -> Vec<ServiceConfig> {
    Config::parse(SERVICES, Path::new("test.toml"), &Overrides::default())
        .unwrap()
        .services
}

pub async fn spawn_app_on(test_store: TestStore, services: Vec<ServiceConfig>) -> TestApp {
    spawn_app_configured(test_store, |config, _| config.services = services)
        .await
        .0
}

/// The app with its config changed by `configure`, which learns the app's address first
/// (an OpenID provider must know where to send people back) and may return what it started.
pub async fn spawn_app_configured<R>(
    test_store: TestStore,
    configure: impl FnOnce(&mut Config, &str) -> R,
) -> (TestApp, R) {
    let TestStore {
        store,
        config: store_config,
        database,
        dir,
    } = test_store;
    let mut config = Config::parse(
        "",
        Path::new("test.toml"),
        &Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            site_root: Some(dir.path().join("site")),
            ..Overrides::default()
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    config.store = store_config;
    config.http.public_url = Some(address.parse().unwrap());
    let started = configure(&mut config, &address);
    store
        .register_configured_services(&config, chrono::Utc::now())
        .await
        .unwrap();
    let fleet = Fleet::connect(&config).await.unwrap();
    let state = ServerState::new(App::new(config, store, fleet));
    let app = state.app.clone();
    tokio::spawn(serve(listener, state, std::future::pending()));
    let mut test_app = TestApp {
        address,
        app,
        client: reqwest::Client::new(),
        _store_guards: (database, dir),
    };
    let token = test_app.token_for("viewer", &[Role::Viewer]).await;
    test_app.client = bearer_client(&token);
    (test_app, started)
}

/// An app whose limits are `limits`, small enough for a test to reach, its clock stopped:
/// the limits count requests in a time that passes only when the test moves it, so a slow
/// machine has all the time it needs.
pub async fn spawn_with_limits(limits: runboard_core::config::LimitsConfig) -> TestApp {
    let app = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = example_services();
        config.limits = limits;
    })
    .await
    .0;
    app.app.clock.stop();
    app
}

/// The series `/metrics` holds: each sample's name and labels, without its value.
pub fn series(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// `text` as it goes into a URL's query.
pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A client that sends `token` as its bearer token with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        // A request that hangs fails its test instead of holding up the whole run.
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The demo fleet on one backend, and the guards that remove its databases afterwards.
pub struct TestFleet {
    pub fleet: DemoFleet,
    pub dir: tempfile::TempDir,
    _databases: Vec<TestDatabase>,
}

impl TestFleet {
    /// Someone completes these sagas directly at the service's mission control, outside
    /// Runboard.
    pub async fn force_complete_by_hand(&self, service: &str, sagas: &[String]) {
        let done: Value = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap()
            .post(&self.service(service).graphql_url)
            .json(&serde_json::json!({
                "query": "mutation($ids: [ID!]!) { forceCompleteSagas(ids: $ids, reason: \"by hand\", dryRun: false) { dryRun } }",
                "variables": { "ids": sagas },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(done.get("errors").is_none(), "{done}");
    }

    /// One of the demo services, by name.
    pub fn service(&self, name: &str) -> &ServiceInfo {
        self.fleet
            .services()
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("the demo fleet has no service {name}"))
    }
}

pub async fn start_fleet(backend: Backend) -> TestFleet {
    start_fleet_checking(backend, CallerCheck::Anyone).await
}

/// The demo fleet, its services taking calls only from `callers`.
pub async fn start_fleet_checking(backend: Backend, callers: CallerCheck) -> TestFleet {
    start_fleet_as(backend, callers, false).await
}

/// The demo fleet with its load generator running: sagas start, move on and fail, and the
/// payout batch advances (while its worker runs) about 8 items a second.
pub async fn start_fleet_working(backend: Backend) -> TestFleet {
    start_fleet_as(backend, CallerCheck::Anyone, true).await
}

async fn start_fleet_as(backend: Backend, callers: CallerCheck, load: bool) -> TestFleet {
    let dir = tempfile::tempdir().unwrap();
    let storage = match backend {
        Backend::Sqlite => Storage::Sqlite {
            dir: dir.path().join("fleet"),
        },
        Backend::Postgres => Storage::Postgres {
            admin_url: admin_url(),
            database_prefix: format!("fleet_test_{}", uuid::Uuid::new_v4().simple()),
        },
    };
    let fleet = DemoFleet::start(FleetConfig {
        storage,
        callers,
        load,
    })
    .await
    .expect("the demo fleet starts");
    let databases = match backend {
        Backend::Sqlite => Vec::new(),
        Backend::Postgres => fleet
            .services()
            .iter()
            .map(|s| TestDatabase::adopt(s.database_url.rsplit('/').next().unwrap()))
            .collect(),
    };
    TestFleet {
        fleet,
        dir,
        _databases: databases,
    }
}

/// A demo fleet service, registered as `runboard demo` registers it.
pub fn registered(service: &ServiceInfo) -> ServiceConfig {
    runboard_server::demo::service_config(service).unwrap()
}

/// The IDs of an action's entities as a page of `/api/v1/actions/{id}` lists them, in order.
pub fn entity_ids(entities: &serde_json::Value) -> Vec<String> {
    entities
        .as_array()
        .unwrap_or_else(|| panic!("a list of entities: {entities}"))
        .iter()
        .map(|e| e["entity_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The first `n` failed sagas of a service, oldest first, as the Runboard at `address`
/// lists them to `client`.
pub async fn failed_saga_ids(
    address: &str,
    client: &reqwest::Client,
    service: &str,
    n: usize,
) -> Vec<String> {
    // Read as the model's own type: the API answers what the browser reads.
    let page: runboard_model::SagaPage = client
        .get(format!(
            "{address}/api/v1/services/{service}/sagas?status=failed&sort=oldest&limit={n}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        page.sagas
            .iter()
            .all(|s| s.status == runboard_model::SagaStatus::Failed),
        "{page:?}"
    );
    let ids: Vec<String> = page.sagas.into_iter().map(|s| s.saga_id).collect();
    assert_eq!(ids.len(), n, "the demo fleet has failed sagas");
    ids
}

/// `graphql_url` behind a proxy whose every answer takes `latency` on the wire; the proxy,
/// and the address to give Runboard.
pub async fn slowed(
    graphql_url: &str,
    latency: Duration,
) -> (Arc<runboard_testkit::ChaosProxy>, url::Url) {
    let graphql: url::Url = graphql_url.parse().unwrap();
    let proxy =
        runboard_testkit::ChaosProxy::start(graphql.socket_addrs(|| None).unwrap()[0]).await;
    proxy.slow_down(latency);
    let mut behind_proxy = graphql;
    behind_proxy.set_port(Some(proxy.port())).unwrap();
    (proxy, behind_proxy)
}

/// A Slack-compatible webhook on loopback that keeps the text of every message it gets.
pub async fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    webhook_keeping(|body| body["text"].as_str().unwrap_or_default().to_owned()).await
}

/// A webhook receiver on loopback that keeps what `keep` takes of each message's body.
pub async fn webhook_keeping<T: Send + 'static>(
    keep: fn(Value) -> T,
) -> (String, Arc<Mutex<Vec<T>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(keep(body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// Puts a proxy the test can cut or slow between Runboard and a PostgreSQL service's database.
pub async fn database_behind_proxy(
    service: &mut ServiceConfig,
) -> Arc<runboard_testkit::ChaosProxy> {
    use secrecy::ExposeSecret;
    let mut url = url::Url::parse(service.database_url.expose_secret()).unwrap();
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], url.port().unwrap_or(5432)));
    let proxy = runboard_testkit::ChaosProxy::start(upstream).await;
    url.set_port(Some(proxy.port())).unwrap();
    service.database_url = String::from(url).into();
    proxy
}

/// `count` payments transfers that failed at `post_to_ledger` while holding their money: the
/// case runbooks (#17) fix.
pub async fn held_transfers(fleet: &TestFleet, count: u32) -> Vec<String> {
    fleet
        .fleet
        .inject_error(
            "payments",
            "ledger-service rejected posting: account frozen",
            count,
            Some("post_to_ledger"),
        )
        .await
        .unwrap()
}

/// Runboard's open connections to one service database (it names itself `runboard`).
pub async fn runboard_connections(admin: &sqlx::PgPool, database: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'runboard'",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap();
    n
}
