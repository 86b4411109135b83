//! The commands that read a config before anything runs: help, check-config (keys, files,
//! services it cannot reach), migrate, and serve refusing to start when no one could sign
//! in.

use super::*;

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
