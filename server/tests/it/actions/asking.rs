//! Asking for an action: the service's dry run previews it, a request retried under its
//! idempotency key makes one action, and an approved action calls each entity once.

use super::*;

test_on_both_stores!(
    an_approved_retry_previews_then_runs_each_saga_once,
    ids_are_kept_as_typed_whatever_they_hold,
    an_error_groups_preview_says_what_a_preview_of_its_ids_says,
    a_retried_request_under_its_idempotency_key_makes_one_action
);

/// A request that names its service wrongly is told what a service's name looks like; one
/// that names no registered service is told so.
#[tokio::test]
async fn a_request_for_a_malformed_or_unknown_service_says_which() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let ask = |service: &str| {
        s.alice.post(
            "/api/v1/actions",
            json!({ "service": service, "mutation": "retrySagas", "arguments": { "ids": ["s-1"] } }),
        )
    };
    let (status, malformed) = ask("Onboarding!").await;
    assert_eq!(status, 400, "{malformed}");
    let message = malformed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"Onboarding!\" is not a valid service name: use 1 to 63 lowercase"),
        "{message}"
    );
    let (status, unknown) = ask("nonesuch").await;
    assert_eq!(status, 404, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no service is registered as \"nonesuch\""),
        "{unknown}"
    );
}

/// A client that retries `POST /api/v1/actions` after a timeout, with its `Idempotency-Key`,
/// gets the action its first request made, even when both arrive at once; the key reused
/// for another request is refused, and another person's same key is theirs.
async fn a_retried_request_under_its_idempotency_key_makes_one_action(backend: Backend) {
    let s = setup(backend, |_| ()).await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    let request = json!({
        "service": "onboarding",
        "mutation": "retrySagas",
        "arguments": { "ids": ids },
        "reason": "INC-77",
    });
    let ask = |person: &Person, key: &str, body: &Value| {
        person
            .request(reqwest::Method::POST, "/api/v1/actions")
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let (first, twin) = tokio::join!(
        ask(&s.alice, "k-1", &request),
        ask(&s.alice, "k-1", &request)
    );
    let first: Value = first.unwrap().json().await.unwrap();
    let twin: Value = twin.unwrap().json().await.unwrap();
    let retried: Value = ask(&s.alice, "k-1", &request)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().expect("an action");
    assert_eq!(twin["id"], id, "{twin}");
    assert_eq!(retried["id"], id, "{retried}");
    let mine = s.alice.get("/api/v1/actions?view=mine").await;
    assert_eq!(mine["actions"].as_array().unwrap().len(), 1, "{mine}");

    let mut other = request.clone();
    other["reason"] = json!("INC-78");
    let refused = ask(&s.alice, "k-1", &other).await.unwrap();
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.unwrap();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was used for another request"),
        "{refused}"
    );
    let bobs: Value = ask(&s.bob, "k-1", &request)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["id"], id, "{bobs}");
    let spaced = ask(&s.alice, "a key with spaces", &request).await.unwrap();
    assert_eq!(spaced.status(), 400);
}

