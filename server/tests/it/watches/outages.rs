//! A service out of reach fires after its polls and a silence holds it back; two replicas
//! tell each alert once; a new error is told with the button that asks for its fix; a
//! stopped payout worker stalls its batch.

use super::*;

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
