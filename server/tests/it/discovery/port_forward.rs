//! Through a port-forward a discovered service is read, an approved action runs on it, and
//! a killed pod is replaced.

use super::*;

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
    while runboard_core::execution::work_on_next_due(&app.app)
        .await
        .unwrap()
    {}
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
