//! A rolling restart under load, as Kubernetes runs one: two `runboard serve` processes on
//! one PostgreSQL store with the demo fleet, behind a load balancer that, like a Service's
//! endpoints, sends each request to a replica whose `/readyz` last answered 200 (asked
//! every 50 ms). Sixteen clients read pages and the API through it while a preview runs on
//! one replica; that replica gets SIGTERM. No request fails, the preview completes, and the
//! replica exits 0 once drained. (No Kubernetes can run here: the balancer stands in for
//! its endpoints and kube-proxy, with no retries, so a request a replica drops fails.)

use crate::support as common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use common::{
    Runboard, bearer_client, failed_saga_ids, slowed, start_fleet, start_runboard, token_in_store,
};
use http::{Method, StatusCode, header};
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// `http.drain` of the replicas: how long a stopped one keeps serving after `/readyz` says 503.
const DRAIN: Duration = Duration::from_secs(3);
const CLIENTS: usize = 16;
/// Sagas the preview names, one dry-run call each, one at a time.
const PREVIEWED: usize = 5;
/// Each dry-run answer takes this long on the wire: the preview is still running when its
/// replica is stopped, and long after.
const LATENCY: Duration = Duration::from_secs(1);
/// What the clients read: screens and the API.
const PAGES: &[&str] = &[
    "/",
    "/services/onboarding",
    "/api/v1/services",
    "/actions",
    "/api/v1/services/onboarding/errors",
    "/alerts",
];

/// One replica as the balancer sees it.
struct Endpoint {
    url: String,
    /// Its `/readyz` answered 200 when last asked.
    ready: AtomicBool,
    /// Its `/readyz` answered 503 at least once.
    said_unready: AtomicBool,
    /// Requests sent to it, and previews among them.
    requests: AtomicUsize,
    previews: AtomicUsize,
}

/// Sends each request to the next ready replica, round robin; no retries.
struct Balancer {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    client: reqwest::Client,
}

