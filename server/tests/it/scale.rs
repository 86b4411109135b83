//! Actions at fleet scale against the demo fleet on PostgreSQL (real GraphQL over HTTP):
//! an action on a whole error group of 20,000 sagas, chosen on the server, in chunks whose
//! keys always name the same sagas; and a chunk the service refuses because of one saga,
//! split until that saga is alone; and a dry run cut short by its time limit, which keeps
//! nothing of what the preview had written meanwhile.

use crate::support as common;

use std::collections::BTreeMap;

use common::{
    Setup, applied_counts, assert_each_key_names_the_same_entities, entity_ids, ids_of, setup,
};
use runboard_core::execution;
use runboard_testkit::Backend;
use serde_json::{Value, json};

/// Alice asks for `request`, submits it, Bob approves it, and the engine runs until it has
/// nothing left to do; returns the action as it ended.
async fn asked_approved_and_run(s: &Setup, request: Value) -> Value {
    let id = asked_and_approved(s, request).await;
    run_to_end(s, &id).await
}

/// Alice asks for `request`, submits it, and Bob approves it; returns the action's ID.
async fn asked_and_approved(s: &Setup, request: Value) -> String {
    let action = s.alice.post_ok("/api/v1/actions", request).await;
    let id = action["id"].as_str().unwrap().to_owned();
    s.alice
        .post_ok(
            &format!("/api/v1/actions/{id}/submit"),
            json!({ "reason": "INC-9: the provider was down" }),
        )
        .await;
    s.bob
        .post_ok(
            &format!("/api/v1/actions/{id}/approve"),
            json!({ "digest": action["digest"] }),
        )
        .await;
    id
}

