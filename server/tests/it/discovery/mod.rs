//! Services found in Kubernetes: the real kube client, watcher and reflector against a
//! loopback API server (no cluster can run here), the demo fleet's databases behind the
//! Secrets, and Runboard's store on PostgreSQL.

use crate::support as common;

use std::time::Duration;

use common::{registered, spawn_app_on, start_fleet};
use runboard_core::poller::poll_once;
use runboard_model::Role;
use runboard_testkit::{Backend, ChaosProxy, FakeKubernetes, TestStore};
use serde_json::{Value, json};

mod port_forward;
mod registration;
mod secrets;
mod token_policy;

/// A Service labelled for Runboard, with one port and these annotations.
fn labelled(namespace: &str, name: &str, service: &str, annotations: &[(&str, &str)]) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": { "runboard.io/service": service, "app": name },
            "annotations": annotations,
        },
        "spec": { "ports": [{ "name": "http", "port": 8080, "targetPort": 8080 }] },
    })
}

/// The annotations of a Service of `team` whose database URL is in its namespace's Secret
/// `db`.
fn team_and_db(team: &str) -> [(&'static str, &str); 2] {
    [
        ("runboard.io/team", team),
        ("runboard.io/database-secret", "db"),
    ]
}

/// `GET /api/v1/services` as soon as `until` holds of it; fails after 20 s.
async fn services_once(app: &common::TestApp, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = app.get_json("/api/v1/services").await;
        if until(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within 20 s; the registry says {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn service<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == json!(name))
}

/// Where a URL's host and port lead on this machine.
async fn address_of(url: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap_or(5432)
    );
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

/// A kube client for the loopback API server.
fn client_of(cluster: &FakeKubernetes) -> kube::Client {
    kube::Client::try_from(kube::Config::new(cluster.url().parse().unwrap())).unwrap()
}

/// The notes of the discovery panel whose origin is `origin`.
fn notes_of<'a>(list: &'a Value, origin: &str) -> Vec<&'a Value> {
    list["discovery"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["origin"] == json!(origin))
        .collect()
}

/// Polls once and answers the service's entry in `GET /api/v1/services`.
async fn polled(app: &common::TestApp, name: &str) -> Value {
    poll_once(&app.app).await.unwrap();
    let list = app.get_json("/api/v1/services").await;
    service(&list, name)
        .unwrap_or_else(|| panic!("{name} is registered: {list:#}"))
        .clone()
}

/// Waits until `until` holds of the app; fails after 20 s.
async fn eventually(what: &str, until: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !until() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Runboard on PostgreSQL discovering `cluster` in `namespaces` (all where none),
/// resyncing every 300 ms, and the registry once payments is registered.
async fn discovering(cluster: &FakeKubernetes, namespaces: &[&str]) -> (common::TestApp, Value) {
    let (app, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.kubernetes.namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
            config.kubernetes.resync = Duration::from_millis(300);
        })
        .await;
    tokio::spawn(runboard_cluster::discover(
        app.app.clone(),
        client_of(cluster),
    ));
    let list = services_once(&app, "payments is registered", |list| {
        service(list, "payments").is_some()
    })
    .await;
    (app, list)
}

/// payments labelled in its namespace with its Secret `db`, and a Runboard on PostgreSQL
/// that discovers it (resyncing every 300 ms), once payments is registered.
async fn payments_discovered() -> (common::TestFleet, FakeKubernetes, common::TestApp) {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let cluster = FakeKubernetes::start().await;
    cluster.apply_secret(
        "payments",
        "db",
        &[("database_url", &payments.database_url)],
    );
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &team_and_db("payments"),
    ));
    let (app, _) = discovering(&cluster, &[]).await;
    (fleet, cluster, app)
}
