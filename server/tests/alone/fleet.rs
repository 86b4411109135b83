//! The load test of #14: it measures what this machine answers under a load it makes
//! itself, so no other test may share the machine meanwhile.

use std::time::{Duration, Instant};

use runboard_core::poller::poll_once;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore, admin_url};
use serde_json::Value;

use crate::ALONE;
use crate::support::{bearer_client, registered, runboard_connections, spawn_app_on, start_fleet};

/// The load test of #14, bounded and on loopback: one viewer's script hammers the most
/// expensive read (error groups over 20,000 failed sagas, read live) at 200 requests a
/// second for 30 seconds while the poller polls every second and an operator asks for a
/// preview. The viewer is slowed with 429s; the others do not notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_viewer_hammering_the_most_expensive_read_is_slowed_and_starves_nobody() {
    let _alone = ALONE.lock().await;
    const RATE: u32 = 200;
    const WINDOW: Duration = Duration::from_secs(30);
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments").clone();
    runboard_fleet::seed_outage(&payments.database_url, "payments", 20_000)
        .await
        .unwrap();
    let config = registered(&payments);
    let max_connections = i64::from(config.max_connections);
    let app = spawn_app_on(TestStore::new(Backend::Postgres).await, vec![config]).await;
    let limits = app.app.config.limits.clone();
    let database = payments.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    let operator = bearer_client(&app.token_for("olga", &[Role::Operator]).await);
    let script = bearer_client(&app.token_for("vic", &[Role::Viewer]).await);
    let failed: Value = app
        .get_json("/api/v1/services/payments/sagas?status=failed&limit=5")
        .await;
    let ids: Vec<&str> = failed["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "{failed}");

    let started = Instant::now();
    let hammer = async {
        let mut ticks = tokio::time::interval(Duration::from_secs(1) / RATE);
        let mut sent = Vec::new();
        while started.elapsed() < WINDOW {
            ticks.tick().await;
            let request = script
                .get(app.url("/api/v1/services/payments/errors?live=true"))
                .send();
            sent.push(tokio::spawn(async move {
                let response = request.await.unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                (response.status().as_u16(), retry_after)
            }));
        }
        let answers = futures_util::future::join_all(sent).await;
        (answers, started.elapsed())
    };
    let polls = async {
        let mut polls = Vec::new();
        while started.elapsed() < WINDOW {
            let began = Instant::now();
            polls.push((poll_once(&app.app).await, began.elapsed()));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        polls
    };
    let preview = async {
        tokio::time::sleep(WINDOW / 2).await;
        let response = operator
            .post(app.url("/api/v1/actions"))
            .json(&serde_json::json!({
                "service": "payments",
                "mutation": "retrySagas",
                "arguments": { "ids": ids },
            }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    let peak = async {
        let mut peak = 0;
        while started.elapsed() < WINDOW {
            peak = peak.max(runboard_connections(&admin, &database).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    };
    let ((answers, answered_within), polls, (preview_status, preview), peak) =
        tokio::join!(hammer, polls, preview, peak);

    let answers: Vec<(u16, bool)> = answers.into_iter().map(Result::unwrap).collect();
    let count = |status: u16| answers.iter().filter(|(s, _)| *s == status).count();
    let (ok, refused) = (count(200), count(429));
    println!(
        "{} requests from one viewer in {WINDOW:?}: {ok} answered, {refused} refused with 429, {} busy (503); {} polls, the slowest {:?}; peak connections {peak} of {max_connections}",
        answers.len(),
        count(503),
        polls.len(),
        polls.iter().map(|(_, took)| *took).max().unwrap(),
    );
    assert!(
        answers.len() as u32 >= RATE * 25,
        "the script sent about {RATE} a second: {}",
        answers.len()
    );
    assert!(refused > 0, "the viewer is slowed");
    assert!(
        answers
            .iter()
            .all(|(s, retry_after)| *s != 429 || *retry_after),
        "every 429 says when to come back"
    );
    // The burst, and the pace for as long as requests kept arriving (on a loaded machine
    // the last may arrive after the 30 s), plus a second of slack.
    let allowed = limits.per_person_burst
        + limits.per_person_per_second * (answered_within.as_secs() as u32 + 1);
    assert!(
        ok <= allowed as usize,
        "at most the burst and the pace got through: {ok} > {allowed}"
    );
    assert!(
        answers.iter().all(|(s, _)| [200, 429, 503].contains(s)),
        "answered, slowed or told the service is busy, never failed"
    );
    assert!(polls.len() >= 10, "{} polls", polls.len());
    for (polled, took) in &polls {
        assert_eq!(
            polled.as_ref().ok(),
            Some(&1),
            "every poll read the service (took {took:?})"
        );
    }
    assert_eq!(preview_status, 201, "the operator's preview: {preview}");
    assert!(
        peak <= max_connections,
        "at most max_connections = {max_connections} connections, saw {peak}"
    );
}
