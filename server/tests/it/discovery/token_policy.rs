//! Service-account tokens: one whose audience or team the policy does not give a namespace
//! is never asked for, and is alerted.

use super::*;

/// The provider's token endpoint as Runboard reaches it: each request is passed on to the
/// real provider, and the audience it asks for (its `resource`) kept for the test to see.
struct TokenRequests {
    url: url::Url,
    audiences: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenRequests {
    async fn start(issuer: &str) -> Self {
        use axum::body::Bytes;
        use axum::http::HeaderMap;
        let audiences = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = audiences.clone();
        let token_url = format!("{issuer}/token");
        let forward = move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            let token_url = token_url.clone();
            async move {
                for (key, value) in url::form_urlencoded::parse(&body) {
                    if key == "resource" {
                        kept.lock().unwrap().push(value.into_owned());
                    }
                }
                let mut request = reqwest::Client::new().post(&token_url).body(body);
                for name in ["authorization", "content-type", "accept"] {
                    if let Some(value) = headers.get(name) {
                        request = request.header(name, value.to_str().unwrap());
                    }
                }
                let answer = request.send().await.unwrap();
                let status = answer.status().as_u16();
                let body = answer.bytes().await.unwrap();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }
        };
        let router = axum::Router::new().route("/token", axum::routing::post(forward));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, audiences }
    }

    fn asked(&self) -> Vec<String> {
        self.audiences.lock().unwrap().clone()
    }
}

/// The platform's policy, written as in runboard.toml.
fn policy(toml: &str) -> runboard_core::config::KubernetesPolicy {
    runboard_core::config::Config::parse(
        toml,
        std::path::Path::new("policy.toml"),
        &runboard_core::config::Overrides::default(),
    )
    .unwrap()
    .kubernetes
    .policy
}

#[tokio::test]
async fn a_token_audience_or_team_the_policy_does_not_give_a_namespace_is_never_asked_for_and_is_alerted()
 {
    let fleet = start_fleet(Backend::Postgres).await;
    let payments = fleet.service("payments");
    let provider = runboard_testkit::OidcProvider::start(
        0,
        "runboard-web",
        "unused",
        "http://127.0.0.1:1/cb",
        &[],
        Some(&runboard_testkit::MachineClient {
            client_id: "runboard-engine",
            client_secret: "engine-s3cret",
            token_lifetime_secs: 600,
        }),
    );
    let tokens = TokenRequests::start(&provider.issuer).await;
    let cluster = FakeKubernetes::start().await;
    for namespace in ["payments", "intruder", "shop"] {
        cluster.apply_secret(namespace, "db", &[("database_url", &payments.database_url)]);
    }
    let secret = ("runboard.io/database-secret", "db");
    let audience = ("runboard.io/token-audience", "urn:payments");
    cluster.apply_service(labelled(
        "payments",
        "payments-api",
        "payments",
        &[("runboard.io/team", "payments"), secret, audience],
    ));
    // Another team labels a Service of its own asking for payments' token...
    cluster.apply_service(labelled(
        "intruder",
        "intruder-api",
        "intruder",
        &[("runboard.io/team", "intruder"), secret, audience],
    ));
    // ...and one routes its alerts as payments' team.
    cluster.apply_service(labelled(
        "shop",
        "shop-api",
        "shop",
        &[("runboard.io/team", "payments"), secret],
    ));
    let (app, ()) =
        common::spawn_app_configured(TestStore::new(Backend::Postgres).await, |config, _| {
            config.mission_control_tokens = Some(runboard_core::config::MissionControlTokens {
                token_url: tokens.url.clone(),
                client_id: "runboard-engine".into(),
                client_secret: Some("engine-s3cret".to_owned().into()),
            });
            config.kubernetes.policy = policy(
                r#"
                [[kubernetes.policy.namespace]]
                name = "payments"
                token_audiences = ["urn:payments"]
                teams = ["payments"]

                [[kubernetes.policy.namespace]]
                name = "shop"
                teams = ["shop"]
                "#,
            );
        })
        .await;
    tokio::spawn(runboard_cluster::discover(
        app.app.clone(),
        client_of(&cluster),
    ));
    let list = services_once(
        &app,
        "payments is registered and the others noted",
        |list| service(list, "payments").is_some() && notes_of(list, "shop/shop-api").len() == 1,
    )
    .await;
    assert!(service(&list, "intruder").is_none(), "{list:#}");
    assert!(service(&list, "shop").is_none(), "{list:#}");
    let intruder = notes_of(&list, "intruder/intruder-api");
    assert_eq!(intruder.len(), 1, "{list:#}");
    assert_eq!(intruder[0]["left_out"], json!(true));
    let said = intruder[0]["message"].as_str().unwrap();
    assert!(
        said.contains("token audience \"urn:payments\"") && said.contains("namespace intruder"),
        "{said}"
    );
    let shop = notes_of(&list, "shop/shop-api")[0]["message"]
        .as_str()
        .unwrap();
    assert!(
        shop.contains("team \"payments\"") && shop.contains("shop"),
        "{shop}"
    );

    // Nothing can open the intruder's catalog, so payments' token is never asked for it.
    let catalog = app.get("/api/v1/services/intruder/actions").await;
    assert_eq!(catalog.status().as_u16(), 404);
    assert!(tokens.asked().is_empty(), "{:?}", tokens.asked());

    // Each refusal is an alert, under the name the Service asked for.
    let board = app.get_json("/api/v1/alerts").await;
    let refused: Vec<&Value> = board["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["watch"] == json!("discovery_refused") && a["state"] == json!("firing"))
        .collect();
    let mut alerted: Vec<&str> = refused
        .iter()
        .map(|a| a["service"].as_str().unwrap())
        .collect();
    alerted.sort_unstable();
    assert_eq!(alerted, ["intruder", "shop"], "{board:#}");
    assert!(
        refused.iter().any(|a| a["summary"]
            .as_str()
            .unwrap()
            .contains("intruder/intruder-api")),
        "{board:#}"
    );

    // Payments' own catalog does ask for it (it cannot be read here, as no pod answers at
    // the cluster name): the endpoint sees requests when they are made.
    app.get("/api/v1/services/payments/actions").await;
    assert_eq!(tokens.asked(), ["urn:payments"]);

    // The intruder gives up the audience: it is registered, and its alert resolves.
    cluster.apply_service(labelled(
        "intruder",
        "intruder-api",
        "intruder",
        &[("runboard.io/team", "intruder"), secret],
    ));
    services_once(
        &app,
        "the intruder without the audience is registered",
        |list| service(list, "intruder").is_some(),
    )
    .await;
    let board = app.get_json("/api/v1/alerts").await;
    assert!(
        board["alerts"].as_array().unwrap().iter().any(|a| {
            a["service"] == json!("intruder")
                && a["watch"] == json!("discovery_refused")
                && a["state"] == json!("resolved")
        }),
        "{board:#}"
    );
}
