//! `runboard demo` and `runboard serve` as processes: loopback only, the fleet named,
//! SIGTERM stopping cleanly, metrics on a listener of their own.

use super::*;

#[test]
fn the_demo_refuses_to_listen_beyond_loopback_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = runboard(&[
        "demo",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
}

#[test]
fn the_demo_names_its_fleet_and_sigterm_stops_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runboard"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The demo names its fleet's services first, then where Runboard serves.
    let mut printed = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("runboard demo ended early").unwrap();
        if let Some(url) = line.strip_prefix("Runboard is serving at ") {
            break url.to_owned();
        }
        printed.push(line);
    };
    for service in ["payments", "payouts", "onboarding"] {
        assert!(
            printed
                .iter()
                .any(|l| l.starts_with(&format!("demo service {service} "))),
            "{printed:?}"
        );
    }
    assert_eq!(get_status(&format!("{url}/healthz")), 200);

    // Each demo user's token is printed and written to DATA_DIR/demo-users.json, and works.
    let users: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-users.json")).unwrap())
            .unwrap();
    let users = users.as_array().unwrap();
    let logins: Vec<_> = users.iter().map(|u| u["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["alice", "bob", "vera", "ada"]);
    for user in users {
        let token = user["token"].as_str().unwrap();
        assert!(
            printed.iter().any(|l| l.contains(token)),
            "the token of {} is printed: {printed:?}",
            user["login"]
        );
    }
    let operators = users
        .iter()
        .filter(|u| u["roles"] == serde_json::json!(["operator", "approver"]))
        .count();
    assert!(operators >= 2, "two operators who also approve: {users:?}");
    let bob = &users[1];
    let me = get_json_with_token(&format!("{url}/api/v1/me"), bob["token"].as_str().unwrap());
    assert_eq!(me["name"], "Bob Operator");
    assert_eq!(me["roles"], serde_json::json!(["operator", "approver"]));
    assert_eq!(
        get_status(&format!("{url}/api/v1/me")),
        401,
        "no token, no answer"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "runboard did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn demo_users_beyond_loopback_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runboard.toml");
    std::fs::write(
        &config,
        "[http]\nlisten = \"0.0.0.0:3000\"\n[identity]\ndemo_users = true\n",
    )
    .unwrap();
    let output = runboard(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("identity.demo_users") && err.contains("loopback"),
        "{err}"
    );
}

// Whatever reaches the pages (an Ingress) must not reach the metrics: with
// `http.metrics_listen`, /metrics is served there and nowhere else.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_on_a_listener_of_their_own_are_not_on_the_pages_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runboard.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
             [store]\ndata_dir = \"{}\"\n[identity]\ndemo_users = true\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let runboard = common::start_runboard(&config, &dir.path().join("runboard.log"), &[]);
    let metrics_url = runboard
        .metrics_url
        .clone()
        .expect("runboard says where its metrics are");
    let status = |url: String| async move { reqwest::get(url).await.unwrap().status().as_u16() };

    assert_eq!(status(format!("{}/healthz", runboard.url)).await, 200);
    // Not served there, whatever answers instead.
    let on_pages = reqwest::get(format!("{}/metrics", runboard.url))
        .await
        .unwrap();
    assert_ne!(on_pages.status(), 200);
    let on_pages = on_pages.text().await.unwrap();
    assert!(
        !on_pages.contains("runboard_http_requests_total"),
        "/metrics is not on the pages' listener: {on_pages}"
    );
    let scrape = reqwest::get(&metrics_url).await.unwrap();
    assert_eq!(scrape.status(), 200);
    let metrics = scrape.text().await.unwrap();
    let counted = r#"runboard_http_requests_total{route="/healthz",method="GET",status="200"} 1"#;
    assert!(
        metrics.contains(counted),
        "the pages' listener's requests are counted there: {counted} in\n{metrics}"
    );
    let beside_metrics = metrics_url.replace("/metrics", "/api/v1/services");
    assert_eq!(
        status(beside_metrics).await,
        404,
        "the metrics' listener serves nothing else"
    );
}
