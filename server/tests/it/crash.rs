//! A Runboard killed with SIGKILL in the middle of an action on a 2,000-saga error group,
//! with chunks in flight (applied by the service, their answers still on the wire), started
//! again: every saga is applied exactly once (the demo fleet's call log says so), each key
//! names the same sagas every time it is sent, and the action finishes.

use crate::support as common;

use std::time::{Duration, Instant};

use common::{call, slowed, start_fleet, start_runboard, submit_and_approve, token_in_store};
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const OUTAGE: u64 = 2_000;
/// Sagas per call, so that the action has twenty-odd chunks.
const CHUNK: u64 = 100;
const CONCURRENCY: usize = 4;
/// How long each answer of a service takes on the wire: a call in flight at a kill has been
/// applied by the service, and its answer never reaches the Runboard that sent it.
const SLOWED: Duration = Duration::from_millis(300);

/// Runboard's own store for these runs, and how its people get their tokens: on the
/// embedded SQLite store, the demo users' file, which each start issues afresh; on
/// PostgreSQL (where demo users are refused) a token each, straight into the store, beside a
/// provider that is never asked.
enum OwnStore {
    Sqlite,
    Postgres(TestStore),
}

impl OwnStore {
    async fn on(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite,
            Backend::Postgres => Self::Postgres(TestStore::new(backend).await),
        }
    }

    /// The `[store]` and `[identity]` sections of the config.
    fn sections(&self, data_dir: &std::path::Path) -> String {
        let data_dir = format!("data_dir = \"{}\"\n", data_dir.display());
        match self {
            Self::Sqlite => format!("[store]\n{data_dir}[identity]\ndemo_users = true\n"),
            Self::Postgres(store) => format!(
                "[store]\nurl = \"{}\"\n{data_dir}[identity.oidc]\nissuer = \"http://127.0.0.1:9/\"\n\
                 client_id = \"runboard\"\nclient_secret = \"not-used-by-this-test\"\n",
                store
                    .config
                    .url
                    .as_ref()
                    .expect("a PostgreSQL store has a URL")
                    .expose_secret()
            ),
        }
    }

    /// Alice's (an operator's) and Bob's (an approver's) tokens for the Runboard started last.
    async fn alice_and_bob(&self, data_dir: &std::path::Path) -> (String, String) {
        match self {
            Self::Sqlite => (demo_token(data_dir, "alice"), demo_token(data_dir, "bob")),
            Self::Postgres(store) => (
                token_in_store(&store.store, "alice", Role::Operator).await,
                token_in_store(&store.store, "bob", Role::Approver).await,
            ),
        }
    }
}

/// A demo user's token, as `DATA_DIR/demo-users.json` lists it.
fn demo_token(data_dir: &std::path::Path, login: &str) -> String {
    let users: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir.join("demo-users.json")).unwrap())
            .unwrap();
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == login)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Writes a Runboard config with its own store on `store`, a short lease, `actions` settings
/// besides those and the `[[services]]` of `services`; its path and data directory.
fn write_config(
    dir: &std::path::Path,
    store: &OwnStore,
    actions: &str,
    services: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let data_dir = dir.join("data");
    let config = dir.join("runboard.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n{}[actions]\nconcurrency = {CONCURRENCY}\nlease = \"3s\"\n{actions}\n{services}",
            store.sections(&data_dir)
        ),
    )
    .unwrap();
    (config, data_dir)
}

