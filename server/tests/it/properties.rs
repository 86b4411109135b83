//! Whatever a caller sends, Runboard answers without a server error (issue #14): arbitrary
//! query strings to every list and filter, arbitrary JSON to every write, against the demo
//! fleet's real services. A refusal is a 4xx that says what to send.

use crate::support as common;

use common::{TestApp, TestFleet, bearer_client, registered, spawn_app_configured, start_fleet};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use reqwest::Method;
use runboard_core::config::LimitsConfig;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};
use serde_json::{Value, json};

/// The app over the demo fleet, a caller who holds every role, and an action of theirs.
struct World {
    app: TestApp,
    _fleet: TestFleet,
    caller: reqwest::Client,
    action_id: String,
}

async fn world() -> World {
    let fleet = start_fleet(Backend::Sqlite).await;
    let services = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(Backend::Sqlite).await, |config, _| {
        config.services = services;
        // One caller sends hundreds of requests here: the limits are not what is tested.
        config.limits = LimitsConfig {
            per_person_per_second: 100_000,
            per_person_burst: 100_000,
            sign_in_per_minute: 100_000,
            ..LimitsConfig::default()
        };
    })
    .await;
    let caller = bearer_client(
        &app.token_for(
            "prop",
            &[Role::Viewer, Role::Operator, Role::Approver, Role::Admin],
        )
        .await,
    );
    let failed: Value = caller
        .get(app.url("/api/v1/services/onboarding/sagas?status=failed&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let action: Value = caller
        .post(app.url("/api/v1/actions"))
        .json(&json!({
            "service": "onboarding",
            "mutation": "retrySagas",
            "arguments": { "ids": [failed["sagas"][0]["saga_id"]] },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    World {
        app,
        _fleet: fleet,
        action_id: action["id"].as_str().expect("an action").to_owned(),
        caller,
    }
}

/// Text a person or a script might put in a URL or a field: anything at all, and the
/// shapes the endpoints parse (durations, numbers, states, cursors) near their edges.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{1,25}",
        "-[0-9]{1,6}",
        "[0-9]{1,12}(ns|ms|s|m|h|d|w|y| years)",
        "(failed|stuck|running|completed|oldest|newest|all|mine|pending|succeeded|true|false|csv|json)",
        "[A-Za-z0-9_~:./+=-]{0,60}",
    ]
}

const QUERY_KEYS: &[&str] = &[
    "status",
    "type",
    "step",
    "error",
    "older_than",
    "newer_than",
    "sort",
    "after",
    "limit",
    "live",
    "format",
    "view",
    "state",
    "service",
    "subject",
    "q",
];

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        4 => proptest::sample::select(QUERY_KEYS).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    proptest::collection::vec((key, text()), 0..5)
}

/// A list or read path, with a service and a batch that may or may not exist.
fn read_path(action_id: String) -> impl Strategy<Value = Vec<String>> {
    let service = prop_oneof![
        3 => Just("onboarding".to_owned()),
        3 => Just("payments".to_owned()),
        1 => text(),
    ];
    (0..14usize, service, text()).prop_map(move |(which, service, batch)| {
        let parts: Vec<&str> = match which {
            0 => vec!["services"],
            1 => vec!["services", &service, "sagas"],
            2 => vec!["services", &service, "errors"],
            3 => vec!["services", &service, "batches"],
            4 => vec!["services", &service, "batches", &batch],
            5 => vec!["services", &service, "batches", &batch, "items"],
            6 => vec!["funds"],
            7 => vec!["actions"],
            8 => vec!["actions", &action_id],
            9 => vec!["services", &service, "funds"],
            10 => vec!["actions", &action_id, "entities"],
            11 => vec!["audit"],
            12 => vec!["alerts"],
            _ => vec!["access"],
        };
        parts.into_iter().map(str::to_owned).collect()
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            proptest::sample::select(
                &[
                    "service",
                    "mutation",
                    "arguments",
                    "ids",
                    "selection",
                    "error_group",
                    "failed_batch_items",
                    "reason",
                    "incident_url",
                    "label",
                    "expires_in",
                    "subject",
                    "text",
                    "batch",
                ][..]
            )
            .prop_map(str::to_owned),
            any::<String>(),
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(key, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// What every answer must be: no server error, and a refusal that says what was wrong.
async fn judged(response: reqwest::Response, asked: &str) -> Result<(), TestCaseError> {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    prop_assert!(status < 500, "{asked} answered {status}: {body}");
    if status >= 400 {
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        prop_assert!(
            message.len() > 10,
            "{asked} refused ({status}) without saying why: {body}"
        );
    }
    Ok(())
}

/// A runner that keeps every failing case it finds, and tries those first on every run.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/properties.proptest-regressions",
        ))),
        ..Config::default()
    })
}

