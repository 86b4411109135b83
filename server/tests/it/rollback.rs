//! A rollback: this release started on a store that a newer release has migrated. The newer
//! release's migrations only add (README, "Upgrades and rollbacks"), so this one serves
//! beside them, and warns, naming each migration it does not know.

use crate::support as common;

use common::start_runboard;
use runboard_testkit::{Backend, TestStore, run_sql, test_on_both_stores};
use serde_json::Value;

/// The migration a newer release brought: a table of its own, as the rule allows.
const NEWER_VERSION: i64 = 29991231000001;
const NEWER_DESCRIPTION: &str = "tenant policy";

async fn a_release_serves_on_a_store_a_newer_release_migrated(backend: Backend) {
    let test_store = TestStore::new(backend).await;
    let url = test_store.config.effective_url();
    // What the newer release left behind: its table, and its row in sqlx's record of
    // migrations (its checksum is never compared: this release does not have the file).
    run_sql(
        &url,
        "CREATE TABLE tenant_policy (namespace TEXT PRIMARY KEY, audiences TEXT NOT NULL)",
    )
    .await;
    let checksum = match backend {
        Backend::Sqlite => "X'00'",
        Backend::Postgres => "'\\x00'::bytea",
    };
    run_sql(
        &url,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({NEWER_VERSION}, '{NEWER_DESCRIPTION}', TRUE, {checksum}, 1)"
        ),
    )
    .await;
    test_store.store.close().await;

    let dir = test_store.dir.path();
    let (store, identity) = match backend {
        Backend::Sqlite => (
            format!("data_dir = \"{}\"", test_store.config.data_dir.display()),
            "[identity]\ndemo_users = true".to_owned(),
        ),
        // The store's URL from a file, as a mounted Secret gives it; the provider is never
        // asked before someone signs in.
        Backend::Postgres => {
            let secret = dir.join("store-url");
            std::fs::write(&secret, format!("{url}\n")).unwrap();
            (
                format!("url_file = \"{}\"", secret.display()),
                "[identity.oidc]\nissuer = \"http://127.0.0.1:9/\"\nclient_id = \"runboard\""
                    .to_owned(),
            )
        }
    };
    let config = dir.join("runboard.toml");
    std::fs::write(
        &config,
        format!("[http]\nlisten = \"127.0.0.1:0\"\n[store]\n{store}\n{identity}\n"),
    )
    .unwrap();
    let log = dir.join("runboard.log");

    let runboard = start_runboard(&config, &log, &[("RUNBOARD_LOG_FORMAT", "json")]);

    let ready = reqwest::get(format!("{}/readyz", runboard.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    // Logged while migrating, before it said where it serves.
    let log = std::fs::read_to_string(&log).unwrap();
    let named: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["level"] == "WARN" && event.get("version").is_some())
        .collect();
    assert_eq!(named.len(), 1, "one migration is unknown to it: {log}");
    let warning = &named[0];
    assert_eq!(warning["version"], NEWER_VERSION, "{warning}");
    assert_eq!(warning["description"], NEWER_DESCRIPTION, "{warning}");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains(&NEWER_VERSION.to_string()) && message.contains(NEWER_DESCRIPTION),
        "read as text too: {message}"
    );
}

test_on_both_stores!(a_release_serves_on_a_store_a_newer_release_migrated);
