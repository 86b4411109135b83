//! Services found in Kubernetes: the real kube client, watcher and reflector against a
//! loopback API server (no cluster can run here), the demo fleet's databases behind the
//! Secrets, and Runboard's store on PostgreSQL.

mod common;

use std::time::Duration;

use common::{registered, spawn_app_on, start_fleet};
use runboard_core::poller::poll_once;
use runboard_testkit::{Backend, FakeKubernetes, TestStore};
use serde_json::{Value, json};

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

#[tokio::test]
async fn services_labelled_in_the_cluster_come_change_and_go_without_a_restart() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let payouts = fleet.service("payouts");
    let cluster = FakeKubernetes::start().await;
    // payouts is written in the config file, and labelled in the cluster as well.
    let app = spawn_app_on(
        TestStore::new(Backend::Postgres).await,
        vec![registered(payouts)],
    )
    .await;
    for namespace in ["payments", "payouts", "ledger"] {
        cluster.apply_secret(
            namespace,
            "payments-db",
            &[("database_url", &payments.database_url)],
        );
    }
    let team = ("runboard.io/team", "payments");
    let secret = ("runboard.io/database-secret", "payments-db");
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &[team, secret],
    ));
    cluster.apply_service(labelled(
        "payouts",
        "payouts-api",
        "payouts",
        &[team, secret],
    ));
    cluster.apply_service(labelled(
        "ledger",
        "ledger-api",
        "ledger",
        &[team, secret, ("runboard.io/stuck-after", "soon")],
    ));
    let client = kube::Client::try_from(kube::Config::new(cluster.url().parse().unwrap())).unwrap();
    tokio::spawn(runboard_cluster::discover(app.app.clone(), client));

    let list = services_once(&app, "payments is registered from the cluster", |list| {
        service(list, "payments").is_some()
    })
    .await;
    assert_eq!(
        service(&list, "payments").unwrap()["source"],
        json!({ "kind": "cluster", "namespace": "payments", "name": "payments-api" })
    );
    assert_eq!(
        service(&list, "payouts").unwrap()["source"],
        json!({ "kind": "config" }),
        "the config file wins over the cluster"
    );
    assert!(
        service(&list, "ledger").is_none(),
        "a Service with a wrong annotation is left out: {list:#}"
    );
    let notes = list["discovery"].as_array().unwrap();
    let ledger = notes
        .iter()
        .find(|n| n["origin"] == json!("ledger/ledger-api"))
        .expect("the wrong annotation is noted");
    assert_eq!(ledger["left_out"], json!(true));
    let said = ledger["message"].as_str().unwrap();
    assert!(
        said.contains("runboard.io/stuck-after") && said.contains("expected a duration"),
        "{said}"
    );
    let twice = notes
        .iter()
        .find(|n| n["origin"] == json!("payouts/payouts-api"))
        .expect("the name the config file also registers is noted");
    assert!(
        twice["message"]
            .as_str()
            .unwrap()
            .contains("config file's entry is used"),
        "{twice}"
    );

    // The database URL came from the Secret: the poll reads the service's sagas with it.
    assert_eq!(poll_once(&app.app).await.unwrap(), 2);
    let list = app.get_json("/api/v1/services").await;
    let read = service(&list, "payments").unwrap();
    assert_eq!(read["reachable"], json!(true), "{read:#}");
    assert!(read["sagas"]["completed"].as_u64().unwrap() > 0, "{read:#}");
    assert!(
        cluster
            .secrets_read()
            .contains(&"payments/payments-db".to_owned())
    );
    let overview = app.get("/").await.text().await.unwrap();
    assert!(
        overview.contains("cluster payments/payments-api"),
        "{overview}"
    );
    assert!(
        overview.contains("Cluster discovery: 1 Service(s) left out"),
        "{overview}"
    );

    // A changed annotation changes the registration; fixing one brings its service in.
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &[("runboard.io/team", "money-movement"), secret],
    ));
    cluster.apply_service(labelled(
        "ledger",
        "ledger-api",
        "ledger",
        &[team, secret, ("runboard.io/stuck-after", "20m")],
    ));
    let list = services_once(&app, "the new team and the fixed Service show", |list| {
        service(list, "payments").is_some_and(|s| s["team"] == json!("money-movement"))
            && service(list, "ledger").is_some()
    })
    .await;
    assert!(
        !list["discovery"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["left_out"] == json!(true)),
        "{list:#}"
    );

    // A Service deleted (or unlabelled) is no longer watched.
    cluster.delete_service("payments", "payments-api");
    services_once(&app, "payments is gone", |list| {
        service(list, "payments").is_none()
    })
    .await;
    assert!(app.app.fleet.service("payments").is_none());
    assert!(
        app.app.fleet.service("payouts").is_some(),
        "the config's stays"
    );
}

#[tokio::test]
async fn an_api_server_that_cannot_be_reached_is_said_and_the_config_services_stay() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let app = spawn_app_on(
        TestStore::new(Backend::Sqlite).await,
        vec![registered(fleet.service("payouts"))],
    )
    .await;
    // A port nothing listens on: every list is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    tokio::spawn(runboard_cluster::discover(app.app.clone(), client));
    let list = services_once(&app, "the unreachable API is said", |list| {
        list["discovery"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["origin"] == json!(""))
    })
    .await;
    let said = list["discovery"][0]["message"].as_str().unwrap();
    assert!(
        said.contains("the Kubernetes API cannot be asked"),
        "{said}"
    );
    assert!(service(&list, "payouts").is_some(), "{list:#}");
    let overview = app.get("/").await.text().await.unwrap();
    assert!(
        overview.contains("the Kubernetes API cannot be asked"),
        "{overview}"
    );
}