#[test]
fn no_query_string_makes_a_list_or_a_filter_fail_on_the_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(world());
    runner(1000)
        .run(
            &(read_path(world.action_id.clone()), query()),
            |(path, pairs)| {
                let mut url = reqwest::Url::parse(&world.app.url("/api/v1")).unwrap();
                url.path_segments_mut().unwrap().extend(&path);
                url.query_pairs_mut().extend_pairs(&pairs);
                runtime.block_on(async {
                    let response = world.caller.get(url.clone()).send().await.unwrap();
                    judged(response, url.as_str()).await
                })
            },
        )
        .unwrap();
}

/// Text shaped like what sends browsers elsewhere: slashes, backslashes, dots and their
/// percent-encodings, hosts, schemes, tabs and newlines, in any order.
fn next_value() -> impl Strategy<Value = String> {
    let piece = proptest::sample::select(vec![
        "/",
        "\\",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "//",
        "example.com",
        "@",
        ":",
        "?",
        "#",
        "\t",
        "\n",
        "%09",
        "%0a",
        "x",
        "https:",
        "javascript:",
        "\u{3002}",
        " ",
    ]);
    // A path that normalises to another host: `/`, then segments that `.` and `..` undo,
    // then what a browser reads as the start of an authority.
    let segment = proptest::sample::select(vec![
        "./", "../", "x/", "%2e/", "%2E%2E/", ".\\", "x/..", "/", "\t/",
    ]);
    let authority = proptest::sample::select(vec!["/", "//", "\\", "/\\", "\\/", "%2f"]);
    let host = proptest::sample::select(vec!["example.com", "@example.com", "example.com:80/x"]);
    let normalised = (proptest::collection::vec(segment, 0..4), authority, host)
        .prop_map(|(segments, authority, host)| format!("/{}{authority}{host}", segments.concat()));
    prop_oneof![
        normalised,
        proptest::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat()),
        any::<String>(),
    ]
}

/// No `next`, however encoded, makes the sign-in page send a signed-in caller off-site.
#[test]
fn no_next_sends_a_signed_in_caller_off_site() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(world());
    let token = runtime.block_on(world.app.token_for("nav", &[Role::Viewer]));
    let caller = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let site = reqwest::Url::parse(&world.app.url("/login")).unwrap();
    runner(1000)
        .run(&next_value(), |next| {
            let mut url = site.clone();
            url.query_pairs_mut().append_pair("next", &next);
            runtime.block_on(async {
                let response = caller.get(url.clone()).send().await.unwrap();
                prop_assert_eq!(response.status().as_u16(), 303, "{}", url);
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                let followed = site.join(&location).unwrap();
                prop_assert_eq!(
                    followed.origin(),
                    site.origin(),
                    "next={:?} sent the browser to {:?}",
                    next,
                    location
                );
                Ok(())
            })
        })
        .unwrap();
}

/// Every write the API answers, from the router's own list (a route added later is in it
/// the day it is added), with each `{…}` of its path filled with a real ID of the world or
/// any text.
fn write_request(
    routes: Vec<(Method, String)>,
    action_id: String,
) -> impl Strategy<Value = (Method, String)> {
    (
        proptest::sample::select(routes),
        prop_oneof![Just(action_id), text()],
    )
        .prop_map(|((method, pattern), id)| {
            let segments: Vec<String> = pattern
                .trim_start_matches('/')
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        id.clone()
                    } else {
                        segment.to_owned()
                    }
                })
                .collect();
            (method, segments.join("\u{0}"))
        })
}

#[test]
fn no_json_body_makes_a_write_fail_on_the_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(world());
    let writes: Vec<(Method, String)> = runboard_server::routes()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/") && !r.path.contains('*'))
        .filter_map(|r| r.method.filter(|m| *m != Method::GET).map(|m| (m, r.path)))
        .collect();
    for needed in [
        "/api/v1/runbooks",
        "/api/v1/silences",
        "/api/v1/alerts/{id}/acknowledge",
        "/api/v1/tokens",
    ] {
        assert!(
            writes.iter().any(|(_, path)| path == needed),
            "the router lists {needed} among its writes: {writes:?}"
        );
    }
    runner(1000)
        .run(
            &(write_request(writes, world.action_id.clone()), json_value()),
            |((method, path), body)| {
                let mut url = reqwest::Url::parse(&world.app.url("/")).unwrap();
                url.path_segments_mut()
                    .unwrap()
                    .clear()
                    .extend(path.split('\u{0}'));
                runtime.block_on(async {
                    let response = world
                        .caller
                        .request(method.clone(), url.clone())
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    judged(response, &format!("{method} {url} {body}")).await
                })
            },
        )
        .unwrap();
}
