//! The people of a test: each signed in at one Runboard with a personal API token, asking
//! it through the methods of [`Person`].

use reqwest::Method;
use runboard_model::Role;
use serde_json::Value;

use super::{TestApp, bearer_client};

/// Someone on the staff of a test's Runboard: a login with a personal API token issued for
/// the roles a test gave them, and a client that sends it with every request to the
/// Runboard at `address`. The audit log names them `test:<login>`.
#[derive(Clone)]
pub struct Person {
    /// What they are called: `alice`, `bob`, …
    pub login: String,
    /// A client that sends their personal API token as its bearer token.
    pub client: reqwest::Client,
    /// The Runboard they ask, `http://127.0.0.1:<port>`.
    pub address: String,
}

impl TestApp {
    /// `login`, signed in at this app with a personal API token for `roles`
    /// ([`TestApp::token_for`]).
    pub async fn person(&self, login: &str, roles: &[Role]) -> Person {
        let token = self.token_for(login, roles).await;
        Person {
            login: login.to_owned(),
            client: bearer_client(&token),
            address: self.address.clone(),
        }
    }
}

impl Person {
    /// `path` on their Runboard.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Their request of `method` on `path`, for a test to add headers or a body to and send.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `method` on `path`, with `body` as JSON if there is one: the status and the JSON
    /// answer (`null` when the answer is not JSON), whatever they are.
    pub async fn answer(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `method` on `path`, with `body` as JSON if there is one: the answer, which must be a
    /// success (the path, status and body are said when it is not).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path} as {}", self.login);
        let (status, answer) = self.answer(method, path, body).await;
        assert!((200..300).contains(&status), "{shown}: {status} {answer}");
        answer
    }

    /// What they read at `path`: the JSON answer, which must be a success.
    pub async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).await
    }

    /// What they are answered at `path`: the status and the JSON answer, whatever they are.
    pub async fn get_answer(&self, path: &str) -> (u16, Value) {
        self.answer(Method::GET, path, None).await
    }

    /// The text they read at `path` (a Markdown record, a page), whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("a text answer")
    }

    /// They post `body` to `path`: the status and the JSON answer, whatever they are.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.answer(Method::POST, path, Some(body)).await
    }

    /// They approve action `id`'s preview, the one whose digest is `digest`: the status and
    /// the JSON answer, whatever they are.
    pub async fn approve(&self, id: &str, digest: impl serde::Serialize) -> (u16, Value) {
        let path = format!("/api/v1/actions/{id}/approve");
        self.post(&path, serde_json::json!({ "digest": digest }))
            .await
    }

    /// The largest error group of `service` they see, read live from its database.
    pub async fn largest_error_group(&self, service: &str) -> Value {
        let groups = self
            .get(&format!("/api/v1/services/{service}/errors?live=true"))
            .await;
        groups["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("error groups: {groups}"))
            .iter()
            .max_by_key(|g| g["count"].as_u64().unwrap())
            .unwrap_or_else(|| panic!("{service} has no error group: {groups}"))
            .clone()
    }

    /// They post `body` to `path`: the answer, which must be a success.
    pub async fn post_ok(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body)).await
    }
}
