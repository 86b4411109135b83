//! Services labelled in the cluster come, change and go without a restart; an API server
//! out of reach is said and the config's services stay; a name stays with the namespace
//! that registered it first.

use super::*;

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
    assert!(
        app.app
            .fleet
            .service(&"payments".parse().unwrap())
            .is_none()
    );
    assert!(
        app.app.fleet.service(&"payouts".parse().unwrap()).is_some(),
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
    while replica.fleet.service(&"refunds".parse().unwrap()).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica registers refunds"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespace_of = |name: &str| match replica
        .fleet
        .service(&name.parse().unwrap())
        .unwrap()
        .source()
    {
        runboard_model::ServiceSource::Cluster { namespace, .. } => namespace.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(namespace_of("payments"), "payments");
    assert_eq!(namespace_of("refunds"), "aaa-squat");
    assert!(
        replica
            .fleet
            .service(&"invoices".parse().unwrap())
            .is_none()
    );
}
