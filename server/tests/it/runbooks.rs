//! Runbooks (#17) through the API against the demo fleet (real GraphQL over HTTP): several
//! steps per entity, each filled in from that entity's own data, previewed and approved as
//! one, and run in order per entity.
//!
//! The story is the seed case: payments transfers failed at `post_to_ledger` while holding
//! their money; the fix is to transfer the held funds by hand and then force-complete the
//! saga.

use crate::support as common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Setup, setup_with, start_fleet};
use runboard_core::execution;
use runboard_model::Role;
use runboard_testkit::{Backend, test_on_both_stores};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The demo's runbook of the story, started on `ids`.
fn transfer_and_complete(ids: &[String]) -> Value {
    let runbook = runboard_server::demo::held_transfer_runbook();
    json!({
        "service": "payments",
        "name": runbook["name"],
        "entities": ids,
        "params": { "reason": "INC-7: ledger rejected postings" },
        "steps": runbook["steps"],
    })
}

/// A page of an action's entities, each with its steps.
async fn entities_of(s: &Setup, id: &str) -> Vec<Value> {
    s.alice
        .get(&format!("/api/v1/actions/{id}?limit=100"))
        .await["entities"]
        .as_array()
        .unwrap()
        .clone()
}

fn money_by_currency(money: &Value) -> BTreeMap<String, Decimal> {
    money
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["currency"].as_str().unwrap().to_owned(),
                m["amount"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

test_on_both_stores!(
    a_runbook_shows_each_entitys_story_and_its_approvals_follow_the_money_of_all_its_steps,
    a_step_that_fails_for_one_entity_stops_only_that_entitys_later_steps,
);

async fn a_runbook_shows_each_entitys_story_and_its_approvals_follow_the_money_of_all_its_steps(
    backend: Backend,
) {
    let fleet = Arc::new(start_fleet(backend).await);
    let ids = common::held_transfers(&fleet, 3).await;
    let s = setup_with(fleet.clone(), backend).await;

    // A template that cannot be filled in is refused before any call reaches the service.
    let mut bad = transfer_and_complete(&ids);
    bad["steps"][0]["arguments"]["amount"] = json!("{{ funds.amout }}");
    let before = fleet.fleet.call_log("payments").await.unwrap().len();
    let (status, refused) = s.alice.post("/api/v1/actions", bad).await;
    assert_eq!(status, 400, "{refused}");
    let said = refused.to_string();
    assert!(
        said.contains("step 1 (Transfer the held funds)") && said.contains("funds.amout"),
        "{said}"
    );
    assert_eq!(
        fleet.fleet.call_log("payments").await.unwrap().len(),
        before,
        "nothing was sent for a refused runbook"
    );

    let (status, action) = s
        .alice
        .post("/api/v1/actions", transfer_and_complete(&ids))
        .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap();
    assert_eq!(
        action["mutation"],
        "Transfer the held funds and force-complete"
    );
    let steps = action["preview"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(action["preview"]["entities"], 3);

    // Each entity's story: what it held, the transfer of exactly that, then its completion.
    for entity in entities_of(&s, id).await {
        let saga = entity["entity_id"].as_str().unwrap();
        let held = &entity["held"];
        let amount = held["amount"]
            .as_str()
            .expect("a held transfer holds money");
        let story = entity["steps"].as_array().unwrap();
        assert_eq!(story.len(), 2, "{entity}");
        let transfer = &story[0];
        assert_eq!(transfer["state"], "pending");
        assert_eq!(transfer["variables"]["amount"], amount, "{entity}");
        assert_eq!(transfer["variables"]["currency"], held["currency"]);
        assert_eq!(transfer["variables"]["reference"], format!("RB-{saga}"));
        assert!(
            transfer["variables"]["fromAccount"]
                .as_str()
                .is_some_and(|a| !a.is_empty()),
            "{entity}"
        );
        assert_eq!(transfer["planned"].as_array().unwrap().len(), 1, "{entity}");
        let completion = &story[1];
        assert_eq!(completion["variables"]["ids"], json!([saga]));
        assert_eq!(
            completion["variables"]["reason"],
            "INC-7: ledger rejected postings"
        );
        let would = completion["planned"][0].as_str().unwrap();
        assert!(would.contains("releases"), "{would}");
    }

    // The same runbook on the same data has the same digest.
    let (_, again) = s
        .alice
        .post("/api/v1/actions", transfer_and_complete(&ids))
        .await;
    assert_eq!(again["digest"], action["digest"]);

    // The money of all steps counts: each step alone moves no more than the limit (the
    // transfer moves what the saga holds, the completion releases it), both together do.
    let per_step = steps
        .iter()
        .map(|step| money_by_currency(&step["money"]))
        .fold(BTreeMap::new(), |mut most, money| {
            for (currency, amount) in money {
                let seen = most.entry(currency).or_insert(Decimal::ZERO);
                *seen = (*seen).max(amount);
            }
            most
        });
    assert!(!per_step.is_empty(), "{action}");
    let total = money_by_currency(&action["preview"]["money"]);
    for (currency, most) in &per_step {
        assert_eq!(total[currency], most * Decimal::from(2), "{currency}");
    }
    assert_eq!(action["approvals_needed"], 1, "no limit set: {action}");
    let strict = setup_with(fleet.clone(), backend)
        .configure(|config| {
            config.actions.extra_approval_above = per_step.clone();
        })
        .await;
    let (status, runbook) = strict
        .alice
        .post("/api/v1/actions", transfer_and_complete(&ids))
        .await;
    assert_eq!(status, 201, "{runbook}");
    assert_eq!(
        runbook["approvals_needed"], 2,
        "the whole runbook moves more than the limit: {runbook}"
    );
    let (status, one_step) = strict
        .alice
        .post(
            "/api/v1/actions",
            json!({ "service": "payments", "mutation": "forceCompleteSagas",
                "arguments": { "ids": ids, "reason": "INC-7" } }),
        )
        .await;
    assert_eq!(status, 201, "{one_step}");
    assert_eq!(
        one_step["approvals_needed"], 1,
        "the completion alone stays within the limit: {one_step}"
    );
}

async fn a_step_that_fails_for_one_entity_stops_only_that_entitys_later_steps(backend: Backend) {
    let fleet = Arc::new(start_fleet(backend).await);
    let ids = common::held_transfers(&fleet, 3).await;
    let s = setup_with(fleet.clone(), backend).await;
    let (status, action) = s
        .alice
        .post("/api/v1/actions", transfer_and_complete(&ids))
        .await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap().to_owned();
    let (status, submitted) = s
        .alice
        .post(
            &format!("/api/v1/actions/{id}/submit"),
            json!({ "reason": "INC-7: ledger rejected postings" }),
        )
        .await;
    assert_eq!(status, 200, "{submitted}");
    let (status, approved) = s.bob.approve(&id, &action["digest"]).await;
    assert_eq!(status, 200, "{approved}");

    // After the approval, the last saga's source account goes on legal hold: the service
    // refuses its transfer for real (its dry run passed). Not the first: its call is the
    // canary, whose refusal pauses the action (server/tests/it/pace.rs).
    let stories = entities_of(&s, &id).await;
    let stopped = ids[ids.len() - 1].clone();
    let frozen = stories
        .iter()
        .find(|e| e["entity_id"] == stopped.as_str())
        .unwrap()["steps"][0]["variables"]["fromAccount"]
        .as_str()
        .unwrap()
        .to_owned();
    let held: Value = reqwest::Client::new()
        .post(&fleet.service("payments").graphql_url)
        .json(&json!({ "query": format!("mutation {{ setLegalHold(ids: [\"{frozen}\"]) }}") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["data"]["setLegalHold"], 1, "{held}");

    for _ in 0..200 {
        if !execution::work_on_next_due(&s.app.app).await.unwrap() {
            break;
        }
    }
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "partially_failed", "{detail}");
    assert_eq!(detail["action"]["progress"]["succeeded"], 2);
    assert_eq!(detail["action"]["progress"]["failed"], 1);

    for entity in entities_of(&s, &id).await {
        let saga = entity["entity_id"].as_str().unwrap();
        let states: Vec<&str> = entity["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["state"].as_str().unwrap())
            .collect();
        if saga == stopped {
            assert_eq!(entity["state"], "failed");
            assert_eq!(states, ["failed", "skipped"], "{entity}");
            let why = entity["steps"][1]["detail"].as_str().unwrap();
            assert!(why.contains("step 1 failed"), "{why}");
        } else {
            assert_eq!(entity["state"], "succeeded");
            assert_eq!(states, ["succeeded", "succeeded"], "{entity}");
        }
    }

    // The service's own log: per saga, the transfer (step 0) was applied before its
    // completion (step 1), each call once; the stopped saga's completion was never sent.
    let calls = common::real_calls_of(&fleet, "payments", &id).await;
    for saga in &ids {
        let (transfers, completions) = common::runbook_steps_of(&calls, saga);
        let transfer = *transfers
            .first()
            .unwrap_or_else(|| panic!("no transfer for {saga}: {calls:?}"));
        let completion = completions.first().copied();
        if *saga == stopped {
            assert!(!calls[transfer].applied, "{:?}", calls[transfer]);
            assert_eq!(
                completion, None,
                "a stopped saga's completion is never sent"
            );
        } else {
            let completion = completion.unwrap_or_else(|| panic!("no completion for {saga}"));
            assert!(transfer < completion, "{saga}: the transfer comes first");
            assert!(calls[transfer].applied && calls[completion].applied);
            let key = calls[transfer].idempotency_key.as_deref().unwrap();
            assert!(key.starts_with(&format!("runboard:{id}:0:")), "{key}");
            let key = calls[completion].idempotency_key.as_deref().unwrap();
            assert!(key.starts_with(&format!("runboard:{id}:1:")), "{key}");
        }
    }
    let audit: Vec<String> = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(audit.contains(&"action.step_done".to_owned()), "{audit:?}");
}

test_on_both_stores!(
    a_step_whose_dry_run_changed_after_the_step_before_it_ran_comes_back_for_approval
);

async fn a_step_whose_dry_run_changed_after_the_step_before_it_ran_comes_back_for_approval(
    backend: Backend,
) {
    let fleet = Arc::new(start_fleet(backend).await);
    let ids = common::held_transfers(&fleet, 2).await;
    let s = setup_with(fleet.clone(), backend).await;
    let (_, action) = s
        .alice
        .post("/api/v1/actions", transfer_and_complete(&ids))
        .await;
    let id = action["id"].as_str().unwrap().to_owned();
    s.alice
        .post(
            &format!("/api/v1/actions/{id}/submit"),
            json!({ "reason": "INC-7" }),
        )
        .await;
    let (status, _) = s.bob.approve(&id, &action["digest"]).await;
    assert_eq!(status, 200);

    // After the approval, the money the sagas hold grows behind Runboard's back: the
    // transfers were approved as they are, the completions would now release more.
    let grown = runboard_testkit::run_sql(
        &fleet.service("payments").database_url,
        &format!(
            "UPDATE transfer_event SET amount = '900000.00' WHERE amount IS NOT NULL AND transfer_id IN ('{}')",
            ids.join("', '")
        ),
    )
    .await;
    assert!(grown > 0);
    let run_engine = || async {
        for _ in 0..200 {
            if !execution::work_on_next_due(&s.app.app).await.unwrap() {
                return;
            }
        }
        panic!("the engine kept finding work");
    };
    run_engine().await;

    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    let again = &detail["action"];
    assert_eq!(again["state"], "awaiting_approval", "{detail}");
    assert_eq!(again["current_step"], 1, "the transfers are done: {again}");
    assert_eq!(again["approvals"], json!([]), "the approval is void");
    assert_ne!(again["digest"], action["digest"]);
    let said = again["state_detail"].as_str().unwrap();
    assert!(
        said.contains("Read the new preview and approve again"),
        "{said}"
    );
    // What is left to approve: the completions, each releasing the grown amount.
    let left = money_by_currency(&again["preview"]["money"]);
    assert!(
        !left.is_empty() && left.values().all(|m| *m >= Decimal::from(900_000)),
        "{left:?}"
    );
    let calls = common::real_calls_of(&fleet, "payments", &id).await;
    for saga in &ids {
        let (transfers, completions) = common::runbook_steps_of(&calls, saga);
        assert_eq!(transfers.len(), 1, "{saga}'s transfer was sent");
        assert!(
            completions.is_empty(),
            "{saga}'s completion waits for the new approval"
        );
    }

    // Approved again, the runbook goes on at its second step, without repeating the first.
    let (status, body) = s.bob.approve(&id, &again["digest"]).await;
    assert_eq!(status, 200, "{body}");
    run_engine().await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "succeeded", "{detail}");
    let calls = common::real_calls_of(&fleet, "payments", &id).await;
    for saga in &ids {
        let (transfers, completions) = common::runbook_steps_of(&calls, saga);
        assert_eq!((transfers.len(), completions.len()), (1, 1), "{saga}");
        assert!(transfers[0] < completions[0]);
    }
}

/// A runbook is bounded before any call of it is built: no more steps than
/// `actions.max_steps`, and no more calls (steps × entities) than one action makes.
#[tokio::test]
async fn a_runbook_beyond_its_bounds_is_refused_before_any_call_is_built() {
    let fleet = Arc::new(start_fleet(Backend::Sqlite).await);
    let s = setup_with(fleet.clone(), Backend::Sqlite).await;
    let demo = runboard_server::demo::held_transfer_runbook();
    let steps_of = |n: usize| -> Value {
        let two = demo["steps"].as_array().unwrap();
        json!((0..n).map(|i| two[i % 2].clone()).collect::<Vec<_>>())
    };
    let before = fleet.fleet.call_log("payments").await.unwrap().len();

    let mut long = transfer_and_complete(&["s-1".to_owned()]);
    long["steps"] = steps_of(21);
    let (status, refused) = s.alice.post("/api/v1/actions", long.clone()).await;
    assert_eq!(status, 400, "{refused}");
    let said = refused["error"]["message"].as_str().unwrap();
    assert!(
        said.contains("21 steps") && said.contains("actions.max_steps"),
        "{said}"
    );
    let (status, refused) = s
        .alice
        .post(
            "/api/v1/runbooks",
            json!({ "service": "payments", "name": "long", "steps": long["steps"] }),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    // 11 steps on 10,000 entities: 110,000 calls, more than one action makes.
    let ids: Vec<String> = (0..10_000).map(|i| format!("s-{i}")).collect();
    let mut wide = transfer_and_complete(&ids);
    wide["steps"] = steps_of(11);
    let (status, refused) = s.alice.post("/api/v1/actions", wide).await;
    assert_eq!(status, 400, "{refused}");
    let said = refused["error"]["message"].as_str().unwrap();
    assert!(
        said.contains("11 steps × 10000 entities") && said.contains("100000 calls"),
        "{said}"
    );
    assert_eq!(
        fleet.fleet.call_log("payments").await.unwrap().len(),
        before,
        "no dry run went out"
    );
}

/// A saved runbook is changed only by its author or an admin, each change audited and what
/// it replaced kept; another operator saves theirs under another name.
#[tokio::test]
async fn a_saved_runbook_is_changed_by_its_author_or_an_admin_and_its_earlier_version_is_kept() {
    let fleet = Arc::new(start_fleet(Backend::Sqlite).await);
    let s = setup_with(fleet.clone(), Backend::Sqlite).await;
    let ada = s.app.person("ada", &[Role::Operator, Role::Admin]).await;
    let demo = runboard_server::demo::held_transfer_runbook();
    let draft = |description: &str| json!({ "service": "payments", "name": "Move and close", "description": description, "steps": demo["steps"] });
    let (status, saved) = s.alice.post("/api/v1/runbooks", draft("first")).await;
    assert_eq!(status, 201, "{saved}");

    let (status, refused) = s.bob.post("/api/v1/runbooks", draft("bob's")).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only they or an admin change it"),
        "{refused}"
    );
    let (status, changed) = s.alice.post("/api/v1/runbooks", draft("second")).await;
    assert_eq!(status, 201, "{changed}");
    assert_eq!(changed["id"], saved["id"]);
    let (status, _) = ada.post("/api/v1/runbooks", draft("third")).await;
    assert_eq!(status, 201);
    let runbook = s
        .alice
        .get(&format!(
            "/api/v1/runbooks/{}",
            saved["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(runbook["description"], "third", "{runbook}");

    let url = s.app.app.config.store.effective_url();
    let kept = runboard_testkit::sql_strings(
        &url,
        "SELECT description || ' by ' || updated_by FROM runbook_version ORDER BY replaced_at",
    )
    .await;
    assert_eq!(kept, ["first by test:alice", "second by test:alice"]);
    let kinds = runboard_testkit::sql_strings(
        &url,
        "SELECT kind FROM audit_entry WHERE kind LIKE 'runbook.%' ORDER BY seq",
    )
    .await;
    assert_eq!(
        kinds,
        ["runbook.saved", "runbook.changed", "runbook.changed"]
    );
}
