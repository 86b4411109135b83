use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("runboard.toml"), &Overrides::default())
}

#[test]
fn a_kube_context_on_the_command_line_discovers_and_reaches_by_port_forward() {
    let file = "[kubernetes]\nnamespaces = [\"payments\"]\n";
    let config = parse(file).unwrap();
    assert!(!config.kubernetes.discover);
    assert_eq!(config.kubernetes.reach, Reach::InCluster);
    let overrides = Overrides {
        kube_context: Some("prod-eu".into()),
        ..Overrides::default()
    };
    let laptop = Config::parse(file, Path::new("runboard.toml"), &overrides).unwrap();
    assert!(laptop.kubernetes.discover);
    assert_eq!(laptop.kubernetes.reach, Reach::PortForward);
    assert_eq!(laptop.kubernetes.context.as_deref(), Some("prod-eu"));
    assert_eq!(laptop.kubernetes.namespaces, ["payments"]);
    let wrong = parse("[kubernetes]\nreach = \"tunnel\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        wrong.contains("in-cluster") && wrong.contains("port-forward"),
        "{wrong}"
    );
}

const TWO_SERVICES: &str = r#"
    [store]
    url = "postgres://runboard@db/runboard"

    [[services]]
    name = "payments"
    team = "payments"
    database_url = "postgres://ro@payments-db/payments"
    graphql_url = "http://payments:8080/graphql"
    stuck_after = "10m"

    [[services]]
    name = "ledger"
    team = "core"
    database_url = "postgres://ro@ledger-db/ledger"
    graphql_url = "http://ledger:8080/graphql"
"#;

#[test]
fn parses_a_full_file_with_defaults_filled_in() {
    let config = parse(TWO_SERVICES).unwrap();
    assert_eq!(config.services.len(), 2);
    assert_eq!(
        config.stuck_after(&config.services[0]),
        Duration::from_secs(600)
    );
    assert_eq!(
        config.stuck_after(&config.services[1]),
        Duration::from_secs(1800)
    );
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:3000");
}

/// Loads a config file whose secrets are read from files and the environment as in its
/// deployment, with each `X_file` and `X_env` pointed at a file in `dir` holding a value
/// of the right shape: the files and variables are the cluster's, not this machine's.
fn load_with_secrets_in(path: &Path, dir: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    let sources = regex::Regex::new(r#"(?m)^(\w+)_(?:file|env)(\s*=\s*)"[^"]*""#).unwrap();
    let text = sources.replace_all(&text, |found: &regex::Captures| {
        let field = &found[1];
        let value = match field {
            "url" | "database_url" => "postgres://runboard:s3cret@db/runboard",
            "webhook_url" => "https://hooks.example.com/services/T0/B0/s3cret",
            _ => "s3cret",
        };
        let file = dir.join(field);
        std::fs::write(&file, value).unwrap();
        format!("{field}_file{}\"{}\"", &found[2], file.display())
    });
    Config::parse(&text, path, &Overrides::default())
}

#[test]
fn the_documented_example_config_is_valid() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runboard.example.toml"
    ));
    let secrets = tempfile::tempdir().unwrap();
    let config = load_with_secrets_in(path, secrets.path()).unwrap();
    assert_eq!(config.services.len(), 2);
}

#[test]
fn the_clusters_configs_are_valid() {
    for file in ["base", "overlays/oidc-ingress", "overlays/port-forward"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy")
            .join(file)
            .join("runboard.toml");
        let secrets = tempfile::tempdir().unwrap();
        let config = load_with_secrets_in(&path, secrets.path())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(config.identity.oidc.is_some(), "{}", path.display());
        assert_eq!(
            config.http.listen.port(),
            3000,
            "the port the Deployment probes"
        );
    }
}

