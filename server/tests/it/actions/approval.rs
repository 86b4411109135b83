//! The two-person rule, and approvals bound to the preview: changed entities, expiry, money
//! that grew, two approvals at once.

use super::*;

test_on_both_stores!(
    the_two_person_rule_holds,
    an_approval_of_a_preview_whose_entities_changed_does_not_run,
    an_expired_preview_cannot_be_approved
);

async fn the_two_person_rule_holds(backend: Backend) {
    let s = setup(backend, |config| {
        // A webhook that is down: nothing here may wait for it or fail because of it.
        config.actions.webhook_url = Some("http://127.0.0.1:1/down".parse().unwrap());
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.approvals.insert("retrySagas".into(), 2);
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 2).await;

    // A viewer can do nothing: not ask, not approve.
    let (status, _) = s.vera.post("/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert_eq!(status, 403);

    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    let digest = action["digest"].as_str().unwrap();
    assert_eq!(action["approvals_needed"], 2);
    let approve = |person| Person::approve(person, id, digest);

    let (status, body) = approve(&s.vera).await;
    assert_eq!(status, 403, "a viewer cannot approve: {body}");
    for path in ["cancel", "reject"] {
        let (status, _) = s
            .vera
            .post(
                &format!("/api/v1/actions/{id}/{path}"),
                json!({ "reason": "no" }),
            )
            .await;
        assert_eq!(status, 403, "a viewer cannot {path}");
    }
    let (status, body) = approve(&s.alice).await;
    assert_eq!(status, 403, "the requester cannot approve: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another approver")
    );

    let (status, body) = approve(&s.bob).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "awaiting_approval", "one of two approvals");
    let (status, body) = approve(&s.bob).await;
    assert_eq!(status, 409, "one approver counts once: {body}");
    assert_eq!(
        s.alice.get(&format!("/api/v1/actions/{id}")).await["action"]["approvals"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // An approval names the preview it approves.
    let (status, _) = s.carol.approve(id, "0".repeat(64)).await;
    assert_eq!(status, 409);
    let (status, body) = approve(&s.carol).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "approved");

    // The same sagas cannot go into a second action while this one lives.
    let (status, second) = s.bob.post("/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids }, "reason": "again" }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = s
        .bob
        .post(
            &format!("/api/v1/actions/{}/submit", second["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(id));
}

async fn an_approval_of_a_preview_whose_entities_changed_does_not_run(backend: Backend) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 3).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    let (status, _) = s.bob.approve(id, &action["digest"]).await;
    assert_eq!(status, 200);

    // Someone else completes one of the sagas directly at the service meanwhile.
    s.fleet
        .force_complete_by_hand("onboarding", &ids[0..=0])
        .await;

    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    let action_now = &detail["action"];
    assert_eq!(action_now["state"], "awaiting_approval", "{detail}");
    assert!(
        action_now["state_detail"]
            .as_str()
            .unwrap()
            .contains("differs from the approved preview")
    );
    assert_ne!(
        action_now["digest"], action["digest"],
        "a new preview, a new digest"
    );
    assert_eq!(
        action_now["approvals"].as_array().unwrap().len(),
        0,
        "the old approval is void"
    );
    assert!(
        s.fleet
            .keyed_calls("onboarding", id)
            .await
            .iter()
            .all(|c| !c.applied),
        "no saga was called for real"
    );
}

async fn an_expired_preview_cannot_be_approved(backend: Backend) {
    let s = setup(backend, |config| {
        config.actions.preview_ttl = Duration::from_secs(3600)
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 1).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    // Past its time by Runboard's clock, however long the machine took to get here.
    s.app.app.clock.advance(Duration::from_secs(3601));
    let (status, body) = s.bob.approve(id, &action["digest"]).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "expired");
    run_engine(&s.app).await;
    assert!(
        s.fleet
            .keyed_calls("onboarding", id)
            .await
            .iter()
            .all(|c| !c.applied)
    );
}

test_on_both_stores!(
    a_re_approval_after_the_money_grew_recomputes_the_money_and_the_approvals_needed,
    two_approvals_at_once_on_a_two_approval_action_end_approved
);

async fn a_re_approval_after_the_money_grew_recomputes_the_money_and_the_approvals_needed(
    backend: Backend,
) {
    let (hook, messages) = webhook().await;
    let s = setup(backend, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        config.actions.extra_approval_above = ["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"]
            .map(|c| (c.to_owned(), rust_decimal::Decimal::from(100_000)))
            .into();
    })
    .await;
    let ids = failed_sagas(&s, "payments", 1).await;
    let action = submitted_retry_on(&s, "payments", &ids).await;
    let id = action["id"].as_str().unwrap();
    assert_eq!(action["approvals_needed"], 1, "small money: {action}");
    let currency = action["preview"]["money"][0]["currency"]
        .as_str()
        .unwrap()
        .to_owned();
    approved_by_bob(&s, &action).await;

    // The transfers behind the sagas grow before the action runs.
    let payments = s.fleet.service("payments");
    let grown = run_sql(
        &payments.database_url,
        &format!(
            "UPDATE transfer_event SET amount = '900000.00' WHERE amount IS NOT NULL AND transfer_id IN ('{}')",
            ids.join("', '")
        ),
    )
    .await;
    assert!(grown > 0);

    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    let now = &detail["action"];
    assert_eq!(now["state"], "awaiting_approval", "{detail}");
    assert_eq!(
        now["approvals_needed"], 2,
        "more money, one more approval: {now}"
    );
    assert_eq!(
        now["preview"]["money"],
        json!([{ "amount": "900000.00", "currency": currency }]),
        "the new money: {now}"
    );
    let said = now["state_detail"].as_str().unwrap();
    assert!(
        said.contains(&format!("now 900000.00 {currency}")),
        "{said}"
    );
    assert!(said.contains("approvals needed were 1, now 2"), "{said}");
    assert!(
        s.fleet
            .keyed_calls("onboarding", id)
            .await
            .iter()
            .all(|c| !c.applied),
        "no real call"
    );

    // The record and the webhook show the new figures and say what changed.
    let record = s
        .alice
        .get_text(&format!("/api/v1/actions/{id}/record.md"))
        .await;
    assert!(record.contains("900000.00"), "{record}");
    assert!(
        record.contains("approvals needed were 1, now 2"),
        "{record}"
    );
    let told = wait_for_message(&messages, "Approval is asked again").await;
    assert!(told.contains("900000.00"), "{told}");

    // Two approvers now: Bob alone does not make it run.
    approved_by_bob(&s, now).await;
    let after_bob = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(after_bob["action"]["state"], "awaiting_approval");
    let (status, body) = s.carol.approve(id, &now["digest"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
}

async fn two_approvals_at_once_on_a_two_approval_action_end_approved(backend: Backend) {
    let s = setup(backend, |config| {
        for service in &mut config.services {
            service.approvals.insert("retrySagas".into(), 2);
        }
    })
    .await;
    // Several times, so that the two approvals really meet.
    for ids in failed_sagas(&s, "onboarding", 8).await.chunks(1) {
        let action = submitted_retry(&s, ids).await;
        let id = action["id"].as_str().unwrap();
        assert_eq!(action["approvals_needed"], 2);
        let digest = &action["digest"];
        let (bob, carol) = tokio::join!(s.bob.approve(id, digest), s.carol.approve(id, digest));
        assert_eq!((bob.0, carol.0), (200, 200), "{bob:?} {carol:?}");
        let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
        assert_eq!(detail["action"]["state"], "approved", "{detail}");
        assert_eq!(detail["action"]["approvals"].as_array().unwrap().len(), 2);
    }
}
