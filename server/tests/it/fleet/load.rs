//! Under load: connections to a service stay within its bound, two replicas write one
//! snapshot per poll, and a crowd of viewers cannot starve the poll. One viewer hammering
//! the most expensive read needs the machine to itself: server/tests/alone/fleet.rs.

use super::*;

#[tokio::test]
async fn connections_to_a_service_stay_within_its_bound_under_load() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    let mut config = registered(&payments);
    config.max_connections = 3;
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    let database = payments.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = PgPool::connect(&admin_url()).await.unwrap();
    let runboard_connections = || runboard_connections(&admin, &database);

    // A crowd during an incident: ten people, thirty reads each (within one person's limit).
    let mut crowd = Vec::new();
    for person in 0..10 {
        crowd.push(common::bearer_client(
            &app.token_for(&format!("viewer-{person}"), &[Role::Viewer])
                .await,
        ));
    }
    let requests = (0..300).map(|i| {
        let path = if i % 2 == 0 {
            "/api/v1/services/payments/sagas?status=failed&limit=20"
        } else {
            "/api/v1/services/payments/errors"
        };
        crowd[i % crowd.len()].get(app.url(path)).send()
    });
    let (responses, peak) = tokio::join!(futures_util::future::join_all(requests), async {
        let mut peak = 0;
        for _ in 0..20 {
            peak = peak.max(runboard_connections().await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    });
    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200)),
        "all 300 reads answered"
    );
    assert!(
        peak <= 3,
        "at most max_connections = 3 connections, saw {peak}"
    );
    assert!(runboard_connections().await <= 3);
}

/// However many replicas share the store, each service is read once per interval: the
/// replica that claims a service's slot of the store's clock reads it, the others skip it.
#[tokio::test]
async fn two_replicas_polling_three_services_write_one_snapshot_per_service_per_interval() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
    let interval = Duration::from_millis(500);
    let (first, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.services = services;
            config.poller.interval = interval;
        })
        .await;
    let config = first.app.config.clone();
    let second = first.second_replica().await;
    assert_ne!(first.app.replica, second.replica);

    // Each replica looks five times an interval, out of step with the other.
    let run = Duration::from_secs(3);
    let started = Instant::now();
    async fn replica(
        app: &runboard_core::App,
        offset: Duration,
        started: Instant,
        run: Duration,
        interval: Duration,
    ) {
        tokio::time::sleep(offset).await;
        while started.elapsed() < run {
            runboard_core::poller::poll_claimed(app).await.unwrap();
            tokio::time::sleep(interval / 5).await;
        }
    }
    tokio::join!(
        replica(&first.app, Duration::ZERO, started, run, interval),
        replica(&second, Duration::from_millis(37), started, run, interval)
    );
    let intervals = run.as_millis() / interval.as_millis();
    let url = config.store.effective_url();
    for service in ["onboarding", "payments", "payouts"] {
        let count = |reconstructed: bool| {
            let url = &url;
            async move {
                runboard_testkit::sql_strings(
                    url,
                    &format!(
                        "SELECT CAST(COUNT(*) AS TEXT) FROM service_snapshot
                         WHERE service = '{service}' AND reconstructed = {reconstructed}"
                    ),
                )
                .await[0]
                    .parse::<u128>()
                    .unwrap()
            }
        };
        let snapshots = count(false).await;
        assert_eq!(
            count(true).await,
            24,
            "{service}: the trend before the first poll is filled once, by one replica"
        );
        println!(
            "{service}: {snapshots} snapshots in {intervals} intervals, 2 replicas looking 5 times each"
        );
        assert!(
            (intervals - 1..=intervals + 1).contains(&snapshots),
            "{service}: {snapshots} snapshots in {intervals} intervals"
        );
    }
}

/// A crowd asking a slow service many different things at once (no two reads shareable)
/// holds at most all but one of its connections: the poll still reads it in time.
#[tokio::test]
async fn a_crowd_of_viewers_cannot_starve_the_poll_of_connections() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    let mut config = registered(&payments);
    config.max_connections = 2;
    let proxy = database_behind_proxy(&mut config).await;
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    proxy.slow_down(Duration::from_millis(300));

    let mut crowd = Vec::new();
    for person in 0..12 {
        crowd.push(common::bearer_client(
            &app.token_for(&format!("viewer-{person}"), &[Role::Viewer])
                .await,
        ));
    }
    let asked = (1..=60).map(|limit| {
        crowd[limit % crowd.len()]
            .get(app.url(&format!(
                "/api/v1/services/payments/sagas?status=failed&limit={limit}"
            )))
            .send()
    });
    let poll = async {
        // Once the crowd has taken what it may, and more of it waits.
        tokio::time::sleep(Duration::from_secs(1)).await;
        poll_once(&app.app).await.unwrap()
    };
    let (answers, polled) = tokio::join!(futures_util::future::join_all(asked), poll);
    assert_eq!(polled, 1, "the poll read the service beside the crowd");
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|a| a.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| [200, 502, 503].contains(s)),
        "answered, or told why not (busy for viewers, or slow): {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}
