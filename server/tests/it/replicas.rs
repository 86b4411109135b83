//! Two replicas as the manifests run them: two `runboard serve` processes with
//! `deploy/base/runboard.toml` (discovery on, against a loopback API server; the demo
//! fleet's services added as [[services]] entries; the poll interval shortened to 3 s so
//! that the test sees several), one PostgreSQL store. Both serve; each service is polled
//! once per interval; an action asked on one and approved on the other runs once.

use crate::support as common;

use std::time::Duration;

use common::{
    applied_for, call, failed_saga_ids, start_fleet, start_runboard, submit_and_approve,
    token_in_store,
};
use runboard_model::Role;
use runboard_testkit::{Backend, FakeKubernetes, TestStore};
use secrecy::ExposeSecret;
use serde_json::json;

const INTERVAL_SECONDS: u64 = 3;

// The fleet serves from this test's runtime: several threads, so that it keeps answering
// while the test waits on the Runboard processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_from_the_manifests_both_serve_poll_each_service_once_per_interval_and_run_an_action_once()
 {
    let fleet = start_fleet(Backend::Postgres).await;
    let store = TestStore::new(Backend::Postgres).await;
    let store_url = store
        .config
        .url
        .clone()
        .expect("a PostgreSQL store has a URL");
    let cluster = FakeKubernetes::start().await;
    let dir = tempfile::tempdir().unwrap();

    let manifests = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/runboard.toml"),
    )
    .unwrap();
    assert!(manifests.contains("discover = true"), "{manifests}");
    // Loopback instead of the pod's 0.0.0.0:3000 and 0.0.0.0:9090 (metrics), as each
    // replica has its own ports here.
    let mut config = manifests
        .replace("listen = \"0.0.0.0:3000\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "metrics_listen = \"0.0.0.0:9090\"",
            "metrics_listen = \"127.0.0.1:0\"",
        );
    config.push_str(&format!("\n[poller]\ninterval = \"{INTERVAL_SECONDS}s\"\n"));
    for service in fleet.fleet.services() {
        config.push_str(&format!(
            "\n[[services]]\nname = \"{}\"\nteam = \"{}\"\ndatabase_url = \"{}\"\ngraphql_url = \"{}\"\n",
            service.name, service.team, service.database_url, service.graphql_url
        ));
    }
    let config_path = dir.path().join("runboard.toml");
    std::fs::write(&config_path, config).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
            cluster.url()
        ),
    )
    .unwrap();
    let env = [
        ("RUNBOARD_DATABASE_URL", store_url.expose_secret()),
        ("RUNBOARD_OIDC_CLIENT_SECRET", "not-used-by-this-test"),
        ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ("RUNBOARD_SITE_ROOT", dir.path().to_str().unwrap()),
    ];
    let first = start_runboard(&config_path, &dir.path().join("first.log"), &env);
    let second = start_runboard(&config_path, &dir.path().join("second.log"), &env);

    // Tokens go straight into the shared store: people sign in with the provider otherwise.
    let (alice, bob) = (
        token_in_store(&store.store, "alice", Role::Operator).await,
        token_in_store(&store.store, "bob", Role::Approver).await,
    );
    let client = reqwest::Client::new();
    for replica in [&first, &second] {
        let ready = client
            .get(format!("{}/readyz", replica.url))
            .send()
            .await
            .unwrap();
        assert!(
            ready.status().is_success(),
            "{}: {}",
            replica.url,
            ready.status()
        );
        let list = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/services", replica.url),
            &alice,
            None,
        )
        .await;
        assert_eq!(list["services"].as_array().unwrap().len(), 3, "{list:#}");
    }

    // Each service is polled once per interval, whichever replica claims it.
    let window = Duration::from_secs(4 * INTERVAL_SECONDS);
    let since = chrono::Utc::now();
    tokio::time::sleep(window).await;
    let until = chrono::Utc::now();
    for service in fleet.fleet.services() {
        let snapshots = store
            .store
            .trend(&service.name.parse().unwrap(), since)
            .await
            .unwrap()
            .into_iter()
            .filter(|point| point.at <= until)
            .count();
        let slots = window.as_secs() / INTERVAL_SECONDS + 1;
        assert!(
            (1..=slots as usize).contains(&snapshots),
            "{}: {snapshots} snapshots in {window:?}, at most one per {INTERVAL_SECONDS} s interval",
            service.name
        );
    }

    // Asked and submitted on one replica, approved on the other: it runs once.
    let ids = failed_saga_ids(&first.url, &common::bearer_client(&alice), "onboarding", 5).await;
    let action = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/actions", first.url),
        &alice,
        Some(json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } })),
    )
    .await;
    let id = action["id"].as_str().unwrap().to_owned();
    submit_and_approve(
        &client,
        &action,
        "INC-12: the KYC provider was down",
        (&first.url, &alice),
        (&second.url, &bob),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let detail = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/actions/{id}", second.url),
            &alice,
            None,
        )
        .await;
        if detail["action"]["state"] == json!("succeeded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the action did not finish in 60 s: {detail:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut applied = applied_for(&fleet, "onboarding", &id).await;
    applied.sort();
    let mut asked = ids.clone();
    asked.sort();
    assert_eq!(applied, asked, "each saga applied once, by one replica");
}
