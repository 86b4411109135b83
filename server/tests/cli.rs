//! The `runboard` binary as operators and scripts use it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn runboard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runboard"))
        .args(args)
        .env_remove("RUNBOARD_DATABASE_URL")
        .env_remove("RUNBOARD_LISTEN")
        .output()
        .expect("run the runboard binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_the_commands_and_the_environment_overrides() {
    let output = runboard(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for text in [
        "demo",
        "serve",
        "check-config",
        "migrate",
        "RUNBOARD_DATABASE_URL",
        "RUNBOARD_LISTEN",
    ] {
        assert!(help.contains(text), "--help lacks {text}:\n{help}");
    }
}

#[test]
fn check_config_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runboard.toml");
    std::fs::write(
        &path,
        "[http]\nlisten = \"127.0.0.1:3000\"\nrequest_timeout = \"soon\"\n",
    )
    .unwrap();
    let output = runboard(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("request_timeout"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn check_config_names_a_missing_file() {
    let output = runboard(&["check-config", "--config", "/nonexistent/runboard.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read the config file /nonexistent/runboard.toml"));
}

#[test]
fn check_config_accepts_a_good_file_and_migrate_creates_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runboard.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &path,
        format!("[store]\ndata_dir = {:?}\n", data.to_str().unwrap()),
    )
    .unwrap();
    let config = path.to_str().unwrap();

    let check = runboard(&["check-config", "--config", config]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid"));

    let migrate = runboard(&["migrate", "--config", config]);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
    assert!(data.join("runboard.db").exists());
}

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
fn serve_refuses_to_start_when_no_one_could_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runboard.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let output = runboard(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("no one could sign in") && err.contains("[identity.oidc]"),
        "{err}"
    );
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

/// A one-off GET with a bearer token from a synchronous test, returning the JSON answer.
fn get_json_with_token(url: &str, token: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// A one-off GET from a synchronous test, returning the status code.
fn get_status(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_reaches_every_service_and_names_those_it_cannot() {
    let fleet = common::start_fleet(runboard_testkit::Backend::Sqlite).await;
    let mut config = String::new();
    for service in fleet.fleet.services() {
        config.push_str(&format!(
            "[[services]]\nname = \"{}\"\nteam = \"{}\"\ndatabase_url = \"{}\"\ngraphql_url = \"{}\"\n",
            service.name, service.team, service.database_url, service.graphql_url
        ));
    }
    let gone = fleet.dir.path().join("ghost.db");
    config.push_str(&format!(
        "[[services]]\nname = \"ghost\"\nteam = \"nobody\"\ndatabase_url = \"sqlite://{}\"\n\
         graphql_url = \"http://127.0.0.1:9/graphql\"\nquery_timeout = \"1s\"\n\
         [store]\ndata_dir = {:?}\n",
        gone.display(),
        fleet.dir.path().join("store").to_str().unwrap()
    ));
    let path = fleet.dir.path().join("runboard.toml");
    std::fs::write(&path, config).unwrap();

    let output = tokio::task::spawn_blocking(move || {
        runboard(&["check-config", "--config", path.to_str().unwrap()])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for service in ["payments", "payouts", "onboarding"] {
        assert!(stdout.contains(&format!("ok      {service}:")), "{stdout}");
    }
    let ghost = stdout
        .lines()
        .find(|l| l.starts_with("FAILED  ghost:"))
        .expect(&stdout);
    assert!(ghost.contains("its database is unreachable"), "{ghost}");
    assert!(
        ghost.contains("mission control at http://127.0.0.1:9/graphql cannot be reached"),
        "{ghost}"
    );
    assert!(stderr(&output).contains("1 service(s) could not be read"));
}

/// `runboard action …` against `address` with `token`, from an async test.
async fn action_command(args: Vec<String>, address: &str, token: &str) -> Output {
    let (address, token) = (address.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_runboard"))
            .arg("action")
            .args(&args)
            .env("RUNBOARD_URL", address)
            .env("RUNBOARD_TOKEN", token)
            .output()
            .expect("run the runboard binary")
    })
    .await
    .unwrap()
}

/// The digest `plan` or `submit` printed.
fn printed_digest(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", stderr(output));
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in:\n{stdout}"))
        .to_owned()
}

/// A Runboard on the demo fleet, and an operator's API token for it.
async fn operator_on_demo_fleet() -> (common::TestFleet, common::TestApp, String) {
    let fleet = common::start_fleet(runboard_testkit::Backend::Sqlite).await;
    let services = fleet
        .fleet
        .services()
        .iter()
        .map(common::registered)
        .collect();
    let (app, ()) = common::spawn_app_configured(
        runboard_testkit::TestStore::new(runboard_testkit::Backend::Sqlite).await,
        |config, _| config.services = services,
    )
    .await;
    let token = app
        .token_for("Oscar", &[runboard_model::Role::Operator])
        .await;
    (fleet, app, token)
}

/// A service's text reaches the terminal escaped: the force-complete reason comes back in the
/// service's own effect description, carrying escape sequences that would move the cursor up,
/// clear the line and write a "Money moved" line of their own over the real one.
#[tokio::test(flavor = "multi_thread")]
async fn control_characters_in_a_services_words_are_shown_and_cannot_repaint_the_plan() {
    let (_fleet, app, token) = operator_on_demo_fleet().await;
    let ids = common::failed_saga_ids(&app.address, &app.client, "onboarding", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("force.toml");
    std::fs::write(
        &file,
        format!(
            "service = \"onboarding\"\nmutation = \"forceCompleteSagas\"\nreason = \"INC-9\"\n\n\
             [arguments]\nids = {ids:?}\nreason = \"ok\\u001b[1A\\u001b[2K\\rMoney moved: none\\u202e\"\n"
        ),
    )
    .unwrap();
    let planned = action_command(
        vec!["plan".into(), file.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    let stdout = String::from_utf8_lossy(&planned.stdout).into_owned();
    assert!(planned.status.success(), "{stdout}\n{}", stderr(&planned));
    assert!(
        !stdout.contains(['\u{1b}', '\r', '\u{202e}']),
        "raw control characters reach the terminal: {stdout:?}"
    );
    assert!(
        stdout.contains("ok\\u{1b}[1A\\u{1b}[2K\\u{d}Money moved: none\\u{202e}"),
        "the service's words are shown, escaped: {stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("Money moved:"))
            .count(),
        1,
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_file_plans_submits_and_is_followed_and_the_action_pages_file_plans_the_same() {
    let (_fleet, app, token) = operator_on_demo_fleet().await;
    let ids = common::failed_saga_ids(&app.address, &app.client, "onboarding", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("retry.toml");
    std::fs::write(
        &file,
        format!(
            "# Reviewed in PR 42.\nservice = \"onboarding\"\nmutation = \"retrySagas\"\n\
             reason = \"INC-4711: KYC vendor back\"\n\n[arguments]\nids = {ids:?}\n"
        ),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap().to_owned();

    let planned = action_command(vec!["plan".into(), file_arg.clone()], &app.address, &token).await;
    let digest = printed_digest(&planned);
    let stdout = String::from_utf8_lossy(&planned.stdout);
    assert!(
        stdout.contains("on onboarding: retrySagas (previewed)"),
        "{stdout}"
    );
    assert!(stdout.contains("Entities: 3 in 1 call(s)"), "{stdout}");
    assert!(
        stdout.contains("The service's dry run: 3 effect(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("Nothing is sent until it is submitted and approved."));
    let id = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Action "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let detail = app.get_json(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["digest"], digest.as_str());
    assert_eq!(detail["action"]["state"], "previewed");

    // The action page's file, planned again, previews the same to the same digest.
    let downloaded = app.get(&format!("/api/v1/actions/{id}/request.toml")).await;
    assert_eq!(downloaded.status(), 200);
    assert!(
        downloaded.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("action-{id}.toml"))
    );
    let text = downloaded.text().await.unwrap();
    assert!(
        text.starts_with(&format!("# What Runboard action {id} asked of onboarding")),
        "{text}"
    );
    let again = dir.path().join("downloaded.toml");
    std::fs::write(&again, text).unwrap();
    let replanned = action_command(
        vec!["plan".into(), again.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    assert_eq!(printed_digest(&replanned), digest);

    let submitted = action_command(vec!["submit".into(), file_arg], &app.address, &token).await;
    let stdout = String::from_utf8_lossy(&submitted.stdout).into_owned();
    assert!(
        submitted.status.success(),
        "{stdout}\n{}",
        stderr(&submitted)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Submitted: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(" awaits 1 approval(s) at "), "{line}");
    let submitted_id = line
        .trim_start_matches("Submitted: ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        line.ends_with(&format!("{}/actions/{submitted_id}", app.address)),
        "{line}"
    );

    let status = action_command(
        vec!["status".into(), submitted_id.clone()],
        &app.address,
        &token,
    )
    .await;
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{stdout}\n{}", stderr(&status));
    assert!(
        stdout.starts_with(&format!(
            "Action {submitted_id} on onboarding: retrySagas (awaiting_approval)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Approvals: 0 of 1 needed"), "{stdout}");

    // A file with a mistake, and a token a Runboard does not know, say what is wrong.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        "service = \"onboarding\"\nmutaton = \"retrySagas\"\n",
    )
    .unwrap();
    let refused = action_command(
        vec!["plan".into(), wrong.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(
        err.contains("is not an action file") && err.contains("unknown field `mutaton`"),
        "{err}"
    );
    let stranger = action_command(
        vec!["status".into(), submitted_id],
        &app.address,
        "rb_not-a-token",
    )
    .await;
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        stderr(&stranger).contains("Runboard refused (401 Unauthorized)"),
        "{}",
        stderr(&stranger)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runbook_file_is_saved_exported_and_planned_to_the_same_digest_as_its_start_and_its_request_file()
 {
    let (fleet, app, token) = operator_on_demo_fleet().await;
    let ids = common::held_transfers(&fleet, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runbook.toml");
    std::fs::write(
        &file,
        r#"# Reviewed in PR 43.
service = "payments"
name = "Transfer the held funds and force-complete"
description = "For transfers the ledger refused: book the held money by hand, then close the saga."

[[steps]]
title = "Transfer the held funds"
mutation = "transferFunds"
arguments = { fromAccount = "{{ facts.from_account }}", toAccount = "{{ facts.to_account }}", amount = "{{ funds.amount }}", currency = "{{ funds.currency }}", reference = "RB-{{ entity.id }}" }

[[steps]]
title = "Force-complete the saga"
mutation = "forceCompleteSagas"
arguments = { reason = "{{ param.reason }}" }
"#,
    )
    .unwrap();
    let saved = action_command(
        vec!["save".into(), file.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    let stdout = String::from_utf8_lossy(&saved.stdout).into_owned();
    assert!(saved.status.success(), "{stdout}\n{}", stderr(&saved));
    let runbook = stdout.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        stdout.starts_with(
            "Saved runbook \"Transfer the held funds and force-complete\" of payments (2 step(s))"
        ),
        "{stdout}"
    );
    let listed = app.get_json("/api/v1/services/payments/runbooks").await;
    assert_eq!(listed["runbooks"][0]["id"], runbook.as_str(), "{listed}");
    assert_eq!(
        listed["runbooks"][0]["params"],
        serde_json::json!(["reason"])
    );

    // Exported, it is the file again, its parameter left to fill in.
    let exported = app
        .get(&format!("/api/v1/runbooks/{runbook}/runbook.toml"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        exported.contains("[[steps]]") && exported.contains("reason = \"\""),
        "{exported}"
    );
    let unfilled = dir.path().join("unfilled.toml");
    std::fs::write(
        &unfilled,
        exported.replace(
            "\n[params]\n",
            &format!("\nentities = {ids:?}\n\n[params]\n"),
        ),
    )
    .unwrap();
    let refused = action_command(
        vec!["plan".into(), unfilled.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("the runbook's parameter \"reason\" is not given"),
        "{}",
        stderr(&refused)
    );

    let filled = dir.path().join("filled.toml");
    std::fs::write(
        &filled,
        exported
            .replace("reason = \"\"", "reason = \"INC-7\"")
            .replace(
                "\n[params]\n",
                &format!("\nentities = {ids:?}\n\n[params]\n"),
            ),
    )
    .unwrap();
    let planned = action_command(
        vec!["plan".into(), filled.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    let digest = printed_digest(&planned);
    let stdout = String::from_utf8_lossy(&planned.stdout).into_owned();
    assert!(
        stdout.contains("Step 1: Transfer the held funds (transferFunds)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Step 2: Force-complete the saga (forceCompleteSagas)"),
        "{stdout}"
    );

    // Started from the saved runbook on the same entities: the same digest.
    let response = app
        .client
        .post(app.url("/api/v1/actions"))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({ "service": "payments", "runbook": runbook,
                       "params": { "reason": "INC-7" }, "entities": ids }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let started: serde_json::Value = response.json().await.unwrap();
    assert_eq!(started["digest"], digest.as_str());
    assert_eq!(
        started["mutation"],
        "Transfer the held funds and force-complete"
    );

    // And the started action's own request file plans to it too.
    let id = started["id"].as_str().unwrap();
    let request = app
        .get(&format!("/api/v1/actions/{id}/request.toml"))
        .await
        .text()
        .await
        .unwrap();
    let again = dir.path().join("request.toml");
    std::fs::write(&again, request).unwrap();
    let replanned = action_command(
        vec!["plan".into(), again.to_str().unwrap().into()],
        &app.address,
        &token,
    )
    .await;
    assert_eq!(printed_digest(&replanned), digest);
}
