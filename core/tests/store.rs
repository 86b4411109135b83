//! The store's schema and queries, on SQLite and on PostgreSQL alike.

use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use runboard_core::config::{Config, Overrides};
use runboard_core::snapshots::{Reading, Snapshot};
use runboard_core::store::Store;
use runboard_model::{Money, SagaCounts};
use runboard_testkit::{Backend, TestStore, test_on_both_stores};

fn config_with(services: &[(&str, &str)]) -> Config {
    let mut text = String::new();
    for (name, team) in services {
        text.push_str(&format!(
            "[[services]]\nname = \"{name}\"\nteam = \"{team}\"\n\
             database_url = \"postgres://ro@{name}/db\"\ngraphql_url = \"http://{name}/graphql\"\n"
        ));
    }
    Config::parse(&text, Path::new("test.toml"), &Overrides::default()).unwrap()
}

test_on_both_stores!(
    runs_on_the_backend_it_was_asked_for,
    migrating_again_changes_nothing,
    registering_lists_services_by_name,
    re_registering_updates_keeps_first_seen_and_retires_removed,
    the_overview_shows_each_services_latest_snapshot_and_pruning_drops_old_ones,
);

async fn runs_on_the_backend_it_was_asked_for(backend: Backend) {
    let test = TestStore::new(backend).await;
    assert_eq!(test.store.kind(), backend);
    test.store
        .check(std::time::Duration::from_secs(2))
        .await
        .unwrap();
}

async fn migrating_again_changes_nothing(backend: Backend) {
    let test = TestStore::new(backend).await;
    test.store
        .register_configured_services(&config_with(&[("payments", "pay")]), Utc::now())
        .await
        .unwrap();
    test.store.migrate().await.unwrap();
    // A second process starting on the same store (a restart, another replica) keeps the data.
    let second = Store::connect(&test.config).await.unwrap();
    second.migrate().await.unwrap();
    assert_eq!(second.registered_services().await.unwrap().len(), 1);
}

async fn registering_lists_services_by_name(backend: Backend) {
    let test = TestStore::new(backend).await;
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 8, 30, 0).unwrap();
    test.store
        .register_configured_services(
            &config_with(&[("payouts", "money"), ("ledger", "core")]),
            at,
        )
        .await
        .unwrap();
    let services = test.store.registered_services().await.unwrap();
    let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ledger", "payouts"]);
    assert_eq!(services[0].team, "core");
    assert_eq!(services[0].graphql_url, "http://ledger/graphql");
    assert_eq!(services[0].stuck_after_seconds, 30 * 60);
    assert_eq!(
        services[0].registered_at, at,
        "time comes back as the same UTC instant"
    );
}

async fn re_registering_updates_keeps_first_seen_and_retires_removed(backend: Backend) {
    let test = TestStore::new(backend).await;
    let first = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    test.store
        .register_configured_services(
            &config_with(&[("payouts", "money"), ("ledger", "core")]),
            first,
        )
        .await
        .unwrap();
    test.store
        .register_configured_services(
            &config_with(&[("payouts", "treasury"), ("wallet", "core")]),
            first + Duration::days(1),
        )
        .await
        .unwrap();
    let services = test.store.registered_services().await.unwrap();
    let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["payouts", "wallet"],
        "ledger left the config, wallet joined"
    );
    assert_eq!(services[0].team, "treasury");
    assert_eq!(services[0].registered_at, first);
    assert_eq!(services[1].registered_at, first + Duration::days(1));
}

async fn the_overview_shows_each_services_latest_snapshot_and_pruning_drops_old_ones(
    backend: Backend,
) {
    let test = TestStore::new(backend).await;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    test.store
        .register_configured_services(
            &config_with(&[("payouts", "money"), ("ledger", "core")]),
            t0,
        )
        .await
        .unwrap();
    let reading = |failed| Reading {
        sagas: SagaCounts {
            running: 5,
            stuck: 1,
            failed,
            completed: 1_000_000,
        },
        failed_batches: 2,
        withheld_funds: vec![Money {
            amount: "1234.5678".parse().unwrap(),
            currency: "EUR".into(),
        }],
        holding: None,
    };
    for (minutes, failed) in [(0, 7), (15, 9)] {
        let snapshot = Snapshot {
            service: "payouts".parse().unwrap(),
            taken_at: t0 + Duration::minutes(minutes),
            reading: Ok(reading(failed)),
        };
        test.store.record_snapshot(&snapshot).await.unwrap();
    }
    let unreachable = Snapshot {
        service: "ledger".parse().unwrap(),
        taken_at: t0 + Duration::minutes(15),
        reading: Err("its database is unreachable: connection refused".into()),
    };
    test.store.record_snapshot(&unreachable).await.unwrap();

    let overview = test.store.overview().await.unwrap();
    let (ledger, payouts) = (&overview[0], &overview[1]);
    assert_eq!(payouts.polled_at, Some(t0 + Duration::minutes(15)));
    assert_eq!(payouts.sagas.unwrap().failed, 9, "the latest snapshot wins");
    assert_eq!(payouts.sagas.unwrap().completed, 1_000_000);
    assert_eq!(
        payouts.withheld_funds[0].to_string(),
        "1234.5678 EUR",
        "money comes back exact"
    );
    assert!(payouts.reachable);
    assert!(!ledger.reachable);
    assert_eq!(ledger.sagas, None);
    assert_eq!(
        ledger.error.as_deref(),
        Some("its database is unreachable: connection refused")
    );

    let pruned = test
        .store
        .prune_snapshots(t0 + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(
        test.store.overview().await.unwrap()[1]
            .sagas
            .unwrap()
            .failed,
        9
    );
}