impl Balancer {
    /// Serves on a loopback port and asks each replica's `/readyz` every 50 ms; its address.
    async fn start(replicas: &[&Runboard]) -> (Arc<Self>, String) {
        let balancer = Arc::new(Self {
            endpoints: replicas
                .iter()
                .map(|replica| Endpoint {
                    url: replica.url.clone(),
                    ready: AtomicBool::new(false),
                    said_unready: AtomicBool::new(false),
                    requests: AtomicUsize::new(0),
                    previews: AtomicUsize::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            client: reqwest::Client::new(),
        });
        for index in 0..replicas.len() {
            tokio::spawn(balancer.clone().watch_readiness(index));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(balancer.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (balancer, address)
    }

    async fn watch_readiness(self: Arc<Self>, index: usize) {
        let endpoint = &self.endpoints[index];
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            let status = self
                .client
                .get(format!("{}/readyz", endpoint.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map(|answer| answer.status());
            if matches!(status, Ok(StatusCode::SERVICE_UNAVAILABLE)) {
                endpoint.said_unready.store(true, Ordering::SeqCst);
            }
            endpoint
                .ready
                .store(matches!(status, Ok(StatusCode::OK)), Ordering::SeqCst);
        }
    }

    fn all_ready(&self) -> bool {
        self.endpoints
            .iter()
            .all(|e| e.ready.load(Ordering::SeqCst))
    }
}

async fn forward(
    State(balancer): State<Arc<Balancer>>,
    request: axum::extract::Request,
) -> Response {
    let ready: Vec<&Endpoint> = balancer
        .endpoints
        .iter()
        .filter(|e| e.ready.load(Ordering::SeqCst))
        .collect();
    if ready.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no replica is ready").into_response();
    }
    let endpoint = ready[balancer.next.fetch_add(1, Ordering::SeqCst) % ready.len()];
    endpoint.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    if parts.method == Method::POST && parts.uri.path() == "/api/v1/actions" {
        endpoint.previews.fetch_add(1, Ordering::SeqCst);
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let url = format!(
        "{}{}",
        endpoint.url,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers;
    headers.remove(header::HOST);
    let answer = balancer
        .client
        .request(parts.method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{url}: {e}")).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{url}: body cut: {e}")).into_response(),
    }
}

/// Reads `PAGES` in turn through the balancer until `stop`; each failure is noted.
async fn read_pages(
    balancer: String,
    token: String,
    first: usize,
    stop: Arc<AtomicBool>,
    read: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let client = bearer_client(&token);
    for page in PAGES.iter().cycle().skip(first) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let url = format!("{balancer}{page}");
        let answer = client
            .get(&url)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let failure = match answer {
            Ok(answer) if answer.status().is_success() => {
                answer.bytes().await.err().map(|e| format!("{url}: {e}"))
            }
            Ok(answer) => Some(format!(
                "{url}: {} {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            )),
            Err(e) => Some(format!("{url}: {e}")),
        };
        match failure {
            Some(failure) => failures.lock().unwrap().push(failure),
            None => {
                read.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Polls `check` every 50 ms until it says so, or `limit` passes; whether it said so.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The fleet and the balancer serve from this test's runtime: several threads, so that they
// keep answering while the test waits on the Runboard processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_stopped_under_load_drains_without_failing_a_request_and_finishes_its_preview() {
    let fleet = start_fleet(Backend::Postgres).await;
    let store = TestStore::new(Backend::Postgres).await;
    let store_url = store
        .config
        .url
        .clone()
        .expect("a PostgreSQL store has a URL");
    let (_proxy, onboarding_behind_proxy) =
        slowed(&fleet.service("onboarding").graphql_url, LATENCY).await;
    let dir = tempfile::tempdir().unwrap();

    let mut config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\ndrain = \"{}s\"\n\
         [identity.oidc]\nissuer = \"https://login.example.com/realms/ops\"\nclient_id = \"runboard\"\n\
         [actions]\nconcurrency = 1\nchunk_size = 1\n",
        DRAIN.as_secs()
    );
    for service in fleet.fleet.services() {
        let graphql_url = if service.name == "onboarding" {
            onboarding_behind_proxy.to_string()
        } else {
            service.graphql_url.clone()
        };
        config.push_str(&format!(
            "\n[[services]]\nname = \"{}\"\nteam = \"{}\"\ndatabase_url = \"{}\"\ngraphql_url = \"{graphql_url}\"\n",
            service.name, service.team, service.database_url
        ));
    }
    let config_path = dir.path().join("runboard.toml");
    std::fs::write(&config_path, config).unwrap();
    let env = [
        ("RUNBOARD_DATABASE_URL", store_url.expose_secret()),
        ("RUNBOARD_OIDC_CLIENT_SECRET", "not-used-by-this-test"),
        ("RUNBOARD_SITE_ROOT", dir.path().to_str().unwrap()),
    ];
    let replicas = [
        start_runboard(&config_path, &dir.path().join("first.log"), &env),
        start_runboard(&config_path, &dir.path().join("second.log"), &env),
    ];
    let (balancer, address) = Balancer::start(&[&replicas[0], &replicas[1]]).await;
    assert!(
        eventually(Duration::from_secs(60), async || balancer.all_ready()).await,
        "both replicas answer /readyz"
    );

    // Tokens go straight into the shared store: people sign in with the provider otherwise.
    let token = async |login: &str, role: Role| token_in_store(&store.store, login, role).await;
    let alice = token("alice", Role::Operator).await;
    // A person each, as the clients are: each person's pace is limited on its own.
    let mut readers = Vec::new();
    for reader in 0..CLIENTS {
        readers.push(token(&format!("reader-{reader}"), Role::Viewer).await);
    }
    let ids = failed_saga_ids(&address, &bearer_client(&alice), "onboarding", PREVIEWED).await;

    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(client, token)| {
            tokio::spawn(read_pages(
                address.clone(),
                token,
                client,
                stop.clone(),
                read.clone(),
                failures.clone(),
            ))
        })
        .collect();

    let preview = tokio::spawn({
        let client = bearer_client(&alice);
        let url = format!("{address}/api/v1/actions");
        async move {
            let answer = client
                .post(&url)
                .json(&json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }))
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("the preview is answered");
            let status = answer.status();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    // Stopped once the service has its first dry-run call: the preview is under way there.
    let dry_run_started = eventually(Duration::from_secs(60), async || {
        let calls = fleet.fleet.call_log("onboarding").await.unwrap();
        calls.iter().any(|c| c.dry_run)
    })
    .await;
    assert!(dry_run_started, "the preview's dry run did not start");
    let stopped = balancer
        .endpoints
        .iter()
        .position(|e| e.previews.load(Ordering::SeqCst) == 1)
        .expect("the balancer sent the preview to a replica");
    assert!(
        !preview.is_finished(),
        "the preview ended before its replica was stopped: raise LATENCY"
    );
    let mut replicas = replicas;
    let pid = replicas[stopped].child.id().to_string();
    let requests_before = balancer.endpoints[stopped].requests.load(Ordering::SeqCst);
    let read_before = read.load(Ordering::SeqCst);
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success(), "kill -TERM {pid}");
    let signalled_at = Instant::now();

    let mut exit = None;
    let exited = eventually(Duration::from_secs(120), async || {
        exit = replicas[stopped].child.try_wait().unwrap();
        exit.is_some()
    })
    .await;
    assert!(exited, "the stopped replica did not exit within 120 s");
    let stopping = signalled_at.elapsed();
    let exit = exit.unwrap();
    let drained_requests =
        balancer.endpoints[stopped].requests.load(Ordering::SeqCst) - requests_before;
    // The clients go on reading from the other replica for a while.
    let read_at_exit = read.load(Ordering::SeqCst);
    let went_on = eventually(Duration::from_secs(120), async || {
        read.load(Ordering::SeqCst) >= read_at_exit + 2 * CLIENTS
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let (status, action) = preview.await.unwrap();
    let log = std::fs::read_to_string(dir.path().join(if stopped == 0 {
        "first.log"
    } else {
        "second.log"
    }))
    .unwrap_or_default();
    println!(
        "{} pages read, {} during the stop ({drained_requests} of them sent to the stopping replica before /readyz said 503); the replica exited {stopping:.1?} after SIGTERM",
        read.load(Ordering::SeqCst),
        read_at_exit - read_before,
    );

    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} requests failed during the rolling restart, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(went_on, "the clients kept reading after the stop");
    assert!(
        status.is_success() && action["state"] == "previewed",
        "the preview completed: {status} {action}"
    );
    assert!(exit.success(), "exit after SIGTERM: {exit}\n{log}");
    assert!(
        balancer.endpoints[stopped]
            .said_unready
            .load(Ordering::SeqCst),
        "/readyz of the stopping replica answered 503"
    );
    assert!(
        stopping >= DRAIN,
        "the replica kept serving for http.drain ({DRAIN:?}) before it closed: it exited after {stopping:?}"
    );
}