/// The engine runs until it has nothing left to do; returns action `id` as it ended.
async fn run_to_end(s: &Setup, id: &str) -> Value {
    while execution::work_on_next_due(&s.app.app).await.unwrap() {}
    s.alice.get(&format!("/api/v1/actions/{id}?limit=1")).await["action"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_on_an_error_group_of_20000_sagas_applies_each_once_in_fixed_chunks() {
    const OUTAGE: u64 = 20_000;
    let s = setup(Backend::Postgres).await;
    let onboarding = s.fleet.service("onboarding").clone();
    runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", OUTAGE)
        .await
        .unwrap();
    let group = s.alice.largest_error_group("onboarding").await;
    let in_group = group["count"].as_u64().unwrap();
    assert!(in_group >= OUTAGE, "{group}");
    let error = group["error_message"].as_str().unwrap();

    // The request names the group, not its 20,000 IDs.
    let request = json!({
        "service": "onboarding", "mutation": "retrySagas", "arguments": {},
        "selection": { "error_group": error },
    });
    assert!(request.to_string().len() < 500);
    let started = std::time::Instant::now();
    let ended = asked_approved_and_run(&s, request).await;
    println!(
        "{in_group} sagas from preview to succeeded in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(ended["state"], "succeeded", "{ended}");
    assert_eq!(ended["preview"]["entities"], in_group);
    assert_eq!(ended["progress"]["succeeded"], in_group);

    let calls = s
        .fleet
        .real_keyed_calls("onboarding", ended["id"].as_str().unwrap())
        .await;
    assert_each_key_names_the_same_entities(&calls);
    let applied = applied_counts(&calls);
    assert_eq!(applied.len() as u64, in_group, "every saga applied");
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let chunk_size = ended["preview"]["chunk_size"].as_u64().unwrap() as u32;
    let canary = ended["preview"]["canary"].as_u64().unwrap() as u32;
    assert_eq!(
        calls.len(),
        runboard_model::call_sizes(in_group, canary, chunk_size).count(),
        "one call per chunk: a canary of {canary}, then doubling up to {chunk_size}"
    );
}

#[tokio::test]
async fn a_chunk_refused_for_one_saga_fails_that_saga_alone() {
    the_seventh_of_ten_refused(false).await;
}

/// A chunk written by a release before chunks kept their range of positions (a replica not
/// yet restarted in a rolling upgrade) has none: it still sends the sagas it was made with,
/// and still splits into halves that do.
#[tokio::test]
async fn a_chunk_with_no_range_of_positions_still_sends_its_own_sagas() {
    the_seventh_of_ten_refused(true).await;
}

/// Runboard with chunks of ten and no canary, and the ten oldest failed sagas of onboarding.
async fn ten_sagas_a_chunk() -> (Setup, Vec<String>) {
    let s = setup(Backend::Postgres)
        .configure(|config| {
            config.actions.chunk_size = 10;
            config.actions.canary_entities = 0;
        })
        .await;
    let page = s
        .alice
        .get("/api/v1/services/onboarding/sagas?status=failed&sort=oldest&limit=10")
        .await;
    let ids: Vec<String> = page["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "{page}");
    (s, ids)
}

/// An entity's row removed from an approved action by hand: the chunk that named it is not
/// sent without it (its result would record the others as done and say nothing of it), and
/// the engine says what is wrong and what to do.
#[tokio::test]
async fn a_chunk_missing_a_row_of_its_entities_is_not_sent() {
    let (s, ids) = ten_sagas_a_chunk().await;
    let id = asked_and_approved(
        &s,
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    let removed = runboard_testkit::run_sql(
        &s.app.app.config.store.effective_url(),
        &format!("DELETE FROM action_entity WHERE action_id = '{id}' AND position = 3"),
    )
    .await;
    assert_eq!(removed, 1);

    let error = execution::work_on_next_due(&s.app.app)
        .await
        .expect_err("the engine stops at the chunk")
        .to_string();
    assert!(
        error.contains("should name 10 entities and the store holds 9")
            && error.contains("restore the store's rows from a backup, or cancel the action"),
        "{error}"
    );
    let calls = s.fleet.real_keyed_calls("onboarding", &id).await;
    assert!(calls.is_empty(), "no real call: {}", calls.len());
    let action = s.alice.get(&format!("/api/v1/actions/{id}?limit=1")).await["action"].clone();
    assert_eq!(action["progress"]["succeeded"], 0, "{action}");
    assert_ne!(action["state"], "succeeded", "{action}");
}

/// Ten sagas in one call; the service refuses any real call naming the seventh. No canary:
/// a refused canary pauses the action instead (server/tests/it/pace.rs). With
/// `no_ranges`, the approved action's chunks are stored as an older release wrote them.
async fn the_seventh_of_ten_refused(no_ranges: bool) {
    let (s, ids) = ten_sagas_a_chunk().await;
    let onboarding = s.fleet.service("onboarding").clone();
    let held: Value = reqwest::Client::new()
        .post(&onboarding.graphql_url)
        .json(&json!({
            "query": "mutation($ids: [ID!]!) { setLegalHold(ids: $ids) }",
            "variables": { "ids": [ids[6]] },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["data"]["setLegalHold"], 1, "{held}");

    let id = asked_and_approved(
        &s,
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    if no_ranges {
        let forgotten = runboard_testkit::run_sql(
            &s.app.app.config.store.effective_url(),
            &format!(
                "UPDATE action_chunk SET first_position = NULL, last_position = NULL WHERE action_id = '{id}'"
            ),
        )
        .await;
        assert_eq!(forgotten, 1, "one chunk of ten sagas");
    }
    let ended = run_to_end(&s, &id).await;
    let id = id.as_str();
    assert_eq!(ended["state"], "partially_failed", "{ended}");
    assert_eq!(ended["progress"]["succeeded"], 9);
    assert_eq!(ended["progress"]["failed"], 1);

    let entities = s.alice.get(&format!("/api/v1/actions/{id}")).await["entities"].clone();
    for (i, entity) in entities.as_array().unwrap().iter().enumerate() {
        assert_eq!(entity["entity_id"], ids[i].as_str());
        if i == 6 {
            assert_eq!(entity["state"], "failed", "{entity}");
            assert!(
                entity["detail"].as_str().unwrap().contains("legal hold"),
                "the service's own words: {entity}"
            );
        } else {
            assert_eq!(entity["state"], "succeeded", "{entity}");
        }
    }

    // The action page's filter: the failed saga alone, or the nine others.
    let in_state = |state: &'static str| {
        let alice = &s.alice;
        async move {
            let page = alice
                .get(&format!("/api/v1/actions/{id}?state={state}"))
                .await;
            entity_ids(&page["entities"])
        }
    };
    assert_eq!(in_state("failed").await, [ids[6].clone()]);
    let others: Vec<String> = ids.iter().filter(|i| **i != ids[6]).cloned().collect();
    assert_eq!(in_state("succeeded").await, others);
    assert!(in_state("pending").await.is_empty());

    // The service was asked in halves down to the one saga, each key with its own sagas.
    let calls = s.fleet.real_keyed_calls("onboarding", id).await;
    assert_each_key_names_the_same_entities(&calls);
    let applied = applied_counts(&calls);
    let expected: BTreeMap<String, usize> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, id)| (id.clone(), 1))
        .collect();
    assert_eq!(
        applied, expected,
        "each neighbour applied once, the held one never"
    );
    let refused: Vec<Vec<String>> = calls.iter().filter(|c| !c.applied).map(ids_of).collect();
    assert_eq!(
        refused,
        [
            ids.clone(),
            ids[5..].to_vec(),
            ids[5..7].to_vec(),
            ids[6..7].to_vec()
        ],
        "refused: the whole chunk, then each half that held the saga"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_cut_short_by_its_time_limit_keeps_no_action_and_says_how_far_it_got() {
    // Onboarding's mission control answers every read a second late: its dry run of 50 sagas,
    // 10 a call and one call at a time, cannot finish in the 2 s a preview may take here.
    // The store (PostgreSQL) is written chunk by chunk while the dry run goes on.
    let s = setup(Backend::Postgres)
        .onboarding_behind_proxy()
        .configure(|config| {
            config.actions.chunk_size = 10;
            config.actions.concurrency = 1;
            config.actions.dry_run_time_limit = std::time::Duration::from_secs(2);
        })
        .await;
    runboard_fleet::seed_outage(
        &s.fleet.service("onboarding").database_url,
        "onboarding",
        50,
    )
    .await
    .unwrap();
    // The catalog is read before the slow-down, as a service that became slow would have it.
    let catalog = s.alice.get("/api/v1/services/onboarding/actions").await;
    assert!(catalog.to_string().contains("retrySagas"), "{catalog}");
    s.proxy().slow_down(std::time::Duration::from_secs(1));

    let (status, body) = s
        .alice
        .post(
            "/api/v1/actions",
            json!({
                "service": "onboarding", "mutation": "retrySagas", "arguments": {},
                "selection": { "error_group": "upstream provider outage: connection refused" },
            }),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let covered: u32 = message
        .strip_prefix("the service's dry run covered ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("says how far it got: {body}"));
    assert!(
        covered < 50 && message.contains(" of 50 entities"),
        "{message}"
    );

    s.proxy().slow_down(std::time::Duration::ZERO);
    let actions = s.alice.get("/api/v1/actions?view=all").await;
    assert_eq!(actions["actions"], json!([]), "nothing kept: {actions}");
    let kept = runboard_testkit::sql_strings(
        &s.app.app.config.store.effective_url(),
        "SELECT action_id FROM action_chunk UNION ALL SELECT action_id FROM action_entity",
    )
    .await;
    assert!(kept.is_empty(), "no chunk or entity row left: {kept:?}");
}
