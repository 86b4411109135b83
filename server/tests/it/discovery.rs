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

/// The provider's token endpoint as Runboard reaches it: each request is passed on to the
/// real provider, and the audience it asks for (its `resource`) kept for the test to see.
struct TokenRequests {
    url: url::Url,
    audiences: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenRequests {
    async fn start(issuer: &str) -> Self {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        let audiences = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = audiences.clone();
        let token_url = format!("{issuer}/token");
        let forward = move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            let token_url = token_url.clone();
            async move {
                for (key, value) in url::form_urlencoded::parse(&body) {
                    if key == "resource" {
                        kept.lock().unwrap().push(value.into_owned());
                    }
                }
                let mut request = reqwest::Client::new().post(&token_url).body(body);
                for name in ["authorization", "content-type", "accept"] {
                    if let Some(value) = headers.get(name) {
                        request = request.header(name, value.to_str().unwrap());
                    }
                }
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                let body = answer.bytes().await.unwrap();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        };
        let router = axum::Router::new().route("/token", axum::routing::post(forward));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, audiences }
    }

    fn asked(&self) -> Vec<String> {
        self.audiences.lock().unwrap().clone()
    }
}

/// The platform's policy, written as in runboard.toml.
fn policy(toml: &str) -> runboard_core::config::KubernetesPolicy {
    runboard_core::config::Config::parse(
        toml,
        std::path::Path::new("policy.toml"),
        &runboard_core::config::Overrides::default(),
    )
    .unwrap()
    .kubernetes
    .policy
}

#[tokio::test]
async fn a_token_audience_or_team_the_policy_does_not_give_a_namespace_is_never_asked_for_and_is_alerted()
 {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let provider = runboard_testkit::OidcProvider::start(
        0,
        "runboard-web",
        "unused",
        "http://127.0.0.1:1/cb",
        &[],
        Some(&runboard_testkit::MachineClient {
            client_id: "runboard-engine",
            client_secret: "engine-s3cret",
            token_lifetime_secs: 600,
        }),
    );
    let tokens = TokenRequests::start(&provider.issuer).await;
    let cluster = FakeKubernetes::start().await;
    for namespace in ["payments", "intruder", "shop"] {
        cluster.apply_secret(namespace, "db", &[("database_url", &payments.database_url)]);
    }
    let secret = ("runboard.io/database-secret", "db");
    let audience = ("runboard.io/token-audience", "urn:payments");
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &[("runboard.io/team", "payments"), secret, audience],
    ));
    // Another team labels a Service of its own asking for payments' token...
    cluster.apply_service(labelled(
        "intruder",
        "intruder-api",
        "intruder",
        &[("runboard.io/team", "intruder"), secret, audience],
    ));
    // ...and one routes its alerts as payments' team.
    cluster.apply_service(labelled(
        "shop",
        "shop-api",
        "shop",
        &[("runboard.io/team", "payments"), secret],
    ));
    let (app, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.mission_control_tokens = Some(runboard_core::config::MissionControlTokens {
                token_url: tokens.url.clone(),
                client_id: "runboard-engine".into(),
                client_secret: Some("engine-s3cret".to_owned().into()),
            });
            config.kubernetes.policy = policy(
                r#"
                [[kubernetes.policy.namespace]]
                name = "payments"
                token_audiences = ["urn:payments"]
                teams = ["payments"]

                [[kubernetes.policy.namespace]]
                name = "shop"
                teams = ["shop"]
                "#,
            );
        })
        .await;
    tokio::spawn(runboard_cluster::discover(
        app.app.clone(),
        client_of(&cluster),
    ));
    let list = services_once(
        &app,
        "payments is registered and the others noted",
        |list| service(list, "payments").is_some() && notes_of(list, "shop/shop-api").len() == 1,
    )
    .await;
    assert!(service(&list, "intruder").is_none(), "{list:#}");
    assert!(service(&list, "shop").is_none(), "{list:#}");
    let intruder = notes_of(&list, "intruder/intruder-api");
    assert_eq!(intruder.len(), 1, "{list:#}");
    assert_eq!(intruder[0]["left_out"], json!(true));
    let said = intruder[0]["message"].as_str().unwrap();
    assert!(
        said.contains("token audience \"urn:payments\"") && said.contains("namespace intruder"),
        "{said}"
    );
    let shop = notes_of(&list, "shop/shop-api")[0]["message"]
        .as_str()
        .unwrap();
    assert!(
        shop.contains("team \"payments\"") && shop.contains("shop"),
        "{shop}"
    );

    // Nothing can open the intruder's catalog, so payments' token is never asked for it.
    let catalog = app.get("/api/v1/services/intruder/actions").await;
    assert_eq!(catalog.status().as_u16(), 404);
    assert!(tokens.asked().is_empty(), "{:?}", tokens.asked());

    // Each refusal is an alert, under the name the Service asked for.
    let board = app.get_json("/api/v1/alerts").await;
    let refused: Vec<&Value> = board["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["watch"] == json!("discovery_refused") && a["state"] == json!("firing"))
        .collect();
    let mut alerted: Vec<&str> = refused
        .iter()
        .map(|a| a["service"].as_str().unwrap())
        .collect();
    alerted.sort_unstable();
    assert_eq!(alerted, ["intruder", "shop"], "{board:#}");
    assert!(
        refused.iter().any(|a| a["summary"]
            .as_str()
            .unwrap()
            .contains("intruder/intruder-api")),
        "{board:#}"
    );

    // Payments' own catalog does ask for it (it cannot be read here, as no pod answers at
    // the cluster name): the endpoint sees requests when they are made.
    app.get("/api/v1/services/payments/actions").await;
    assert_eq!(tokens.asked(), ["urn:payments"]);

    // The intruder gives up the audience: it is registered, and its alert resolves.
    cluster.apply_service(labelled(
        "intruder",
        "intruder-api",
        "intruder",
        &[("runboard.io/team", "intruder"), secret],
    ));
    services_once(
        &app,
        "the intruder without the audience is registered",
        |list| service(list, "intruder").is_some(),
    )
    .await;
    let board = app.get_json("/api/v1/alerts").await;
    assert!(
        board["alerts"].as_array().unwrap().iter().any(|a| {
            a["service"] == json!("intruder")
                && a["watch"] == json!("discovery_refused")
                && a["state"] == json!("resolved")
        }),
        "{board:#}"
    );
}