#[test]
fn an_unknown_key_is_named() {
    let err = parse("[store]\nurll = \"sqlite://x.db\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `urll`"), "{err}");
    assert!(err.contains("runboard.toml"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key_line_and_expectation() {
    let err = parse("[http]\nrequest_timeout = 30\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("request_timeout"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn trusted_proxies_are_address_ranges_or_addresses_and_anything_else_is_named() {
    let config =
        parse("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.7\"]\n").unwrap();
    let shown: Vec<String> = config
        .http
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);
    assert_eq!(config.http.forwarded_header, ForwardedHeader::XForwardedFor);
    let standard = parse("[http]\nforwarded_header = \"forwarded\"\n").unwrap();
    assert_eq!(standard.http.forwarded_header, ForwardedHeader::Forwarded);
    let err = parse("[http]\ntrusted_proxies = [\"ingress.internal\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trusted_proxies")
            && err.contains("\"ingress.internal\" is not an address range"),
        "{err}"
    );
}

#[test]
fn a_bad_service_name_says_what_names_may_be() {
    let err = parse(&TWO_SERVICES.replace("\"ledger\"", "\"Ledger\"")).unwrap_err();
    assert!(
        err.to_string().contains("not a valid service name"),
        "{err}"
    );
}

#[test]
fn duplicate_service_names_are_refused_with_the_key() {
    let err = parse(&TWO_SERVICES.replace("\"ledger\"", "\"payments\"")).unwrap_err();
    assert!(err.to_string().contains("services[1].name"), "{err}");
}

#[test]
fn watch_figures_no_watch_can_use_are_refused_alike_everywhere_and_a_service_is_named() {
    for (figure, says) in [
        ("failures_growth = 0.0", "watches.failures_growth"),
        ("batch_failed_share = 1.5", "watches.batch_failed_share"),
        ("stall_after = \"0s\"", "watches.stall_after"),
        ("unreachable_polls = 0", "watches.unreachable_polls"),
    ] {
        let everywhere = parse(&format!("[watches]\n{figure}\n{TWO_SERVICES}"))
            .unwrap_err()
            .to_string();
        assert!(everywhere.contains(says), "{figure}: {everywhere}");
        let for_ledger = parse(&format!("{TWO_SERVICES}\n[services.watches]\n{figure}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            for_ledger.contains(&format!("services[1].{says} (service ledger)")),
            "{figure}: {for_ledger}"
        );
    }
    let tuned = parse(&format!(
        "{TWO_SERVICES}\n[services.watches]\nstall_after = \"2m\"\nbatch_failed_share = 0.3\n"
    ))
    .unwrap();
    let ledger = &tuned.services[1].watches;
    assert_eq!(ledger.stall_after, Some(Duration::from_secs(120)));
    assert_eq!(ledger.batch_failed_share, Some(0.3));
}

#[test]
fn a_non_http_graphql_url_is_refused_with_the_service() {
    let err = parse(&TWO_SERVICES.replace("http://ledger", "ftp://ledger")).unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("services[1].graphql_url (service ledger)"),
        "{err}"
    );
}

#[test]
fn a_graphql_url_with_credentials_is_refused_because_previews_show_it() {
    let err = parse(&TWO_SERVICES.replace("http://ledger", "http://runboard:s3cret@ledger"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services[1].graphql_url (service ledger)") && err.contains("graphql_token"),
        "{err}"
    );
    assert!(
        !err.contains("s3cret"),
        "the error does not repeat the password: {err}"
    );
}

#[test]
fn secrets_in_the_config_are_redacted_wherever_it_is_printed() {
    let file = format!(
        "[actions]\nwebhook_url = \"https://hooks.example.com/actions-s3cret\"\n\
         [watches.teams.core]\nwebhook_url = \"https://hooks.example.com/team-s3cret\"\n\
         {}\ngraphql_token = \"token-s3cret\"\n\n[identity.oidc]\nissuer = \"https://idp.example\"\nclient_id = \"runboard\"\nclient_secret = \"client-s3cret\"\n",
        TWO_SERVICES
            .replace("runboard@db", "runboard:store-s3cret@db")
            .replace("ro@ledger-db", "ro:db-s3cret@ledger-db")
    );
    let config = parse(&file).unwrap();
    let printed = format!("{config:?}");
    for secret in [
        "token-s3cret",
        "client-s3cret",
        "store-s3cret",
        "db-s3cret",
        "actions-s3cret",
        "team-s3cret",
    ] {
        assert!(!printed.contains(secret), "{secret} is printed: {printed}");
    }
    assert!(printed.contains("REDACTED"), "{printed}");
}

#[test]
fn a_token_audience_needs_runboards_client_and_excludes_a_static_token() {
    let with_audience = TWO_SERVICES.replace(
        "graphql_url = \"http://ledger:8080/graphql\"",
        "graphql_url = \"http://ledger:8080/graphql\"\ntoken_audience = \"urn:ledger\"",
    );
    let err = parse(&with_audience).unwrap_err().to_string();
    assert!(
        err.contains("services[1].token_audience (service ledger)")
            && err.contains("[mission_control_tokens]"),
        "{err}"
    );
    let client = "\n[mission_control_tokens]\ntoken_url = \"https://idp.example/token\"\nclient_id = \"runboard-engine\"\n";
    let err = parse(&format!("{client}{with_audience}"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RUNBOARD_MISSION_CONTROL_CLIENT_SECRET"),
        "{err}"
    );
    let overrides = Overrides {
        mission_control_client_secret: Some("engine-s3cret".into()),
        ..Overrides::default()
    };
    let config = Config::parse(
        &format!("{client}{with_audience}"),
        Path::new("runboard.toml"),
        &overrides,
    )
    .unwrap();
    assert_eq!(
        config.services[1].token_audience.as_deref(),
        Some("urn:ledger")
    );
    let both = with_audience.replace(
        "token_audience = \"urn:ledger\"",
        "token_audience = \"urn:ledger\"\ngraphql_token = \"t\"",
    );
    let err = parse(&format!("{client}client_secret = \"s\"\n{both}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("give one"), "{err}");
}

#[test]
fn a_store_url_of_an_unknown_kind_is_refused() {
    let err = parse("[store]\nurl = \"mysql://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.url"), "{err}");
}

#[test]
fn overrides_win_over_the_file() {
    let overrides = Overrides {
        listen: Some("127.0.0.1:4000".parse().unwrap()),
        database_url: Some("sqlite://override.db".into()),
        ..Overrides::default()
    };
    let config = Config::parse(TWO_SERVICES, Path::new("x.toml"), &overrides).unwrap();
    assert_eq!(config.http.listen.port(), 4000);
    assert_eq!(config.store.effective_url(), "sqlite://override.db");
}

#[test]
fn without_a_store_url_the_store_is_sqlite_in_the_data_dir() {
    let overrides = Overrides {
        data_dir: Some(PathBuf::from("/var/lib/runboard")),
        ..Overrides::default()
    };
    let config = Config::demo(&overrides).unwrap();
    assert_eq!(
        config.store.effective_url(),
        "sqlite:///var/lib/runboard/runboard.db"
    );
}

#[test]
fn the_demo_refuses_to_listen_beyond_loopback() {
    let overrides = Overrides {
        listen: Some("0.0.0.0:3000".parse().unwrap()),
        ..Overrides::default()
    };
    let err = Config::demo(&overrides).unwrap_err().to_string();
    assert!(err.contains("loopback"), "{err}");
}

/// Every secret of the config, each read from its own file: a Secret mounted as files.
#[test]
fn every_secret_can_be_read_from_a_mounted_file() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = |name: &str, value: &str| {
        let path = dir.path().join(name);
        // Written as `kubectl create secret --from-file` or `echo` leaves it.
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.display().to_string()
    };
    let file = format!(
        r#"
        [store]
        url_file = "{store}"

        [identity.oidc]
        issuer = "https://idp.example"
        client_id = "runboard"
        client_secret_file = "{oidc}"

        [mission_control_tokens]
        token_url = "https://idp.example/token"
        client_id = "runboard-engine"
        client_secret_file = "{engine}"

        [actions]
        webhook_url_file = "{actions_hook}"

        [watches.teams]
        core = {{ webhook_url_file = "{team_hook}" }}

        [[services]]
        name = "ledger"
        team = "core"
        database_url_file = "{database}"
        graphql_url = "http://ledger:8080/graphql"
        graphql_token_file = "{token}"
        "#,
        store = mounted("store-url", "postgres://runboard:store-s3cret@db/runboard"),
        oidc = mounted("oidc", "oidc-s3cret"),
        engine = mounted("engine", "engine-s3cret"),
        actions_hook = mounted("actions-hook", "https://hooks.example.com/actions-s3cret"),
        team_hook = mounted("team-hook", "https://hooks.example.com/team-s3cret"),
        database = mounted("ledger-db", "postgres://ro:db-s3cret@ledger-db/ledger"),
        token = mounted("ledger-token", "token-s3cret"),
    );
    let config = parse(&file).unwrap();
    let secret = |s: &Option<SecretString>| s.as_ref().unwrap().expose_secret().to_owned();
    assert_eq!(
        config.store.effective_url(),
        "postgres://runboard:store-s3cret@db/runboard",
        "the trailing newline is not part of the secret"
    );
    assert_eq!(
        secret(&config.identity.oidc.as_ref().unwrap().client_secret),
        "oidc-s3cret"
    );
    assert_eq!(
        secret(
            &config
                .mission_control_tokens
                .as_ref()
                .unwrap()
                .client_secret
        ),
        "engine-s3cret"
    );
    assert_eq!(
        config
            .actions
            .webhook_url
            .as_ref()
            .unwrap()
            .expose_secret()
            .as_str(),
        "https://hooks.example.com/actions-s3cret"
    );
    assert_eq!(
        config.watches.teams["core"]
            .webhook_url
            .expose_secret()
            .as_str(),
        "https://hooks.example.com/team-s3cret"
    );
    let ledger = &config.services[0];
    assert_eq!(
        ledger.database_url.expose_secret(),
        "postgres://ro:db-s3cret@ledger-db/ledger"
    );
    assert_eq!(secret(&ledger.graphql_token), "token-s3cret");
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret"), "{printed}");
}

#[test]
fn a_secret_can_be_read_from_the_environment_and_an_unset_variable_is_named() {
    // A variable every `cargo test` run sets, so that the test changes no environment.
    let with_token = |variable: &str| {
        parse(&format!(
            "{TWO_SERVICES}graphql_token_env = \"{variable}\"\n"
        ))
    };
    let config = with_token("CARGO_PKG_NAME").unwrap();
    assert_eq!(
        config.services[1]
            .graphql_token
            .as_ref()
            .unwrap()
            .expose_secret(),
        env!("CARGO_PKG_NAME")
    );
    let err = with_token("RUNBOARD_NEVER_SET_IN_TESTS")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("graphql_token_env") && err.contains("RUNBOARD_NEVER_SET_IN_TESTS is not set"),
        "{err}"
    );
}

#[test]
fn a_secret_given_two_ways_is_refused_without_quoting_it() {
    for second in [
        "database_url_file = \"/run/secrets/ledger-db\"",
        "database_url_env = \"LEDGER_DATABASE_URL\"",
    ] {
        let file = TWO_SERVICES
            .replace("ro@ledger-db", "ro:db-s3cret@ledger-db")
            .replace(
                "graphql_url = \"http://ledger:8080/graphql\"",
                &format!("graphql_url = \"http://ledger:8080/graphql\"\n{second}"),
            );
        let err = parse(&file).unwrap_err().to_string();
        assert!(
            err.contains(
                "`database_url` is given twice: give one of `database_url`, `database_url_file` and `database_url_env`"
            ),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn a_missing_secret_file_is_named_with_its_key() {
    let file = TWO_SERVICES.replace(
        "database_url = \"postgres://ro@ledger-db/ledger\"",
        "database_url_file = \"/run/secrets/no-such-file\"",
    );
    let err = parse(&file).unwrap_err().to_string();
    assert!(
        err.contains("`database_url_file`: cannot read the file /run/secrets/no-such-file"),
        "{err}"
    );
    assert!(err.contains("line 15"), "the line of the key: {err}");
}

#[test]
fn only_secrets_are_read_from_files() {
    let file = TWO_SERVICES.replace(
        "graphql_url = \"http://ledger:8080/graphql\"",
        "graphql_url_file = \"/etc/hostname\"",
    );
    let err = parse(&file).unwrap_err().to_string();
    assert!(
        err.contains("`graphql_url_file`: only secrets are read from a file or the environment"),
        "{err}"
    );
}

#[test]
fn a_webhook_that_is_no_http_url_is_refused_without_quoting_it() {
    let err = parse("[actions]\nwebhook_url = \"ftp://hooks.example.com/s3cret\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected an http(s) URL"), "{err}");
    assert!(
        !err.lines().last().unwrap_or_default().contains("s3cret"),
        "the message itself does not repeat it: {err}"
    );
}

#[test]
fn a_command_line_client_needs_the_api_audience_its_tokens_are_checked_for() {
    let oidc = "[identity.oidc]\nissuer = \"https://idp.example\"\nclient_id = \"runboard\"\ncli_client_id = \"runboard-cli\"\n";
    let err = parse(oidc).unwrap_err().to_string();
    assert!(
        err.contains("identity.oidc.cli_client_id") && err.contains("api_audience"),
        "{err}"
    );
    let config = parse(&format!("{oidc}api_audience = \"urn:runboard:api\"\n")).unwrap();
    assert_eq!(
        config.identity.oidc.unwrap().cli_client_id.as_deref(),
        Some("runboard-cli")
    );
}