/// Reads action `id` from the Runboard at `url` every 50 ms until `done` says so, or
/// `limit` passes; the last answer, and whether `done` said so.
async fn follow(
    client: &reqwest::Client,
    (url, token): (&str, &str),
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, bool) {
    let started = Instant::now();
    loop {
        let detail = call(
            client,
            reqwest::Method::GET,
            format!("{url}/api/v1/actions/{id}"),
            token,
            None,
        )
        .await;
        if done(&detail) {
            return (detail, true);
        }
        if started.elapsed() > limit {
            return (detail, false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// The fleet serves from this test's runtime: several threads, so that it keeps answering
// while the test waits on the Runboard processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runboard_killed_mid_action_resumes_and_applies_each_entity_once_on_sqlite() {
    killed_mid_action(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runboard_killed_mid_action_resumes_and_applies_each_entity_once_on_postgres() {
    killed_mid_action(Backend::Postgres).await;
}

async fn killed_mid_action(store: Backend) {
    let store = OwnStore::on(store).await;
    let fleet = start_fleet(Backend::Sqlite).await;
    let onboarding = fleet.service("onboarding").clone();
    let seeded = runboard_fleet::seed_outage(&onboarding.database_url, "onboarding", OUTAGE)
        .await
        .unwrap();
    println!(
        "seeded {} failed sagas in {:?}",
        seeded.sagas, seeded.elapsed
    );
    let (_proxy, behind_proxy) = slowed(&onboarding.graphql_url, SLOWED).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, data_dir) = write_config(
        dir.path(),
        &store,
        &format!("chunk_size = {CHUNK}"),
        &format!(
            "[[services]]\nname = \"onboarding\"\nteam = \"growth\"\ndatabase_url = \"{}\"\ngraphql_url = \"{behind_proxy}\"\n",
            onboarding.database_url
        ),
    );

    let first = start_runboard(&config, &dir.path().join("first.log"), &[]);
    let (alice, bob) = store.alice_and_bob(&data_dir).await;
    let client = reqwest::Client::new();
    let groups = call(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/services/onboarding/errors", first.url),
        &alice,
        None,
    )
    .await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|g| g["count"].as_u64().unwrap())
        .unwrap()
        .clone();
    let entities = group["count"].as_u64().unwrap();
    assert!(entities >= OUTAGE, "{group}");

    let action = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions", first.url),
        &alice,
        Some(json!({
            "service": "onboarding", "mutation": "retrySagas", "arguments": {},
            "selection": { "error_group": group["error_message"] },
        })),
    )
    .await;
    let id = action["id"].as_str().unwrap().to_owned();
    submit_and_approve(
        &client,
        &action,
        "crash test",
        (&first.url, &alice),
        (&first.url, &bob),
    )
    .await;

    // Kill it once a good part, not all, is done.
    let done = |detail: &Value| {
        detail["action"]["progress"]["succeeded"].as_u64().unwrap()
            + detail["action"]["progress"]["failed"].as_u64().unwrap()
    };
    let (detail, going) = follow(
        &client,
        (&first.url, &alice),
        &id,
        Duration::from_secs(120),
        |detail| done(detail) >= 3 * CHUNK,
    )
    .await;
    assert!(going, "the action did not start: {detail}");
    let done_at_kill = done(&detail);
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    first.child.wait().unwrap();
    println!("killed with {done_at_kill} of {entities} sagas recorded");
    assert!(done_at_kill < entities, "killed mid-action, not after it");

    let second = start_runboard(&config, &dir.path().join("second.log"), &[]);
    let (alice, _) = store.alice_and_bob(&data_dir).await;
    let started = Instant::now();
    let (detail, finished) = follow(
        &client,
        (&second.url, &alice),
        &id,
        Duration::from_secs(180),
        |detail| detail["action"]["state"] == "succeeded",
    )
    .await;
    if !finished {
        let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .take(20)
            .collect();
        let failures: Vec<&Value> = detail["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "failed")
            .take(5)
            .collect();
        panic!(
            "the restarted Runboard did not finish the action: {} (state {}, {}); failures: {failures:?}; its warnings:\n{}",
            detail["action"]["progress"],
            detail["action"]["state"],
            detail["action"]["state_detail"],
            warnings.join("\n")
        );
    }
    println!("finished {:?} after the restart", started.elapsed());
    assert_eq!(detail["action"]["progress"]["succeeded"], entities);

    // The service's own log: every saga applied exactly once; a chunk is sent again only
    // if it was in flight (sent, not yet recorded) when Runboard died, with the same key
    // and the same sagas.
    let calls = fleet.real_keyed_calls("onboarding", &id).await;
    let mut applied: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut sent: std::collections::BTreeMap<&str, (usize, &Value)> = Default::default();
    for c in &calls {
        let key = c.idempotency_key.as_deref().unwrap();
        let (times, named) = sent.entry(key).or_insert((0, &c.variables["ids"]));
        *times += 1;
        assert_eq!(
            **named, c.variables["ids"],
            "{key} named other sagas when sent again"
        );
        if c.applied {
            for saga in c.variables["ids"].as_array().unwrap() {
                *applied.entry(saga.as_str().unwrap()).or_default() += 1;
            }
        }
    }
    assert_eq!(applied.len() as u64, entities, "every saga was applied");
    assert!(applied.values().all(|n| *n == 1), "none was applied twice");
    let resent = sent.values().filter(|(n, _)| *n > 1).count();
    println!("{resent} chunks were sent again after the restart (in flight at the kill)");
    assert!(
        (1..=CONCURRENCY).contains(&resent),
        "the chunks in flight at the kill, and only they, are sent again: {resent}"
    );
    drop(second);
}

/// Held transfers the runbook below fixes: enough for ten rounds of calls per step.
const HELD: u32 = 40;

// A runbook's entity goes through its steps in order; a kill between two steps must not
// make the first run again, nor let the second run before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runboard_killed_in_a_runbooks_second_step_resumes_there_and_never_repeats_the_first_on_sqlite()
 {
    killed_between_steps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runboard_killed_in_a_runbooks_second_step_resumes_there_and_never_repeats_the_first_on_postgres()
 {
    killed_between_steps(Backend::Postgres).await;
}

async fn killed_between_steps(store: Backend) {
    let store = OwnStore::on(store).await;
    let fleet = start_fleet(Backend::Sqlite).await;
    let payments = fleet.service("payments").clone();
    let ids = common::held_transfers(&fleet, HELD).await;
    let (_proxy, behind_proxy) = slowed(&payments.graphql_url, SLOWED).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, data_dir) = write_config(
        dir.path(),
        &store,
        "",
        &format!(
            "[[services]]\nname = \"payments\"\nteam = \"payments\"\ndatabase_url = \"{}\"\ngraphql_url = \"{behind_proxy}\"\n\
             [services.queries]\nwithheld_funds = '''{}'''\nentity_facts = '''{}'''\n",
            payments.database_url,
            payments.withheld_funds_query.as_deref().unwrap(),
            payments.entity_facts_query.as_deref().unwrap(),
        ),
    );

    let first = start_runboard(&config, &dir.path().join("first.log"), &[]);
    let (alice, bob) = store.alice_and_bob(&data_dir).await;
    let client = reqwest::Client::new();
    let action = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions", first.url),
        &alice,
        Some(json!({
            "service": "payments",
            "entities": ids,
            "params": { "reason": "INC-7" },
            "steps": runboard_server::demo::held_transfer_runbook()["steps"],
        })),
    )
    .await;
    let id = action["id"].as_str().unwrap().to_owned();
    submit_and_approve(
        &client,
        &action,
        "crash test",
        (&first.url, &alice),
        (&first.url, &bob),
    )
    .await;

    // Kill it in the second step, once some sagas are complete and others not yet.
    let (detail, in_second_step) = follow(
        &client,
        (&first.url, &alice),
        &id,
        Duration::from_secs(120),
        |detail| {
            detail["action"]["current_step"] == 1
                && detail["action"]["progress"]["succeeded"].as_u64().unwrap() >= 8
        },
    )
    .await;
    assert!(
        in_second_step,
        "the runbook did not reach its second step: {detail}"
    );
    let complete = detail["action"]["progress"]["succeeded"].as_u64().unwrap();
    assert!(complete < u64::from(HELD), "killed too late: {detail}");
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let killed_at = chrono::Utc::now();

    let second = start_runboard(&config, &dir.path().join("second.log"), &[]);
    let (alice, _) = store.alice_and_bob(&data_dir).await;
    let (detail, finished) = follow(
        &client,
        (&second.url, &alice),
        &id,
        Duration::from_secs(120),
        |detail| detail["action"]["state"] == "succeeded",
    )
    .await;
    assert!(
        finished,
        "the restarted Runboard did not finish the runbook: {detail}"
    );
    assert_eq!(detail["action"]["progress"]["succeeded"], HELD);

    // The service's own log: each transfer sent once, before the kill; each completion
    // applied once, after its saga's transfer, any resend with the same key and saga.
    let calls = common::real_calls_of(&fleet, "payments", &id).await;
    for saga in &ids {
        let (transfers, completions) = common::runbook_steps_of(&calls, saga);
        assert_eq!(transfers.len(), 1, "{saga}'s transfer was sent once");
        let transfer = &calls[transfers[0]];
        assert!(
            transfer.applied && transfer.received_at < killed_at,
            "{transfer:?}"
        );
        let applied: Vec<&usize> = completions.iter().filter(|&&i| calls[i].applied).collect();
        assert_eq!(applied.len(), 1, "{saga} was completed once");
        assert!(
            transfers[0] < completions[0],
            "{saga}: the transfer came first"
        );
        let keys: std::collections::BTreeSet<_> = completions
            .iter()
            .map(|&i| calls[i].idempotency_key.clone())
            .collect();
        assert_eq!(keys.len(), 1, "{saga}'s completion kept its key: {keys:?}");
    }
    drop(second);
}
