//! A Runboard killed with SIGKILL in the middle of a 2,000-entity action, started again:
//! every entity is applied exactly once (the demo fleet's call log says so), and the
//! action finishes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::start_fleet;
use runboard_testkit::Backend;
use serde_json::{Value, json};

const ENTITIES: usize = 2_000;

struct Runboard {
    child: Child,
    url: String,
}

impl Drop for Runboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `runboard serve` and waits until it says where it serves; its log goes to `log`.
fn start_runboard(config: &std::path::Path, log: &std::path::Path) -> Runboard {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runboard"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUNBOARD_DATABASE_URL")
        .env_remove("RUNBOARD_LISTEN")
        .env("RUNBOARD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("run the runboard binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("runboard stopped before serving")
            .unwrap();
        if let Some(url) = line.strip_prefix("Runboard is serving at ") {
            break url.to_owned();
        }
    };
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Runboard { child, url }
}

/// The demo users' tokens, which each start issues afresh.
fn token(data_dir: &std::path::Path, login: &str) -> String {
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

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

// The fleet serves from this test's runtime: several threads, so that it keeps answering
// while the test waits on the Runboard processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runboard_killed_mid_action_resumes_and_applies_each_entity_once() {
    let fleet = start_fleet(Backend::Sqlite).await;
    let onboarding = fleet.service("onboarding").clone();
    let seeded = runboard_fleet::seed(&onboarding.database_url, "onboarding", 100_000)
        .await
        .unwrap();
    println!("seeded {} sagas in {:?}", seeded.sagas, seeded.elapsed);

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("runboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[http]
listen = "127.0.0.1:0"
[store]
data_dir = "{data}"
[identity]
demo_users = true
[actions]
concurrency = 8
lease = "3s"
[[services]]
name = "onboarding"
team = "growth"
database_url = "{db}"
graphql_url = "{gql}"
"#,
            data = data_dir.display(),
            db = onboarding.database_url,
            gql = onboarding.graphql_url,
        ),
    )
    .unwrap();

    let first = start_runboard(&config, &dir.path().join("first.log"));
    let (alice, bob) = (token(&data_dir, "alice"), token(&data_dir, "bob"));
    let client = reqwest::Client::new();
    let mut ids: Vec<String> = Vec::new();
    let mut after = String::new();
    while ids.len() < ENTITIES {
        let page = call(
            &client,
            reqwest::Method::GET,
            format!(
                "{}/api/v1/services/onboarding/sagas?status=failed&sort=oldest&limit=500{after}",
                first.url
            ),
            &alice,
            None,
        )
        .await;
        ids.extend(
            page["sagas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["saga_id"].as_str().unwrap().to_owned()),
        );
        after = format!(
            "&after={}",
            page["next"].as_str().expect("more failed sagas")
        );
    }
    ids.truncate(ENTITIES);

    let action = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions", first.url),
        &alice,
        Some(json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } })),
    )
    .await;
    let id = action["id"].as_str().unwrap().to_owned();
    call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions/{id}/submit", first.url),
        &alice,
        Some(json!({ "reason": "crash test" })),
    )
    .await;
    call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions/{id}/approve", first.url),
        &bob,
        Some(json!({ "digest": action["digest"] })),
    )
    .await;

    // Kill it once a good part, not all, is done.
    let started = Instant::now();
    let done_at_kill = loop {
        let detail = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/actions/{id}", first.url),
            &alice,
            None,
        )
        .await;
        let done = detail["action"]["progress"]["succeeded"].as_u64().unwrap()
            + detail["action"]["progress"]["failed"].as_u64().unwrap();
        if done >= 300 {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the action did not start: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    first.child.wait().unwrap();
    println!("killed with {done_at_kill} of {ENTITIES} entities recorded");
    assert!(
        done_at_kill < ENTITIES as u64,
        "killed mid-action, not after it"
    );

    let second = start_runboard(&config, &dir.path().join("second.log"));
    let alice = token(&data_dir, "alice");
    let started = Instant::now();
    let detail = loop {
        let detail = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/actions/{id}", second.url),
            &alice,
            None,
        )
        .await;
        if detail["action"]["state"] == "succeeded" {
            break detail;
        }
        if started.elapsed() > Duration::from_secs(180) {
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
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("finished {:?} after the restart", started.elapsed());
    assert_eq!(detail["action"]["progress"]["succeeded"], ENTITIES);

    // The service's own log: every entity applied exactly once; a call is sent again only
    // if it was in flight (sent, not yet recorded) when Runboard died.
    let calls: Vec<_> = fleet
        .fleet
        .call_log("onboarding")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| {
            !c.dry_run
                && c.idempotency_key
                    .as_deref()
                    .is_some_and(|k| k.starts_with(&format!("runboard:{id}:")))
        })
        .collect();
    let mut applied: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut sent: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &calls {
        let key = c.idempotency_key.as_deref().unwrap();
        *sent.entry(key).or_default() += 1;
        if c.applied {
            *applied.entry(key).or_default() += 1;
        }
    }
    assert_eq!(applied.len(), ENTITIES, "every entity was applied");
    assert!(applied.values().all(|n| *n == 1), "none was applied twice");
    let resent = sent.values().filter(|n| **n > 1).count();
    println!("{resent} calls were sent again after the restart (in flight at the kill)");
    assert!(
        resent <= 8,
        "only calls in flight at the kill are sent again, at most the concurrency of 8: {resent}"
    );
    drop(second);
}
