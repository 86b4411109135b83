//! Watches against the demo fleet: alerts fire from the polls, are told once to the team's
//! webhook (a real HTTP receiver on loopback), remind once, keep quiet when acknowledged or
//! silenced, resolve by themselves, and are told once however many replicas judge.

use crate::support as common;

use std::time::Duration;

use common::{
    TestApp, bearer_client, database_behind_proxy, registered, spawn_app_configured, start_fleet,
    start_fleet_working, webhook, webhook_keeping,
};
use runboard_core::App;
use runboard_core::poller::poll_once;
use runboard_model::{AlertBoard, AlertState, Role, Watch};
use runboard_testkit::{Backend, TestStore};
use serde_json::json;

/// Every currency the demo fleet's payments service may hold, each watched from 0.
fn any_money_held() -> std::collections::BTreeMap<String, rust_decimal::Decimal> {
    ["EUR", "USD", "GBP", "CHF"]
        .into_iter()
        .map(|c| (c.to_owned(), rust_decimal::Decimal::ZERO))
        .collect()
}

async fn board(app: &TestApp) -> AlertBoard {
    let response = app.get("/api/v1/alerts").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The alerts as every page shows them (the navigation's count, a service's alerts).
async fn alerts_on_page(app: &TestApp) -> AlertBoard {
    let response = app
        .client
        .post(app.url("/rpc/alerts_on_page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The currencies payments holds money in, as Runboard's funds answer says.
async fn currencies_held(app: &TestApp) -> Vec<String> {
    let funds: serde_json::Value = app.get("/api/v1/funds").await.json().await.unwrap();
    let mut currencies: Vec<String> = funds["services"]
        .as_array()
        .expect("the funds answer lists services")
        .iter()
        .filter(|s| s["service"] == "payments")
        .flat_map(|s| s["withheld_funds"].as_array().unwrap().clone())
        .map(|m| m["currency"].as_str().unwrap().to_owned())
        .collect();
    currencies.sort();
    currencies
}

/// Polls until the alert board shows `done`: what takes the demo fleet real time (a worker
/// finishing items, or not) is waited for with a generous deadline, never guessed.
async fn poll_until(app: &TestApp, done: impl Fn(&AlertBoard) -> bool) -> AlertBoard {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        poll_once(&app.app).await.unwrap();
        let now = board(app).await;
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached in 2 minutes: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Payouts' batches, as the API lists them.
async fn payout_batches(app: &TestApp) -> Vec<serde_json::Value> {
    let batches: serde_json::Value = app
        .get("/api/v1/services/payouts/batches")
        .await
        .json()
        .await
        .unwrap();
    batches["batches"].as_array().unwrap().clone()
}

/// Returns once the payout worker finished another item of the running batch.
async fn items_finish(app: &TestApp) {
    let finished = || async {
        payout_batches(app)
            .await
            .iter()
            .filter(|b| b["finished_at"].is_null())
            .map(|b| b["done"].as_u64().unwrap() + b["failed"].as_u64().unwrap())
            .sum::<u64>()
    };
    let before = finished().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while finished().await == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payout worker finished no item in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every watch but `watch`: the tests below hear of one watch at a time.
fn all_but(watch: Watch) -> Vec<Watch> {
    Watch::ALL.into_iter().filter(|w| *w != watch).collect()
}

/// Takes what the webhook got, once every message `app` sent (on the side) was answered:
/// none is missed however slow the machine, and "nothing was said" is known, not guessed.
async fn messages_after_poll<T>(app: &App, received: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
    app.notifier.settled().await;
    std::mem::take(&mut *received.lock().unwrap())
}

#[tokio::test]
async fn money_held_is_told_once_reminded_once_and_quiet_once_acknowledged() {
    let (hook, received) = webhook().await;
    let fleet = start_fleet(Backend::Sqlite).await;
    let services = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
        config.services = services;
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.money_held_above = any_money_held();
        config.watches.off = all_but(Watch::MoneyHeld);
        config.watches.repeat_after = Duration::from_secs(3600);
    })
    .await;

    poll_once(&app.app).await.unwrap();
    let currencies = currencies_held(&app).await;
    assert!(
        currencies.len() >= 2,
        "the demo's payments holds money in several currencies: {currencies:?}"
    );
    let fired = messages_after_poll(&app.app, &received).await;
    assert_eq!(
        fired.len(),
        currencies.len(),
        "one message per currency: {fired:?}"
    );
    for message in &fired {
        assert!(
            message.starts_with(":rotating_light: *Money held* on *payments*:"),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("{}/funds#payments", app.address)),
            "the link opens the service's funds: {message}"
        );
    }
    let alerts = board(&app).await.alerts;
    assert_eq!(alerts.len(), currencies.len());
    let mut subjects: Vec<_> = alerts.iter().map(|a| a.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects, currencies);
    assert!(alerts.iter().all(|a| a.state == AlertState::Firing));

    // A second poll sees the same: nothing more is said.
    poll_once(&app.app).await.unwrap();
    assert_eq!(
        messages_after_poll(&app.app, &received).await,
        Vec::<String>::new()
    );

    // The on-call engineer takes one; a viewer may not, and twice is refused with who did.
    let oscar = bearer_client(&app.token_for("Oscar", &[Role::Operator]).await);
    let taken = &alerts[0];
    let acknowledge = |client: reqwest::Client, id: i64| {
        let url = app.url(&format!("/api/v1/alerts/{id}/acknowledge"));
        async move {
            client
                .post(url)
                .json(&json!({ "note": "moving it by hand" }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        acknowledge(app.client.clone(), taken.id).await.status(),
        403
    );
    // Pages share one read of the alerts a second; an acknowledgment shows on them at once.
    let on_page = |board: AlertBoard| {
        board
            .alerts
            .into_iter()
            .find(|a| a.id == taken.id)
            .map(|a| a.state)
    };
    assert_eq!(
        on_page(alerts_on_page(&app).await),
        Some(AlertState::Firing)
    );
    // The Alerts screen is rendered once a second for everyone with the same roles.
    let alerts_screen = || async { app.get("/alerts").await.text().await.unwrap() };
    assert!(!alerts_screen().await.contains("“moving it by hand”"));
    let done = acknowledge(oscar.clone(), taken.id).await;
    assert_eq!(done.status(), 200);
    assert_eq!(
        on_page(alerts_on_page(&app).await),
        Some(AlertState::Acknowledged)
    );
    assert!(
        alerts_screen().await.contains("“moving it by hand”"),
        "the Alerts screen shows the acknowledgment at once, not a render from before it"
    );
    let done: serde_json::Value = done.json().await.unwrap();
    assert_eq!(done["state"], "acknowledged");
    assert_eq!(done["acknowledged"]["by"], "Oscar");
    assert_eq!(done["acknowledged"]["note"], "moving it by hand");
    let again = acknowledge(oscar.clone(), taken.id).await;
    assert_eq!(again.status(), 409);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("acknowledged already, by Oscar")
    );
    assert_eq!(acknowledge(oscar.clone(), 999_999).await.status(), 404);

    // After repeat_after, those nobody took are told once more, and only once.
    app.app.clock.advance(Duration::from_secs(3600));
    poll_once(&app.app).await.unwrap();
    let reminders = messages_after_poll(&app.app, &received).await;
    assert_eq!(reminders.len(), currencies.len() - 1, "{reminders:?}");
    assert!(
        reminders
            .iter()
            .all(|m| m.starts_with(":bell: Still firing since") && !m.contains(&taken.summary)),
        "{reminders:?}"
    );
    poll_once(&app.app).await.unwrap();
    assert_eq!(
        messages_after_poll(&app.app, &received).await,
        Vec::<String>::new()
    );

    // Prometheus sees the ones still firing, by watch and service.
    let metrics = app.metrics().await;
    let line = format!(
        "runboard_alerts_firing{{watch=\"money_held\",service=\"payments\"}} {}",
        currencies.len() - 1
    );
    assert!(metrics.contains(&line), "{line} in:\n{metrics}");
}

#[tokio::test]
async fn an_unreachable_service_fires_after_its_polls_a_silence_holds_it_back_and_it_resolves() {
    let (hook, received) = webhook().await;
    let fleet = start_fleet(Backend::Postgres).await;
    // Onboarding's database is reached through a proxy the test cuts.
    let mut onboarding = registered(fleet.service("onboarding"));
    let proxy = database_behind_proxy(&mut onboarding).await;
    onboarding.query_timeout = Duration::from_secs(1);
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = vec![onboarding];
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.unreachable_polls = 2;
        config.watches.off = all_but(Watch::ServiceUnreachable);
    })
    .await;
    poll_once(&app.app).await.unwrap();
    assert!(board(&app).await.alerts.is_empty());

    // Bad silences are refused with what to send; a good one covers the next hour, on Runboard's clock.
    let oscar = bearer_client(&app.token_for("Oscar", &[Role::Operator]).await);
    let silence = |body: serde_json::Value| {
        let oscar = oscar.clone();
        let url = app.url("/api/v1/silences");
        async move { oscar.post(url).json(&body).send().await.unwrap() }
    };
    for (body, status, says) in [
        (
            json!({ "service": "onboarding", "for": "soon", "reason": "failover" }),
            400,
            "\"for\" is not a duration",
        ),
        (
            json!({ "watch": "everything", "for": "1h", "reason": "failover" }),
            400,
            "the watches are new_error, failures_rising, stalled_batch, money_held, service_unreachable",
        ),
        (
            json!({ "service": "nowhere", "for": "1h", "reason": "failover" }),
            404,
            "there is no service \"nowhere\"",
        ),
        (
            json!({ "service": "onboarding", "for": "1h", "reason": " " }),
            400,
            "say why",
        ),
    ] {
        let refused = silence(body).await;
        assert_eq!(refused.status(), status);
        let error: serde_json::Value = refused.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says} in {message}");
    }
    let silenced = silence(json!({
        "service": "onboarding",
        "watch": "service_unreachable",
        "for": "1h",
        "reason": "database failover under way"
    }))
    .await;
    assert_eq!(silenced.status(), 200);

    proxy.cut();
    poll_once(&app.app).await.unwrap();
    assert!(
        board(&app).await.alerts.is_empty(),
        "one failed poll is not yet an alert"
    );
    poll_once(&app.app).await.unwrap();
    let alerts = board(&app).await.alerts;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].watch, Watch::ServiceUnreachable);
    assert_eq!(alerts[0].state, AlertState::Silenced);
    assert!(
        alerts[0]
            .summary
            .starts_with("could not be read for 2 polls in a row"),
        "{}",
        alerts[0].summary
    );
    assert_eq!(
        messages_after_poll(&app.app, &received).await,
        Vec::<String>::new()
    );

    // The silence ends while the service is still down: the team hears of it then.
    app.app.clock.advance(Duration::from_secs(3600));
    poll_once(&app.app).await.unwrap();
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with(":rotating_light: *Service unreachable* on *onboarding*: could not be read for 3 polls in a row"),
        "{}",
        told[0]
    );
    assert_eq!(board(&app).await.alerts[0].state, AlertState::Firing);

    // Back: the alert resolves by itself, and the team hears that too.
    proxy.restore();
    poll_once(&app.app).await.unwrap();
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].starts_with(
            ":large_green_circle: Resolved by itself: *Service unreachable* on *onboarding*"
        ),
        "{}",
        told[0]
    );
    let alerts = board(&app).await.alerts;
    assert_eq!(alerts[0].state, AlertState::Resolved);
    assert!(alerts[0].resolved_at.is_some());
}

