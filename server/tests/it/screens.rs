//! Screens at fleet scale: however many people watch the Funds or a service page, each
//! service's database is read once a poll interval per kind of read, and a live read
//! happens only when someone asks for it. Counted with `runboard_service_reads_total`,
//! which every statement to a service's database passes through.

use crate::support as common;

use std::time::Duration;

use common::{
    TestApp, bearer_client, failed_saga_ids, registered, spawn_app_configured, start_fleet,
};
use runboard_core::poller::poll_once;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};

const VIEWERS: usize = 16;

/// `VIEWERS` people open `path` at once; each page must render in full.
async fn viewers_open(app: &TestApp, path: &str, expect: &str) {
    let views = (0..VIEWERS).map(|_| async {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains(expect), "{path} shows {expect:?}: {page}");
    });
    futures_util::future::join_all(views).await;
}

#[tokio::test]
async fn many_viewers_of_the_funds_and_service_pages_cost_each_service_one_read_an_interval() {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    runboard_fleet::seed(&payments.database_url, "payments", 2_000)
        .await
        .unwrap();
    let interval = Duration::from_secs(60);
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
        config.services = fleet.fleet.services().iter().map(registered).collect();
        config.poller.interval = interval;
    })
    .await;
    // Time passes only when the test moves it: a slow machine does not see an interval end.
    app.app.clock.stop();

    // Funds: the poll reads the sagas behind the money; the page shows that read.
    poll_once(&app.app).await.unwrap();
    let polled = app.service_reads("payments", "withheld_funds").await;
    assert_eq!(polled, 1, "the poll read the funds once");
    viewers_open(&app, "/funds", "Read for everyone watching").await;
    viewers_open(&app, "/funds", "sagas holding money").await;
    assert_eq!(
        app.service_reads("payments", "withheld_funds").await,
        polled,
        "{} views of the Funds page read nothing more than the poll did",
        2 * VIEWERS
    );
    let live = app.get("/funds?live=1").await.text().await.unwrap();
    assert!(live.contains("Read live"), "{live}");
    assert_eq!(
        app.service_reads("payments", "withheld_funds").await,
        polled + 1,
        "asking for a live read reads the service now"
    );
    viewers_open(&app, "/funds", "Read for everyone watching").await;
    assert_eq!(
        app.service_reads("payments", "withheld_funds").await,
        polled + 1,
        "and everyone is shown that read"
    );

    // The service page: its error groups and its first page of sagas, one read each.
    let before = app.service_reads("payments", "supervisor_view").await;
    viewers_open(&app, "/services/payments", "Read for everyone watching").await;
    viewers_open(&app, "/services/payments", "Failed sagas by error").await;
    assert_eq!(
        app.service_reads("payments", "supervisor_view").await - before,
        2,
        "{} views of the service page read its error groups once and its sagas once",
        2 * VIEWERS
    );
    viewers_open(&app, "/services/payments?status=failed", "Show sagas").await;
    assert_eq!(
        app.service_reads("payments", "supervisor_view").await - before,
        3,
        "another filter is a read of its own, shared as well"
    );

    // A poll interval later the figures are read again: once.
    app.app.clock.advance(interval);
    let before = app.service_reads("payments", "supervisor_view").await;
    viewers_open(&app, "/services/payments", "Read for everyone watching").await;
    // Who came while the read was under way was shown the previous figures; the read is
    // done once each of them had an answer. Wait for the one that started it.
    viewers_open(&app, "/services/payments", "Failed sagas by error").await;
    assert_eq!(
        app.service_reads("payments", "supervisor_view").await - before,
        2,
        "after an interval, one read each for everyone"
    );
}

/// Pages of `screen` rendered so far, as `/metrics` says.
async fn rendered(app: &TestApp, screen: &str) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(&format!(
                "runboard_screens_rendered_total{{screen=\"{screen}\"}} "
            ))
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The script nonce a page's Content-Security-Policy allows, and the ones its scripts carry.
fn nonces(response: &reqwest::Response) -> String {
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    let start = policy.find("'nonce-").expect("the policy names a nonce") + "'nonce-".len();
    policy[start..].split('\'').next().unwrap().to_owned()
}

#[tokio::test]
async fn people_holding_the_same_roles_share_one_render_of_a_screen_and_see_only_their_controls() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = fleet.fleet.services().iter().map(registered).collect();
    })
    .await;
    poll_once(&app.app).await.unwrap();
    let operators = [
        bearer_client(&app.token_for("Olga Operator", &[Role::Operator]).await),
        bearer_client(&app.token_for("Otto Operator", &[Role::Operator]).await),
    ];
    let viewer = bearer_client(&app.token_for("Vic Viewer", &[Role::Viewer]).await);
    let screen = "/services/{service}";
    let before = rendered(&app, screen).await;

    let view = |client: reqwest::Client| {
        let url = app.url("/services/payments");
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let nonce = nonces(&response);
            (nonce, response.text().await.unwrap())
        }
    };
    let views = (0..VIEWERS)
        .map(|i| view(operators[i % 2].clone()))
        .chain([view(viewer.clone())]);
    let pages = futures_util::future::join_all(views).await;
    assert_eq!(
        rendered(&app, screen).await - before,
        2,
        "{VIEWERS} operators were given one render, the viewer another"
    );
    for (i, (nonce, page)) in pages.iter().enumerate() {
        // Each response's scripts carry the nonce its own policy allows, or none would run.
        assert!(page.contains(&format!("nonce=\"{nonce}\"")), "view {i}");
        assert_eq!(
            page.matches("nonce=\"").count(),
            page.matches(&format!("nonce=\"{nonce}\"")).count(),
            "view {i} carries no other response's nonce"
        );
        for name in ["Olga Operator", "Otto Operator", "Vic Viewer"] {
            assert!(!page.contains(name), "a shared page names nobody: {name}");
        }
        let offers_actions = page.contains("Select all");
        assert_eq!(
            offers_actions,
            i < VIEWERS,
            "view {i}: only operators may act"
        );
    }

    // A write through this process (an operator asks for an action) ends the shared render.
    let ids = failed_saga_ids(&app.address, &operators[0], "payments", 1).await;
    let asked = operators[0]
        .post(app.url("/api/v1/actions"))
        .json(&serde_json::json!({
            "service": "payments", "mutation": "retrySagas", "arguments": { "ids": ids },
        }))
        .send()
        .await
        .unwrap();
    assert!(
        asked.status().is_success(),
        "{}",
        asked.text().await.unwrap()
    );
    let before = rendered(&app, screen).await;
    view(operators[1].clone()).await;
    assert_eq!(
        rendered(&app, screen).await - before,
        1,
        "rendered anew after a write"
    );
}