async fn an_approved_retry_previews_then_runs_each_saga_once(backend: Backend) {
    let (hook, messages) = webhook().await;
    let s = setup(backend, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        // Five sagas in calls of two: chunks of 2, 2 and 1.
        config.actions.chunk_size = 2;
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 5).await;

    let catalog = s.alice.get("/api/v1/services/onboarding/actions").await;
    let retry = catalog["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["mutation"] == "retrySagas")
        .expect("the catalog lists retrySagas");
    assert_eq!(retry["dry_run"], true);

    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap().to_owned();
    let preview = &action["preview"];
    assert_eq!(preview["entities"], 5, "{preview}");
    assert_eq!(preview["chunk_size"], 2, "{preview}");
    assert!(
        preview["document"]
            .as_str()
            .unwrap()
            .contains("retrySagas(ids: $ids, dryRun: $dryRun)")
    );
    assert_eq!(preview["dry_run"]["effects"], 5, "{preview}");
    let grouped: u64 = preview["dry_run"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped, 5, "every effect is in a group: {preview}");
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(
        entity_ids(&detail["entities"]),
        ids,
        "the entities in the order they were named"
    );
    assert!(
        detail["entities"][0]["found"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{detail}"
    );
    assert!(
        detail["entities"][0]["planned"][0]
            .as_str()
            .unwrap()
            .starts_with("retry"),
        "each entity shows what its dry run said: {detail}"
    );
    assert!(
        s.fleet.keyed_calls("onboarding", &id).await.is_empty(),
        "nothing is sent for real before approval"
    );

    let digest = action["digest"].as_str().unwrap();
    let (status, approved) = s.bob.approve(&id, digest).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["state"], "approved");

    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "succeeded", "{detail}");
    assert_eq!(detail["action"]["progress"]["succeeded"], 5);
    let kinds: Vec<&str> = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "action.previewed",
            "action.submitted",
            "action.approved",
            "action.executing",
            "action.started",
            "action.rechecked",
            "action.succeeded"
        ]
    );

    // Each chunk was called once with its own key, naming exactly its members, so each
    // saga was applied once; every call carries the action's names.
    let calls = s.fleet.keyed_calls("onboarding", &id).await;
    let mut applied: Vec<(String, Value)> = calls
        .iter()
        .filter(|c| c.applied)
        .map(|c| {
            (
                c.idempotency_key.clone().unwrap(),
                c.variables["ids"].clone(),
            )
        })
        .collect();
    applied.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        applied,
        [
            (format!("runboard:{id}:0"), json!(ids[0..2])),
            (format!("runboard:{id}:1"), json!(ids[2..4])),
            (format!("runboard:{id}:2"), json!(ids[4..5])),
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.requester.as_deref() == Some("test:alice"))
    );
    assert!(
        calls
            .iter()
            .all(|c| c.approvers.as_deref() == Some("test:bob"))
    );
    let audit = s.alice.get("/api/v1/audit/verify").await;
    assert_eq!(audit["state"], "intact");

    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"runboard_action_calls_total{service="onboarding",outcome="ok"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"runboard_actions_ended_total{service="onboarding",state="succeeded"} 1"#)
    );

    // The webhook heard of each step people act on, in order.
    let expected = [
        "asks for approval",
        "is approved",
        "finished: 5 of 5 succeeded",
    ];
    let mut heard = Vec::new();
    for _ in 0..50 {
        heard = messages.lock().unwrap().clone();
        if heard.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heard.len(), expected.len(), "{heard:?}");
    for (message, words) in heard.iter().zip(expected) {
        assert!(
            message.contains(words) && message.contains("retrySagas"),
            "{message}"
        );
        assert!(
            message.contains(&format!("/actions/{id}")),
            "links the action: {message}"
        );
    }
    assert!(
        heard[0].contains("INC-4711"),
        "the reason is in the request: {}",
        heard[0]
    );

    // The Markdown record tells the whole story.
    let record = s
        .alice
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/actions/{id}/record.md"),
        )
        .send()
        .await
        .unwrap();
    let content_type = record.headers()["content-type"].clone();
    let record = record.text().await.unwrap();
    assert_eq!(content_type, "text/markdown; charset=utf-8", "{record}");
    for text in [
        "# retrySagas on onboarding",
        "**succeeded**",
        "INC-4711: the KYC provider was down",
        "https://incidents.example/4711",
        "1 of 1 needed",
        "bob (test:bob)",
        "5 succeeded, 0 failed, 0 pending.",
        "action.approved",
        action["digest"].as_str().unwrap(),
    ] {
        assert!(
            record.contains(text),
            "the record lacks {text:?}:\n{record}"
        );
    }
    for saga in &ids {
        assert_eq!(
            record.matches(saga.as_str()).count(),
            2,
            "{saga} in the preview and the results"
        );
    }
}

/// An ID is whatever a user pastes: one with a tab, a line break, a backslash or a quote is
/// kept as it was typed, in its place, and so is what the service's database says of each.
async fn ids_are_kept_as_typed_whatever_they_hold(backend: Backend) {
    let s = setup(backend, |_| ()).await;
    let mut ids = failed_sagas(&s, "onboarding", 1).await;
    ids.extend(
        [
            "back\\slash",
            "tab\there",
            "line\nbreak",
            "cr\rhere",
            "\\N",
            "quote\"and,comma ✓",
        ]
        .map(String::from),
    );
    let (status, action) = s
        .alice
        .post(
            "/api/v1/actions",
            json!({
                "service": "onboarding",
                "mutation": "retrySagas",
                "arguments": { "ids": ids },
                "reason": "INC-4713",
            }),
        )
        .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap();
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    let entities = detail["entities"].as_array().unwrap();
    assert_eq!(entity_ids(&detail["entities"]), ids, "{detail}");
    assert!(
        entities[0]["found"].as_str().unwrap().starts_with("failed"),
        "{detail}"
    );
    assert!(
        entities[1..].iter().all(|e| e["found"].is_null()),
        "the service's database knows none of the others: {detail}"
    );
}