#[tokio::test]
async fn a_name_stays_with_the_namespace_that_registered_it_first_whatever_the_listing_order() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let cluster = FakeKubernetes::start().await;
    // "aaa-squat" is listed first: the order alone would hand it every name it claims.
    let namespaces = ["aaa-squat", "payments"];
    for namespace in namespaces {
        cluster.apply_secret(namespace, "db", &[("database_url", &payments.database_url)]);
    }
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &team_and_db("payments"),
    ));
    // Two namespaces claim a name nobody holds, at once: neither gets it.
    cluster.apply_service(labelled(
        "payments",
        "invoices-api",
        "invoices",
        &team_and_db("payments"),
    ));
    cluster.apply_service(labelled(
        "aaa-squat",
        "invoices-api",
        "invoices",
        &team_and_db("squat"),
    ));
    let (app, list) = discovering(&cluster, &namespaces).await;
    assert!(service(&list, "invoices").is_none(), "{list:#}");
    for origin in ["payments/invoices-api", "aaa-squat/invoices-api"] {
        let note = notes_of(&list, origin);
        assert_eq!(note.len(), 1, "{list:#}");
        assert_eq!(note[0]["left_out"], json!(true));
        assert!(
            note[0]["message"].as_str().unwrap().contains("claims too"),
            "{note:?}"
        );
    }

    // A squatter listed before the holder is left out, with a note naming both.
    cluster.apply_service(labelled(
        "aaa-squat",
        "payments-api",
        "payments",
        &team_and_db("squat"),
    ));
    let list = services_once(&app, "the squatter is noted", |list| {
        !notes_of(list, "aaa-squat/payments-api").is_empty()
    })
    .await;
    let said = notes_of(&list, "aaa-squat/payments-api")[0]["message"]
        .as_str()
        .unwrap();
    assert!(
        said.contains("namespace payments registered first")
            && said.contains("aaa-squat/payments-api"),
        "{said}"
    );
    assert_eq!(
        service(&list, "payments").unwrap()["source"],
        json!({ "kind": "cluster", "namespace": "payments", "name": "payments-api" })
    );

    // The other way round: whoever registered first keeps the name, here the namespace
    // that is not payments.
    cluster.apply_service(labelled(
        "aaa-squat",
        "refunds-api",
        "refunds",
        &team_and_db("squat"),
    ));
    services_once(&app, "refunds is registered", |list| {
        service(list, "refunds").is_some()
    })
    .await;
    cluster.apply_service(labelled(
        "payments",
        "refunds-api",
        "refunds",
        &team_and_db("payments"),
    ));
    let list = services_once(&app, "the second claimant of refunds is noted", |list| {
        !notes_of(list, "payments/refunds-api").is_empty()
    })
    .await;
    assert_eq!(
        service(&list, "refunds").unwrap()["source"]["namespace"],
        json!("aaa-squat")
    );

    // Another replica, listing everything at once: the store, not the order, decides.
    let replica = std::sync::Arc::new(app.second_replica().await);
    tokio::spawn(runboard_cluster::discover(
        replica.clone(),
        client_of(&cluster),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while replica.fleet.service("refunds").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica registers refunds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespace_of = |name: &str| match replica.fleet.service(name).unwrap().source() {
        runboard_model::ServiceSource::Cluster { namespace, .. } => namespace.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(namespace_of("payments"), "payments");
    assert_eq!(namespace_of("refunds"), "aaa-squat");
    assert!(replica.fleet.service("invoices").is_none());
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

#[tokio::test]
async fn a_secret_that_cannot_be_read_keeps_the_service_and_its_history_until_the_service_is_gone()
{
    let (_fleet, cluster, app) = payments_discovered().await;
    let read = polled(&app, "payments").await;
    assert_eq!(read["reachable"], json!(true), "{read:#}");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let trend = app.app.store.trend("payments", since).await.unwrap();
    assert!(!trend.is_empty());

    // The API server fails three reads of the Secret in a row (and more, until told).
    let reads = || {
        cluster
            .secrets_read()
            .iter()
            .filter(|s| *s == "payments/db")
            .count()
    };
    let before = reads();
    cluster.fail_secret_reads("payments", "db", 1000, 500);
    eventually("three failed reads of the Secret", || reads() >= before + 3).await;
    let list = app.get_json("/api/v1/services").await;
    assert!(service(&list, "payments").is_some(), "it stays: {list:#}");
    let note = notes_of(&list, "payments/payments-api");
    assert_eq!(note[0]["left_out"], json!(false), "{list:#}");
    assert!(
        note[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be read now"),
        "{note:?}"
    );
    // It reads as unreachable, with the reason, and alerts after `unreachable_polls`.
    for _ in 0..app.app.config.watches.unreachable_polls {
        let read = polled(&app, "payments").await;
        assert_eq!(read["reachable"], json!(false), "{read:#}");
        let error = read["error"].as_str().unwrap();
        assert!(
            error.contains("settings cannot be read from the cluster"),
            "{error}"
        );
    }
    let overview = app.get("/").await.text().await.unwrap();
    assert!(
        overview.contains("Unreachable: its settings cannot be read from the cluster"),
        "{overview}"
    );
    assert_eq!(app.app.store.trend("payments", since).await.unwrap(), trend);
    let board = app.get_json("/api/v1/alerts").await;
    assert!(
        board["alerts"].as_array().unwrap().iter().any(|a| {
            a["service"] == json!("payments") && a["watch"] == json!("service_unreachable")
        }),
        "{board:#}"
    );

    // A read slower than the resync is given up the same way.
    cluster.fail_secret_reads("payments", "db", 0, 500);
    cluster.slow_secret_reads("payments", "db", Duration::from_secs(30));
    services_once(&app, "the slow read is noted", |list| {
        notes_of(list, "payments/payments-api")
            .first()
            .is_some_and(|n| {
                n["message"]
                    .as_str()
                    .unwrap()
                    .contains("did not come within")
            })
    })
    .await;
    assert!(app.app.fleet.unreadable("payments").is_some());

    // Readable again: read again.
    cluster.slow_secret_reads("payments", "db", Duration::ZERO);
    eventually("the Secret is read again", || {
        app.app.fleet.unreadable("payments").is_none()
    })
    .await;
    assert_eq!(polled(&app, "payments").await["reachable"], json!(true));

    // The Service deleted: retired, and its history stays for the retention period.
    cluster.delete_service("payments", "payments-api");
    services_once(&app, "payments is retired", |list| {
        service(list, "payments").is_none()
    })
    .await;
    let kept = app.app.store.trend("payments", since).await.unwrap();
    assert!(kept.len() > trend.len(), "{kept:?}");
    let chart = app.get("/charts/services/payments/trend.svg").await;
    assert_eq!(
        chart.status(),
        200,
        "a retired service's trend is still drawn"
    );
    assert!(
        chart
            .text()
            .await
            .unwrap()
            .contains("payments: stuck and failed")
    );
    let board = app.get_json("/api/v1/alerts").await;
    assert!(
        board["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["service"] == json!("payments")),
        "{board:#}"
    );
}

#[tokio::test]
async fn a_rotated_secret_is_used_at_the_next_sync() {
    let (fleet, cluster, app) = payments_discovered().await;
    let payments = fleet.service("payments");
    assert_eq!(polled(&app, "payments").await["reachable"], json!(true));
    let first = app.app.fleet.service("payments").unwrap();

    // The Secret is rotated to another database, and the Service is not touched.
    let mut rotated = url::Url::parse(&payments.database_url).unwrap();
    rotated.set_path("/rotated_away");
    cluster.apply_secret("payments", "db", &[("database_url", rotated.as_str())]);
    eventually("a new connector for the rotated Secret", || {
        !std::sync::Arc::ptr_eq(&app.app.fleet.service("payments").unwrap(), &first)
    })
    .await;
    let read = polled(&app, "payments").await;
    assert_eq!(read["reachable"], json!(false), "{read:#}");
    assert!(
        read["error"].as_str().unwrap().contains("rotated_away"),
        "the poll used the new URL: {read:#}"
    );

    // And back: read with the original URL again, no restart.
    let second = app.app.fleet.service("payments").unwrap();
    cluster.apply_secret(
        "payments",
        "db",
        &[("database_url", &payments.database_url)],
    );
    eventually("a new connector again", || {
        !std::sync::Arc::ptr_eq(&app.app.fleet.service("payments").unwrap(), &second)
    })
    .await;
    assert_eq!(polled(&app, "payments").await["reachable"], json!(true));
}

#[tokio::test]
async fn discovery_survives_a_forbidden_namespace_and_an_expired_watch() {
    // The 403s, the 410 and the bookmarks come from FakeKubernetes, answering as a real API
    // server does: no real one can run on these machines.
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let cluster = FakeKubernetes::start().await;
    for namespace in ["payments", "ledger"] {
        cluster.apply_secret(namespace, "db", &[("database_url", &payments.database_url)]);
    }
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &team_and_db("payments"),
    ));
    cluster.apply_service(labelled(
        "ledger",
        "ledger-api",
        "ledger",
        &team_and_db("ledger"),
    ));
    // Runboard's Role in ledger lacks list and watch on Services.
    cluster.forbid("list", "services", Some("ledger"));
    cluster.forbid("watch", "services", Some("ledger"));
    let (app, list) = discovering(&cluster, &["payments", "ledger"]).await;
    let ledger = notes_of(&list, "namespace ledger");
    assert_eq!(ledger.len(), 1, "{list:#}");
    let said = ledger[0]["message"].as_str().unwrap();
    assert!(
        said.contains("forbidden") && said.contains("list and watch"),
        "{said}"
    );
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains("namespace ledger"), "{overview}");
    assert!(cluster.answered().forbidden > 0);

    // payments stays in sync meanwhile.
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &team_and_db("money-movement"),
    ));
    services_once(&app, "the change in payments is seen", |list| {
        service(list, "payments").is_some_and(|s| s["team"] == json!("money-movement"))
    })
    .await;

    // The Role is fixed: ledger comes in, and its note goes.
    cluster.allow("list", "services", Some("ledger"));
    cluster.allow("watch", "services", Some("ledger"));
    let list = services_once(&app, "ledger is registered", |list| {
        service(list, "ledger").is_some()
    })
    .await;
    assert!(notes_of(&list, "namespace ledger").is_empty(), "{list:#}");
    // The watches heard of the Secrets written meanwhile as bookmarks only.
    cluster.apply_secret("ledger", "other", &[("key", "value")]);
    eventually("a bookmark", || cluster.answered().bookmarks > 0).await;

    // The history is compacted: the watches end with 410 Gone and the client lists again;
    // a change made meanwhile is seen.
    let lists = cluster.answered().lists;
    cluster.expire_watches();
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &team_and_db("treasury"),
    ));
    services_once(&app, "the change after the expiry is seen", |list| {
        service(list, "payments").is_some_and(|s| s["team"] == json!("treasury"))
    })
    .await;
    eventually(
        "both watches told 410 Gone, and both namespaces listed again",
        || {
            let answered = cluster.answered();
            answered.gone >= 2 && answered.lists >= lists + 2
        },
    )
    .await;
    services_once(&app, "no note of the expiry stays", |list| {
        list["discovery"].as_array().unwrap().is_empty() && service(list, "ledger").is_some()
    })
    .await;
}
