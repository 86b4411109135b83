//! Secrets and permissions going wrong: an unreadable secret keeps the service and its
//! history, a rotated one is used at the next sync, and discovery survives a forbidden
//! namespace and an expired watch.

use super::*;

#[tokio::test]
async fn a_secret_that_cannot_be_read_keeps_the_service_and_its_history_until_the_service_is_gone()
{
    let (_fleet, cluster, app) = payments_discovered().await;
    let read = polled(&app, "payments").await;
    assert_eq!(read["reachable"], json!(true), "{read:#}");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let payments = "payments".parse().unwrap();
    let trend = app.app.store.trend(&payments, since).await.unwrap();
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
    assert_eq!(app.app.store.trend(&payments, since).await.unwrap(), trend);
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
    let kept = app.app.store.trend(&payments, since).await.unwrap();
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
    let first = app.app.fleet.service(&"payments".parse().unwrap()).unwrap();

    // The Secret is rotated to another database, and the Service is not touched.
    let mut rotated = url::Url::parse(&payments.database_url).unwrap();
    rotated.set_path("/rotated_away");
    cluster.apply_secret("payments", "db", &[("database_url", rotated.as_str())]);
    eventually("a new connector for the rotated Secret", || {
        !std::sync::Arc::ptr_eq(
            &app.app.fleet.service(&"payments".parse().unwrap()).unwrap(),
            &first,
        )
    })
    .await;
    let read = polled(&app, "payments").await;
    assert_eq!(read["reachable"], json!(false), "{read:#}");
    assert!(
        read["error"].as_str().unwrap().contains("rotated_away"),
        "the poll used the new URL: {read:#}"
    );

    // And back: read with the original URL again, no restart.
    let second = app.app.fleet.service(&"payments".parse().unwrap()).unwrap();
    cluster.apply_secret(
        "payments",
        "db",
        &[("database_url", &payments.database_url)],
    );
    eventually("a new connector again", || {
        !std::sync::Arc::ptr_eq(
            &app.app.fleet.service(&"payments".parse().unwrap()).unwrap(),
            &second,
        )
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
