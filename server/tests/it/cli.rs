//! The `runboard` binary as operators and scripts use it.

use crate::support as common;

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
        "login",
        "logout",
        "sagas",
        "RUNBOARD_TOKEN",
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

/// A Runboard on the demo fleet, both on `backend`, its config changed by `configure`.
async fn runboard_on_demo_fleet<R>(
    backend: runboard_testkit::Backend,
    configure: impl FnOnce(&mut runboard_core::config::Config) -> R,
) -> (common::TestFleet, common::TestApp, R) {
    let fleet = common::start_fleet(backend).await;
    let services = fleet
        .fleet
        .services()
        .iter()
        .map(common::registered)
        .collect();
    let (app, configured) = common::spawn_app_configured(
        runboard_testkit::TestStore::new(backend).await,
        |config, _| {
            config.services = services;
            configure(config)
        },
    )
    .await;
    (fleet, app, configured)
}

/// A Runboard on the demo fleet, and an operator's API token for it.
async fn operator_on_demo_fleet() -> (common::TestFleet, common::TestApp, String) {
    let (fleet, app, ()) = runboard_on_demo_fleet(runboard_testkit::Backend::Sqlite, |_| ()).await;
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

const CLI_CLIENT: &str = "runboard-cli";

const PROVIDER_PEOPLE: &[runboard_testkit::ProviderPerson<'static>] =
    &[runboard_testkit::ProviderPerson {
        login: "alice",
        name: "Alice Ops",
        groups: &["sre"],
    }];

/// A Runboard on the demo fleet whose OpenID provider signs the command line in with the
/// device flow, its device codes living `code_lifetime_secs`.
async fn runboard_with_device_sign_in(
    backend: runboard_testkit::Backend,
    code_lifetime_secs: u32,
) -> (
    common::TestFleet,
    common::TestApp,
    runboard_testkit::OidcProvider,
) {
    runboard_on_demo_fleet(backend, |config| {
        let provider = runboard_testkit::OidcProvider::start_for_devices(
            PROVIDER_PEOPLE,
            &runboard_testkit::DeviceClient {
                client_id: CLI_CLIENT,
                code_lifetime_secs,
            },
        );
        config.identity.oidc = Some(runboard_core::config::OidcConfig {
            issuer: provider.issuer.clone(),
            client_id: "runboard".into(),
            client_secret: None,
            scopes: vec!["openid".into(), "profile".into(), "groups".into()],
            groups_claim: "groups".into(),
            person_claim: "sub".into(),
            api_audience: Some("urn:runboard:api".into()),
            cli_client_id: Some(CLI_CLIENT.into()),
            display_name: "Test IdP".into(),
        });
        config.identity.roles.operator = vec!["sre".into()];
        provider
    })
    .await
}

/// `runboard ARGS` as a person at a terminal whose config directory is `config_home`, with
/// `env` added (no RUNBOARD_TOKEN or RUNBOARD_URL unless given), from an async test.
async fn client_command(
    config_home: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = client(config_home);
    command.args(args).envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().expect("run the runboard binary"))
        .await
        .unwrap()
}

fn client(config_home: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runboard"));
    command
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("RUNBOARD_TOKEN")
        .env_remove("RUNBOARD_URL");
    command
}

fn credentials_file(config_home: &std::path::Path) -> std::path::PathBuf {
    config_home.join("runboard").join("credentials.toml")
}

/// `runboard login` under way: the child, and the address and code it printed.
struct LoginUnderWay {
    child: std::process::Child,
    /// What it prints after the code, read as it comes.
    rest: std::thread::JoinHandle<Vec<u8>>,
    verification_uri: String,
    user_code: String,
}

async fn start_login(config_home: &std::path::Path, runboard: &str) -> LoginUnderWay {
    let mut command = client(config_home);
    command
        .args(["login", "--url", runboard])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("run the runboard binary");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let said = regex::Regex::new(r"open (\S+) in a browser and enter the code (\S+)").unwrap();
        let mut line = String::new();
        let (verification_uri, user_code) = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("runboard login ended before printing a code");
            }
            if let Some(found) = said.captures(&line) {
                break (found[1].to_owned(), found[2].to_owned());
            }
        };
        let rest = std::thread::spawn(move || {
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
            rest
        });
        LoginUnderWay {
            child,
            rest,
            verification_uri,
            user_code,
        }
    })
    .await
    .unwrap()
}