#[tokio::test]
async fn two_replicas_judging_the_same_polls_tell_each_alert_once() {
    let (hook, received) = webhook().await;
    let fleet = start_fleet(Backend::Sqlite).await;
    let services = fleet.fleet.services().iter().map(registered).collect();
    let (first, ()) = spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
        config.services = services;
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.money_held_above = any_money_held();
        config.watches.off = all_but(Watch::MoneyHeld);
    })
    .await;
    let second = first.second_replica().await;
    // Both read every service at once, three times over (not taking turns by the poll
    // claim, as `serve` does): the store alone keeps each alert and message single.
    for _ in 0..3 {
        let (a, b) = tokio::join!(poll_once(&first.app), poll_once(&second));
        a.unwrap();
        b.unwrap();
    }
    let currencies = currencies_held(&first).await;
    second.notifier.settled().await;
    let mut told = messages_after_poll(&first.app, &received).await;
    assert_eq!(
        told.len(),
        currencies.len(),
        "one message per currency: {told:?}"
    );
    told.sort();
    told.dedup();
    assert_eq!(told.len(), currencies.len(), "none twice: {told:?}");
    assert_eq!(board(&first).await.alerts.len(), currencies.len());
}

/// The text of a message as the webhook got it, and the link of the button under it.
fn text_and_button(body: &serde_json::Value) -> (String, Option<String>) {
    let text = body["text"].as_str().unwrap().to_owned();
    let button = body["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "actions"))
        .map(|actions| {
            let button = &actions["elements"][0];
            assert_eq!(button["type"], "button");
            assert_eq!(button["text"]["text"], "Ask for the corrective action");
            button["url"].as_str().unwrap().to_owned()
        });
    (text, button)
}

#[tokio::test]
async fn a_new_error_is_told_once_with_the_button_that_asks_for_its_fix_and_resolves_when_fixed() {
    let (hook, received) = webhook_keeping(|body| body).await;
    let fleet = start_fleet(Backend::Postgres).await;
    let services = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = services;
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.off = all_but(Watch::NewError);
    })
    .await;
    // The first poll learns the errors the fleet already has (those its history gave in
    // the last hour are new to it and may fire: they are not what this test is about).
    poll_once(&app.app).await.unwrap();
    let before = board(&app).await.alerts.len();
    messages_after_poll(&app.app, &received).await;

    let message = "ledger: connection reset by peer <never seen before>";
    let injected = fleet
        .fleet
        .inject_error("payments", message, 3, None)
        .await
        .unwrap();
    poll_once(&app.app).await.unwrap();
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "one message for the new error: {told:?}");
    let (text, button) = text_and_button(&told[0]);
    let encoded = "ledger%3A%20connection%20reset%20by%20peer%20%3Cnever%20seen%20before%3E";
    assert!(
        text.starts_with(
            ":rotating_light: *New error* on *payments*: \"ledger: connection reset by peer &lt;never seen before&gt;\" on 3 failed sagas, the first "
        ),
        "{text}"
    );
    assert!(
        injected.iter().any(|id| text.contains(id.as_str())),
        "the first saga is one of those that failed with it: {text}"
    );
    // In mrkdwn a link's `&` is written `&amp;`, which Slack shows as `&`; the button's
    // link is plain JSON.
    assert!(
        text.contains(&format!(
            "Open in Runboard: {}/services/payments?status=failed&amp;error={encoded}",
            app.address
        )),
        "{text}"
    );
    let ask = format!(
        "{}/actions/new?service=payments&error={encoded}",
        app.address
    );
    assert_eq!(button.as_deref(), Some(ask.as_str()));
    assert!(
        text.ends_with(&format!(
            "Ask for the corrective action: {}",
            ask.replace('&', "&amp;")
        )),
        "{text}"
    );

    let alerts = board(&app).await.alerts;
    assert_eq!(alerts.len(), before + 1);
    let alert = alerts
        .iter()
        .find(|a| a.subject == message)
        .expect("the new error's alert, named by its message");
    assert_eq!(alert.watch, Watch::NewError);
    assert_eq!(alert.state, AlertState::Firing);

    // The next poll sees it again, and another saga failing with it: it is new no more,
    // and nothing more is said.
    fleet
        .fleet
        .inject_error("payments", message, 1, None)
        .await
        .unwrap();
    poll_once(&app.app).await.unwrap();
    assert!(messages_after_poll(&app.app, &received).await.is_empty());
    let still = board(&app).await.alerts;
    assert_eq!(still.len(), before + 1);
    assert!(
        still
            .iter()
            .any(|a| a.id == alert.id && a.state == AlertState::Firing)
    );

    // Its sagas completed by the service's own mission control: the alert resolves, told
    // without the button.
    let failed_with_it: Vec<String> = app
        .get(&format!(
            "/api/v1/services/payments/sagas?status=failed&error={encoded}&limit=10"
        ))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed_with_it.len(), 4);
    fleet
        .force_complete_by_hand("payments", &failed_with_it)
        .await;
    poll_once(&app.app).await.unwrap();
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let (text, button) = text_and_button(&told[0]);
    assert!(
        text.starts_with(":large_green_circle: Resolved by itself: *New error* on *payments*"),
        "{text}"
    );
    assert_eq!(button, None);
    let resolved = board(&app).await.alerts;
    assert!(
        resolved
            .iter()
            .any(|a| a.id == alert.id && a.state == AlertState::Resolved)
    );
}

