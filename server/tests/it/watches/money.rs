//! Money held: told once, reminded once and quiet once acknowledged; held longer than the
//! age, per currency and without any amount figure.

use super::*;

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
    // Every hold older than the watch's minute, whatever the seed drew: a currency held only
    // by a saga the seed made fail seconds ago would rightly not fire.
    runboard_testkit::run_sql(
        &fleet.service("payments").database_url,
        "UPDATE saga SET updated_at = updated_at - INTERVAL '1 hour', created_at = created_at - INTERVAL '1 hour'",
    )
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