/// What the person does on the provider's own device page: enter the code, then confirm
/// and sign in as `login`, or abort. Returns the page they end on.
async fn at_the_providers_page(login: &LoginUnderWay, person: &str, confirm: bool) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let xsrf = regex::Regex::new(r#"name="xsrf" value="([^"]+)""#).unwrap();
    let action = regex::Regex::new(r#"action="([^"]+)""#).unwrap();
    let entry = browser.get(&login.verification_uri).send().await.unwrap();
    let entry_url = entry.url().clone();
    let html = entry.text().await.unwrap();
    let form = entry_url
        .join(&action.captures(&html).expect(&html)[1])
        .unwrap();
    let confirmation = browser
        .post(form.clone())
        .form(&[
            ("xsrf", &xsrf.captures(&html).expect(&html)[1]),
            ("user_code", login.user_code.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirmation.contains(CLI_CLIENT), "{confirmation}");
    let token = xsrf.captures(&confirmation).expect(&confirmation)[1].to_owned();
    let mut fields = vec![
        ("xsrf", token.as_str()),
        ("user_code", login.user_code.as_str()),
        ("confirm", "yes"),
    ];
    if !confirm {
        fields.push(("abort", "yes"));
    }
    let answered = browser.post(form).form(&fields).send().await.unwrap();
    if !confirm {
        return answered.text().await.unwrap();
    }
    // The provider's sign-in form: any password for a login it knows.
    let sign_in_url = answered.url().clone();
    let html = answered.text().await.unwrap();
    let sign_in = sign_in_url
        .join(&action.captures(&html).expect(&html)[1])
        .unwrap();
    browser
        .post(sign_in)
        .form(&[("prompt", "login"), ("login", person), ("password", "any")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// How `runboard login` ended, within a generous deadline; its stdout after the code.
async fn finished(login: LoginUnderWay) -> Output {
    let waited = tokio::task::spawn_blocking(move || {
        let mut output = login.child.wait_with_output().unwrap();
        output.stdout = login.rest.join().unwrap();
        output
    });
    tokio::time::timeout(Duration::from_secs(120), waited)
        .await
        .expect("runboard login ends within 2 minutes")
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

runboard_testkit::test_on_both_stores!(
    login_signs_in_at_the_providers_own_page_and_the_reads_answer_with_that_sign_in,
    the_reads_walk_every_page_and_answer_as_the_api_does,
);

async fn login_signs_in_at_the_providers_own_page_and_the_reads_answer_with_that_sign_in(
    backend: runboard_testkit::Backend,
) {
    let (_fleet, app, provider) = runboard_with_device_sign_in(backend, 600).await;
    let home = tempfile::tempdir().unwrap();
    let login = start_login(home.path(), &app.address).await;
    let page = at_the_providers_page(&login, "alice", true).await;
    assert!(page.contains("Sign-in Success"), "{page}");
    let output = finished(login).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("as Alice Ops (operator)"),
        "{}",
        stdout(&output)
    );

    // Kept in the config directory, readable by its owner only.
    let file = credentials_file(home.path());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{file:?}");
    let kept: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let first_token = kept["access_token"].as_str().unwrap().to_owned();

    // The reads answer with that sign-in: the same sagas as the API lists.
    let sagas = client_command(home.path(), &["sagas", "payments"], &[]).await;
    assert!(sagas.status.success(), "{}", stderr(&sagas));
    let listed = stdout(&sagas);
    let mut lines = listed.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{listed}");
    let expected = walked_saga_ids(&app, "payments", "").await;
    let shown: Vec<&str> = lines
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(shown, expected);

    // An expired access token is refreshed with the refresh token, and the new one kept.
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let text = std::fs::read_to_string(&file).unwrap();
    let expired = regex::Regex::new(r#"(?m)^expires_at = .*$"#)
        .unwrap()
        .replace(&text, format!("expires_at = {past:?}"));
    std::fs::write(&file, expired.as_ref()).unwrap();
    let funds = client_command(home.path(), &["funds"], &[]).await;
    assert!(funds.status.success(), "{}", stderr(&funds));
    assert!(stdout(&funds).starts_with("SERVICE "), "{}", stdout(&funds));
    let kept: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(kept["access_token"].as_str().unwrap(), first_token);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let refresh_token = kept["refresh_token"].as_str().unwrap().to_owned();

    // `runboard action` signs in the same way: Runboard answers it, here that there is no
    // such action.
    let status = client_command(home.path(), &["action", "status", "no-such-action"], &[]).await;
    assert!(
        stderr(&status).contains("Runboard refused (404 Not Found)"),
        "{}",
        stderr(&status)
    );

    // RUNBOARD_TOKEN wins over the stored sign-in.
    let with_token = client_command(
        home.path(),
        &["alerts"],
        &[
            ("RUNBOARD_TOKEN", "rbt_not-a-token"),
            ("RUNBOARD_URL", &app.address),
        ],
    )
    .await;
    assert!(
        stderr(&with_token).contains("Runboard refused (401 Unauthorized)"),
        "{}",
        stderr(&with_token)
    );

    // Signed out: the file is gone, the provider no longer renews it, and the reads say
    // what to do.
    let logout = client_command(home.path(), &["logout"], &[]).await;
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(!file.exists());
    let renewed = reqwest::Client::new()
        .post(format!("{}/token", provider.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", CLI_CLIENT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        renewed.status(),
        400,
        "the revoked refresh token still works"
    );
    let signed_out = client_command(home.path(), &["sagas", "payments"], &[]).await;
    assert_eq!(signed_out.status.code(), Some(1));
    assert!(
        stderr(&signed_out).contains("not signed in: run `runboard login")
            && stderr(&signed_out).contains("RUNBOARD_TOKEN"),
        "{}",
        stderr(&signed_out)
    );
}

/// The IDs of a service's sagas matching `filters` (`&status=failed`), newest first, as the
/// API lists them page after page (pages of 150, unlike the command line's).
async fn walked_saga_ids(app: &common::TestApp, service: &str, filters: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .get_json(&format!(
                "/api/v1/services/{service}/sagas?limit=150{filters}{after}"
            ))
            .await;
        ids.extend(
            page["sagas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["saga_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = format!("&after={}", runboard_model::url_encode(next)),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_code_denied_at_the_provider_says_so_and_stores_nothing() {
    let (_fleet, app, _provider) =
        runboard_with_device_sign_in(runboard_testkit::Backend::Sqlite, 600).await;
    let home = tempfile::tempdir().unwrap();
    let login = start_login(home.path(), &app.address).await;
    let page = at_the_providers_page(&login, "alice", false).await;
    assert!(page.contains("interrupted"), "{page}");
    let output = finished(login).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("the sign-in was denied at the identity provider; nothing was stored"),
        "{err}"
    );
    assert!(!credentials_file(home.path()).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_the_provider_signs_in_but_runboard_gives_no_role_is_told_so_and_nothing_is_stored()
{
    let (_fleet, app, provider) =
        runboard_with_device_sign_in(runboard_testkit::Backend::Sqlite, 600).await;
    provider.set_groups("alice", &["marketing"]).await;
    let home = tempfile::tempdir().unwrap();
    let login = start_login(home.path(), &app.address).await;
    let page = at_the_providers_page(&login, "alice", true).await;
    assert!(page.contains("Sign-in Success"), "{page}");
    let output = finished(login).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("signed in at the identity provider, but Runboard refused (403 Forbidden): Alice Ops holds none of the groups")
            && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!credentials_file(home.path()).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_code_that_expires_before_the_sign_in_says_so_and_stores_nothing() {
    // The provider's codes live one second; the command line first asks again after five.
    let (_fleet, app, _provider) =
        runboard_with_device_sign_in(runboard_testkit::Backend::Sqlite, 1).await;
    let home = tempfile::tempdir().unwrap();
    let login = start_login(home.path(), &app.address).await;
    let code = login.user_code.clone();
    let output = finished(login).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "the code {code} expired before the sign-in was finished"
        )) && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!credentials_file(home.path()).exists());
}

async fn the_reads_walk_every_page_and_answer_as_the_api_does(backend: runboard_testkit::Backend) {
    let (fleet, app, ()) = runboard_on_demo_fleet(backend, |_| ()).await;
    // More sagas than one page of the command line's holds, and an error that would clear
    // the terminal's line.
    runboard_fleet::seed(&fleet.service("payments").database_url, "payments", 600)
        .await
        .unwrap();
    fleet
        .fleet
        .inject_error("payments", "ledger down\u{1b}[2K\rall fine", 3, None)
        .await
        .unwrap();
    let token = app.token_for("Vera", &[runboard_model::Role::Viewer]).await;
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("RUNBOARD_TOKEN", token.as_str()),
        ("RUNBOARD_URL", app.address.as_str()),
    ];
    let read = |args: &'static [&'static str]| client_command(home.path(), args, &env);

    let json = read(&["sagas", "payments", "-o", "json"]).await;
    assert!(json.status.success(), "{}", stderr(&json));
    let all: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let ids: Vec<&str> = all["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    let expected = walked_saga_ids(&app, "payments", "").await;
    assert!(expected.len() > 1000, "{}", expected.len());
    assert_eq!(ids, expected);

    let failed = read(&["sagas", "payments", "--status", "failed"]).await;
    let table = stdout(&failed);
    assert!(failed.status.success(), "{}", stderr(&failed));
    assert!(!table.contains(['\u{1b}', '\r']), "{table:?}");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(
        rows.iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect::<Vec<_>>(),
        walked_saga_ids(&app, "payments", "&status=failed").await
    );
    assert!(rows.iter().all(|r| r.contains(" failed ")), "{table}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.ends_with("ledger down\\u{1b}[2K\\u{d}all fine"))
            .count(),
        3,
        "{table}"
    );
    // Aligned: every row's status column starts where the header's does.
    let header = table.lines().next().unwrap();
    let at = header.find("STATUS").unwrap();
    assert!(
        rows.iter().all(|r| r[at..].starts_with("failed")),
        "{table}"
    );

    for (args, path) in [
        (
            &["batches", "payouts", "-o", "json"][..],
            "/api/v1/services/payouts/batches",
        ),
        (&["funds", "-o", "json"][..], "/api/v1/funds"),
        (&["alerts", "-o", "json"][..], "/api/v1/alerts"),
    ] {
        let output = read(args).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed, app.get_json(path).await, "{args:?}");
    }
    let batches = read(&["batches", "payouts"]).await;
    let table = stdout(&batches);
    assert!(table.starts_with("ID "), "{table}");
    let api = app.get_json("/api/v1/services/payouts/batches").await;
    assert_eq!(
        table.lines().count(),
        api["batches"].as_array().unwrap().len() + 1,
        "{table}"
    );
    let funds = stdout(&read(&["funds"]).await);
    assert!(funds.starts_with("SERVICE "), "{funds}");
    assert!(stdout(&read(&["alerts"]).await).starts_with("ID "));

    let unknown = read(&["sagas", "payrolls"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("Runboard refused (404 Not Found): no service is registered as")
            && stderr(&unknown).contains("payrolls"),
        "{}",
        stderr(&unknown)
    );
    let unreachable = client_command(
        home.path(),
        &["funds"],
        &[
            ("RUNBOARD_TOKEN", token.as_str()),
            ("RUNBOARD_URL", "http://127.0.0.1:9"),
        ],
    )
    .await;
    assert!(
        stderr(&unreachable).contains("cannot reach Runboard at http://127.0.0.1:9/api/v1/funds"),
        "{}",
        stderr(&unreachable)
    );
}