#[tokio::test]
async fn a_stopped_payout_worker_stalls_its_batch_and_the_alert_resolves_when_it_resumes() {
    let (hook, received) = webhook_keeping(|body| body).await;
    let fleet = start_fleet_working(Backend::Sqlite).await;
    let stall_after = Duration::from_secs(5);
    let payouts = registered(fleet.service("payouts"));
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
        config.services = vec![payouts];
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.off = all_but(Watch::StalledBatch);
        config.watches.stall_after = stall_after;
        // Only the stall: the demo batch fails few of its items.
        config.watches.batch_failed_share = 1.0;
    })
    .await;
    // The worker works the batch off a few items a second: nothing stalls.
    items_finish(&app).await;
    poll_once(&app.app).await.unwrap();
    assert!(board(&app).await.alerts.is_empty());

    fleet.fleet.set_payout_worker(false);
    poll_once(&app.app).await.unwrap();
    assert!(
        board(&app).await.alerts.is_empty(),
        "a worker just stopped is no stall"
    );
    // Some poll after stall_after without an item finished fires.
    let alerts = poll_until(&app, |board| !board.alerts.is_empty())
        .await
        .alerts;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.watch, Watch::StalledBatch);
    assert_eq!(alert.state, AlertState::Firing);
    let batch = &alert.subject;
    let batches = payout_batches(&app).await;
    let running = batches
        .iter()
        .find(|b| b["finished_at"].is_null())
        .expect("the demo's batch is running");
    assert_eq!(&running["batch_id"], batch.as_str());
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let (text, button) = text_and_button(&told[0]);
    assert!(
        text.starts_with(&format!(
            ":rotating_light: *Stalled batch* on *payouts*: batch \"{}\": no item finished for ",
            running["name"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Open in Runboard: {}/services/payouts/batches/{batch}",
            app.address
        )),
        "{text}"
    );
    assert_eq!(
        button,
        Some(format!(
            "{}/actions/new?service=payouts&batch={batch}",
            app.address
        )),
        "its failed items can be asked to run again from the message"
    );

    // Still stalled at the next poll: said once.
    poll_once(&app.app).await.unwrap();
    assert!(messages_after_poll(&app.app, &received).await.is_empty());

    fleet.fleet.set_payout_worker(true);
    poll_until(&app, |board| board.alerts[0].state == AlertState::Resolved).await;
    let told = messages_after_poll(&app.app, &received).await;
    assert_eq!(told.len(), 1, "{told:?}");
    let (text, _) = text_and_button(&told[0]);
    assert!(
        text.starts_with(":large_green_circle: Resolved by itself: *Stalled batch* on *payouts*"),
        "{text}"
    );
    assert_eq!(board(&app).await.alerts[0].state, AlertState::Resolved);
}

#[tokio::test]
async fn money_held_longer_than_the_age_fires_per_currency_without_any_amount_figure() {
    let (hook, received) = webhook().await;
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = registered(fleet.service("payments"));
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
        config.services = vec![payments];
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.watches.off = all_but(Watch::MoneyHeld);
        // No amount is watched; the demo's history has held money for hours.
        config.watches.money_held_longer_than = Some(Duration::from_secs(60));
    })
    .await;
    poll_once(&app.app).await.unwrap();
    let currencies = currencies_held(&app).await;
    assert!(!currencies.is_empty());
    let alerts = board(&app).await.alerts;
    let mut subjects: Vec<_> = alerts.iter().map(|a| a.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects, currencies);
    for alert in &alerts {
        assert!(
            alert
                .summary
                .contains("withheld by failed and stuck sagas, the oldest held for ")
                && alert
                    .summary
                    .ends_with(", longer than the 1m the watch allows"),
            "{}",
            alert.summary
        );
    }
    assert_eq!(
        messages_after_poll(&app.app, &received).await.len(),
        currencies.len()
    );
}
