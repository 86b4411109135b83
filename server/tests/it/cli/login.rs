//! `runboard login` through the provider's own page (the device authorization grant), and
//! the reads that answer with that sign-in as the API does.

use super::*;

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
