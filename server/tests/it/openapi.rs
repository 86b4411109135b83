//! The API's OpenAPI document against the server itself: every API route of the route
//! table is in it, saying who may call it as the table does, and every documented route,
//! called once as each role against the demo fleet, answers what the document says it
//! answers (its success schema, or the error schema).

use crate::support as common;

use std::collections::BTreeMap;

use common::{
    TestApp, bearer_client, call, failed_saga_ids, registered, spawn_app_configured, start_fleet,
};
use reqwest::Method;
use runboard_core::identity::Access;
use runboard_model::Role;
use runboard_testkit::{Backend, TestStore};
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    // Scripts read it before anyone signs in.
    let response = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_api_route_of_the_table_is_documented_with_who_may_call_it() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let mut missing = Vec::new();
    let mut documented = 0;
    for rule in runboard_server::routes() {
        if !rule.path.starts_with("/api/v1/") || rule.path == "/api/v1/{*rest}" {
            continue;
        }
        let method = rule.method.as_ref().expect("API routes name their method");
        let operation = &document["paths"][&rule.path][method.as_str().to_lowercase()];
        if operation.is_null() {
            missing.push(format!("{method} {}", rule.path));
            continue;
        }
        documented += 1;
        let said = match rule.access {
            Access::Public => "public",
            Access::Read => "read",
            Access::BrowserSession => "browser_session",
            Access::Operate => "operator",
            Access::Approve => "approver",
            Access::Admin => "admin",
        };
        assert_eq!(
            operation["x-runboard-access"], said,
            "{method} {}: {operation}",
            rule.path
        );
        assert_eq!(
            operation["security"].as_array().is_none_or(Vec::is_empty),
            rule.access == Access::Public,
            "{method} {} asks for a way in exactly when it is not public",
            rule.path
        );
    }
    assert!(
        missing.is_empty(),
        "API routes missing from the document: {missing:?}"
    );
    assert!(documented > 30, "{documented} routes documented");
}

/// A validator of answers against one of the document's schemas, `$ref`s resolved within it.
fn validator(document: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = document["components"].clone();
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// What the document says `method path` answers with `status`: its JSON schema, if JSON.
fn documented_schema(operation: &Value, status: u16) -> Option<&Value> {
    let responses = &operation["responses"];
    let response = if responses[status.to_string()].is_object() {
        &responses[status.to_string()]
    } else {
        assert!(
            !(200..300).contains(&status),
            "a success the document does not list: {status} in {responses}"
        );
        &responses["default"]
    };
    response["content"]["application/json"]["schema"].as_object()?;
    Some(&response["content"]["application/json"]["schema"])
}

#[tokio::test]
async fn every_documented_route_answers_each_role_as_the_document_says() {
    let backend = Backend::Postgres;
    let fleet = start_fleet(backend).await;
    let services: Vec<_> = fleet.fleet.services().iter().map(registered).collect();
    let (app, ()) = spawn_app_configured(TestStore::new(backend).await, |config, _| {
        config.services = services;
    })
    .await;
    let document = document(&app).await;

    // Real things to name in paths, so that the answers are real answers, not only 404s.
    let operator_token = app.token_for("olga", &[Role::Operator]).await;
    let operator = bearer_client(&operator_token);
    let ids = failed_saga_ids(&app.address, &operator, "onboarding", 2).await;
    let action = call(
        &operator,
        Method::POST,
        app.url("/api/v1/actions"),
        &operator_token,
        Some(json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } })),
    )
    .await;
    let batches = call(
        &operator,
        Method::GET,
        app.url("/api/v1/services/payouts/batches"),
        &operator_token,
        None,
    )
    .await;
    let batch = batches["batches"][0]["batch_id"]
        .as_str()
        .expect("payouts has batches");
    // `{id}` is the action's id everywhere: for a token it names none of the caller's, so
    // revoking answers 404 (with the error schema) and the caller keeps its way in.
    let concrete = |path: &str| {
        path.replace("{service}/batches", "payouts/batches")
            .replace("{service}", "onboarding")
            .replace("{batch}", batch)
            .replace("{id}", action["id"].as_str().unwrap())
    };
    // A body each write takes; those that must fail (a digest nobody saw) fail with the
    // error schema, which is checked as well.
    let bodies: BTreeMap<&str, Value> = [
        ("/api/v1/tokens", json!({ "label": "ci", "expires_in": "1d" })),
        ("/api/v1/access/revoke", json!({ "subject": "test:nobody", "reason": "left" })),
        ("/api/v1/lookup", json!({ "text": ids[0] })),
        ("/api/v1/actions", json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": [ids[1]] } })),
        ("/api/v1/actions/{id}/submit", json!({ "reason": "INC-1" })),
        ("/api/v1/actions/{id}/approve", json!({ "digest": "sha256:nothing-anyone-saw" })),
        ("/api/v1/actions/{id}/reject", json!({ "reason": "not now" })),
        ("/api/v1/alerts/{id}/acknowledge", json!({})),
        ("/api/v1/silences", json!({ "for": "1h", "reason": "maintenance" })),
    ]
    .into_iter()
    .collect();

    let mut callers = Vec::new();
    for role in Role::ALL {
        let token = app.token_for(role.as_str(), &[role]).await;
        callers.push((role, bearer_client(&token)));
    }
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (role, client) in &callers {
                let mut request = client
                    .request(
                        method.to_uppercase().parse().unwrap(),
                        app.url(&concrete(path)),
                    )
                    .header("origin", &app.address);
                if method == "post" {
                    request = request.json(bodies.get(path.as_str()).unwrap_or(&json!({})));
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let text = response.text().await.unwrap();
                checked += 1;
                let Some(schema) = documented_schema(operation, status) else {
                    continue;
                };
                let answer: Value = match serde_json::from_str(&text) {
                    Ok(answer) => answer,
                    Err(e) => {
                        wrong.push(format!(
                            "{method} {path} as {role}: {status}, not JSON ({e}): {text}"
                        ));
                        continue;
                    }
                };
                let errors: Vec<String> = validator(&document, schema)
                    .iter_errors(&answer)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .take(3)
                    .collect();
                if !errors.is_empty() {
                    wrong.push(format!("{method} {path} as {role}: {status} {errors:?}"));
                }
            }
        }
    }
    assert!(checked > 100, "{checked} calls");
    assert!(
        wrong.is_empty(),
        "{} answers unlike the document:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