/// A preview of an error group takes each saga's state from the pages that listed the group
/// (a million sagas are read once, not twice): it says of every saga what a preview of the
/// same IDs pasted says, which looks each one up, down to the digest.
async fn an_error_groups_preview_says_what_a_preview_of_its_ids_says(backend: Backend) {
    // Calls of two, so that the preview reads its entities in several windows.
    let s = setup(backend, |config| config.actions.chunk_size = 2).await;
    let onboarding = s.fleet.service("onboarding").clone();
    runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", 60)
        .await
        .unwrap();
    let group = s.alice.largest_error_group("onboarding").await;
    assert!(group["count"].as_u64().unwrap() >= 60, "{group}");
    // Each saga at a step named after it, so that a state shown beside another saga shows.
    let error = group["error_message"].as_str().unwrap();
    run_sql(
        &onboarding.database_url,
        &format!(
            "UPDATE saga SET current_step = 'step of ' || saga_id WHERE error_message = '{error}'"
        ),
    )
    .await;
    let preview = |arguments: Value, selection: Value| {
        let alice = &s.alice;
        async move {
            let (status, action) = alice
                .post(
                    "/api/v1/actions",
                    json!({
                        "service": "onboarding", "mutation": "retrySagas",
                        "arguments": arguments, "selection": selection,
                    }),
                )
                .await;
            assert_eq!(status, 201, "{action}");
            let id = action["id"].as_str().unwrap();
            let detail = alice.get(&format!("/api/v1/actions/{id}?limit=1000")).await;
            // The count is known only once the selection has been read whole.
            let count = &action["progress"]["pending"];
            assert_eq!(count, &action["preview"]["entities"], "{action}");
            (action["digest"].clone(), detail["entities"].clone())
        }
    };
    let (group_digest, of_group) = preview(json!({}), json!({ "error_group": error })).await;
    let ids = entity_ids(&of_group);
    assert_eq!(ids.len() as u64, group["count"].as_u64().unwrap());
    // The action form's count, which keeps no list of the IDs, says as many.
    let selection = runboard_core::actions::Selection::ErrorGroup(error.to_owned());
    let service = "onboarding".parse().unwrap();
    let counted = s
        .app
        .app
        .selected_count(&service, &selection)
        .await
        .unwrap();
    assert_eq!(counted, ids.len());
    let (pasted_digest, of_ids) = preview(json!({ "ids": ids }), Value::Null).await;
    let said = |entities: &Value| -> Vec<(Value, Value, Value)> {
        entities
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["entity_id"].clone(),
                    e["found"].clone(),
                    e["planned"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(said(&of_group), said(&of_ids));
    for entity in of_group.as_array().unwrap() {
        let found = entity["found"].as_str().unwrap();
        assert!(
            found.starts_with("failed")
                && found.contains(&format!(
                    "step of {}",
                    entity["entity_id"].as_str().unwrap()
                ))
                && found.ends_with(error),
            "each saga's own state: {entity}"
        );
    }
    assert_eq!(group_digest, pasted_digest);

    // A group nobody is in any more (fixed meanwhile): nothing to act on, and nothing kept.
    let before = s.alice.get("/api/v1/actions?view=all").await;
    let (status, refused) = s
        .alice
        .post(
            "/api/v1/actions",
            json!({
                "service": "onboarding", "mutation": "retrySagas", "arguments": {},
                "selection": { "error_group": "an error no saga has" },
            }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("holds no entities now"), "{refused}");
    assert_eq!(s.alice.get("/api/v1/actions?view=all").await, before);
}

/// An ID is whatever a user types, so one spelled like the label of a single call's row is
/// an entity like any other: submitting holds it, and a second action on it waits.
#[tokio::test]
async fn an_entity_named_like_the_single_call_label_is_held_like_any_other() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let named = vec![runboard_core::actions::SINGLE_CALL.to_owned()];
    let first = submitted_retry(&s, &named).await;
    let (status, refused) = ask_and_submit(
        &s.bob,
        "onboarding",
        &named,
        json!({ "reason": "INC-4712: the same saga again" }),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "is already in action {}",
            first["id"].as_str().unwrap()
        )),
        "{message}"
    );
}

/// A preview that outlasts `http.request_timeout` is answered by Runboard, with the reason,
/// rather than cut off with an empty body a script cannot read.
#[tokio::test]
async fn a_preview_past_the_request_timeout_is_told_why() {
    let s = setup(Backend::Sqlite, |config| {
        config.http.request_timeout = Duration::from_secs(5);
        config.actions.dry_run_time_limit = Duration::from_secs(7200);
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    // The service's dry run answers an hour after the request's time is up: the request's
    // limit is the only one that can be reached, however slow this machine is.
    s.proxy().slow_down(Duration::from_secs(3600));
    let (status, body) = s
        .alice
        .post(
            "/api/v1/actions",
            json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("after http.request_timeout (5s)"),
        "{message}"
    );
}
