//! Services found in Kubernetes: the real kube client, watcher and reflector against a
//! loopback API server (no cluster can run here), the demo fleet's databases behind the
//! Secrets, and Runboard's store on PostgreSQL.

mod common;

use std::time::Duration;

use common::{registered, spawn_app_on, start_fleet};
use runboard_core::poller::poll_once;
use runboard_model::Role;
use runboard_testkit::{Backend, ChaosProxy, FakeKubernetes, TestStore};
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
    // No Secret in payouts: the config file's entry is used, so none is needed.
    for namespace in ["payments", "ledger"] {
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

#[tokio::test]
async fn through_port_forward_a_service_is_read_an_approved_action_runs_and_a_killed_pod_is_replaced()
 {
    let fleet = start_fleet(Backend::Postgres).await;
    let onboarding = fleet.service("onboarding");
    let cluster = FakeKubernetes::start().await;
    // The database and mission control are only known by their cluster names; the pods
    // behind those names are the demo fleet's.
    let mut in_cluster = url::Url::parse(&onboarding.database_url).unwrap();
    in_cluster
        .set_host(Some("onboarding-db.onboarding.svc"))
        .unwrap();
    in_cluster.set_port(Some(5432)).unwrap();
    cluster.apply_secret(
        "onboarding",
        "onboarding-db",
        &[("database_url", in_cluster.as_str())],
    );
    cluster.apply_service(json!({
        "metadata": { "namespace": "onboarding", "name": "onboarding-db" },
        "spec": { "ports": [{ "name": "postgres", "port": 5432, "targetPort": 5432 }] },
    }));
    cluster.apply_service(labelled(
        "onboarding",
        "onboarding-api",
        "onboarding",
        &[
            ("runboard.io/team", "identity"),
            ("runboard.io/database-secret", "onboarding-db"),
        ],
    ));
    // The database pod's port leads to PostgreSQL through a proxy that can slow it down.
    let slow_database = ChaosProxy::start(address_of(&onboarding.database_url).await).await;
    let database: std::net::SocketAddr = ([127, 0, 0, 1], slow_database.port()).into();
    cluster.start_pod(
        "onboarding",
        "onboarding-db-0",
        "onboarding-db",
        &[(5432, database)],
    );
    let mission_control = address_of(&onboarding.graphql_url).await;
    cluster.start_pod(
        "onboarding",
        "onboarding-api-0",
        "onboarding-api",
        &[(8080, mission_control)],
    );
    let (app, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.kubernetes.reach = runboard_core::config::Reach::PortForward
        })
        .await;
    let client = kube::Client::try_from(kube::Config::new(cluster.url().parse().unwrap())).unwrap();
    tokio::spawn(runboard_cluster::discover(app.app.clone(), client));
    services_once(&app, "onboarding is registered from the cluster", |list| {
        service(list, "onboarding").is_some()
    })
    .await;

    // Read through the bridge to the database pod.
    assert_eq!(poll_once(&app.app).await.unwrap(), 1);
    let list = app.get_json("/api/v1/services").await;
    assert_eq!(
        service(&list, "onboarding").unwrap()["reachable"],
        json!(true),
        "{list:#}"
    );
    let alice = common::bearer_client(&app.token_for("alice", &[Role::Operator]).await);
    let bob = common::bearer_client(&app.token_for("bob", &[Role::Approver]).await);
    let ids = common::failed_saga_ids(&app.address, &alice, "onboarding", 5).await;

    // A previewed, approved action, its calls through the bridge to the mission-control pod.
    let post = |client: &reqwest::Client, path: &str, body: Value| {
        let request = client.post(app.url(path)).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, action) = post(
        &alice,
        "/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap().to_owned();
    let (status, action) = post(
        &alice,
        &format!("/api/v1/actions/{id}/submit"),
        json!({ "reason": "INC-9: the KYC provider was down" }),
    )
    .await;
    assert_eq!(status, 200, "{action}");
    let (status, approved) = post(
        &bob,
        &format!("/api/v1/actions/{id}/approve"),
        json!({ "digest": action["digest"] }),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    while runboard_core::execution::step(&app.app).await.unwrap() {}
    let done = app.get_json(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(done["action"]["state"], json!("succeeded"), "{done:#}");
    let applied = common::applied_for(&fleet, "onboarding", &id).await;
    let mut applied_sorted = applied.clone();
    applied_sorted.sort();
    let mut asked = ids.clone();
    asked.sort();
    assert_eq!(applied_sorted, asked, "each saga applied once: {applied:?}");

    // The database pod dies in the middle of a read (its answers are slowed down so that
    // the read is on the wire): its connections are cut, and the service reads as unreachable.
    slow_database.slow_down(Duration::from_millis(500));
    let reading = {
        let app = app.app.clone();
        tokio::spawn(async move { poll_once(&app).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.kill_pod("onboarding", "onboarding-db-0");
    assert_eq!(
        reading.await.unwrap().unwrap(),
        0,
        "the read under way fails"
    );
    let list = app.get_json("/api/v1/services").await;
    let down = service(&list, "onboarding").unwrap();
    assert_eq!(down["reachable"], json!(false), "{down:#}");
    let error = down["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{down:#}");
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains("Unreachable"), "{overview}");
    slow_database.slow_down(Duration::ZERO);

    // Another ready pod takes its place: the next connection goes to it.
    cluster.start_pod(
        "onboarding",
        "onboarding-db-1",
        "onboarding-db",
        &[(5432, database)],
    );
    let mut answered = 0;
    for _ in 0..5 {
        answered = poll_once(&app.app).await.unwrap();
        if answered == 1 {
            break;
        }
    }
    assert_eq!(answered, 1, "the service is read again through the new pod");
}
