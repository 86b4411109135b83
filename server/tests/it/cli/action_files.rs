//! Action and runbook files: planned, submitted and followed from the command line, each
//! plan the same digest as the page's, a service's words unable to repaint the plan.

use super::*;

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
