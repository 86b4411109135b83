//! `runboard serve` as a process of its own, and the API calls a test makes to one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use runboard_model::{Role, User};
use serde_json::Value;

/// A `runboard serve` process, killed when dropped.
pub struct Runboard {
    pub child: Child,
    pub url: String,
    /// Where its `/metrics` is, when on a listener of its own (`http.metrics_listen`).
    pub metrics_url: Option<String>,
}

impl Drop for Runboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `login` with `role`, straight into `store`: on a store of its own a Runboard
/// process's people sign in with the provider otherwise.
pub async fn token_in_store(
    store: &runboard_core::store::Store,
    login: &str,
    role: Role,
) -> String {
    let user = User {
        subject: format!("test:{login}").into(),
        name: login.to_owned(),
        roles: [role].into(),
    };
    store
        .issue_api_token(&user, "test", Duration::from_secs(3600), chrono::Utc::now())
        .await
        .unwrap()
        .secret
}

/// Starts `runboard serve` with `env` added and waits until it says where it serves; its
/// log goes to `log`.
pub fn start_runboard(
    config: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, &str)],
) -> Runboard {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runboard"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUNBOARD_DATABASE_URL")
        .env_remove("RUNBOARD_LISTEN")
        .env("RUNBOARD_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("run the runboard binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut metrics_url = None;
    let url = loop {
        let line = lines
            .next()
            .expect("runboard stopped before serving")
            .unwrap();
        if let Some(url) = line.strip_prefix("Runboard's metrics are at ") {
            metrics_url = Some(url.to_owned());
        }
        if let Some(url) = line.strip_prefix("Runboard is serving at ") {
            break url.to_owned();
        }
    };
    // Keep reading its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Runboard {
        child,
        url,
        metrics_url,
    }
}

/// `method` on `url` as the holder of `token`; the answer, which must be a success.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// `requester` submits `action` (as asked for) at the Runboard at `submit_on`, then
/// `approver` approves the digest it was asked with at `approve_on`.
pub async fn submit_and_approve(
    client: &reqwest::Client,
    action: &Value,
    reason: &str,
    (submit_on, requester): (&str, &str),
    (approve_on, approver): (&str, &str),
) {
    let id = action["id"].as_str().unwrap();
    call(
        client,
        reqwest::Method::POST,
        format!("{submit_on}/api/v1/actions/{id}/submit"),
        requester,
        Some(serde_json::json!({ "reason": reason })),
    )
    .await;
    call(
        client,
        reqwest::Method::POST,
        format!("{approve_on}/api/v1/actions/{id}/approve"),
        approver,
        Some(serde_json::json!({ "digest": action["digest"] })),
    )
    .await;
}
