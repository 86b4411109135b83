//! How the command line reaches a Runboard's API: which Runboard, with whose credentials
//! (a personal API token, else `runboard login`'s sign-in), and one request at a time.

use std::time::Duration;

use clap::Args;
use serde_json::Value;
use url::Url;

/// How long one request may take: a preview waits for the service's dry run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Args)]
pub struct RunboardArgs {
    /// The Runboard to ask, as its address: https://runboard.example.com (by default the
    /// one `runboard login` signed in to).
    #[arg(long, env = "RUNBOARD_URL")]
    url: Option<Url>,
    /// A personal API token (the Account page makes one), for automation; it wins over
    /// `runboard login`'s sign-in.
    #[arg(long, env = "RUNBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A Runboard, and the bearer token to send it.
pub(crate) struct Runboard {
    pub url: Url,
    token: String,
    http: reqwest::Client,
}

/// The HTTP client of the command line's requests to Runboard.
fn http_client() -> Result<reqwest::Client, String> {
    built(reqwest::Client::builder())
}

/// The HTTP client of its requests to the OpenID provider, which follows no redirect: the
/// protocol forbids it from the token endpoint.
pub(crate) fn provider_client() -> Result<reqwest::Client, String> {
    built(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
}

fn built(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// What a refusal says: the API's error message, else its whole text.
pub(crate) fn said(text: String) -> String {
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or(text)
}

impl RunboardArgs {
    /// The Runboard to ask and the caller's token: RUNBOARD_TOKEN if set, else the stored
    /// sign-in (refreshed if it has expired).
    pub(crate) async fn connect(&self) -> Result<Runboard, String> {
        if let Some(token) = self.token.clone() {
            let url = self.url.clone().ok_or(
                "RUNBOARD_TOKEN is set but not which Runboard to ask: set RUNBOARD_URL or pass --url",
            )?;
            return Runboard::with_token(url, token);
        }
        let (url, token) = crate::cli_login::signed_in(self.url.as_ref()).await?;
        Runboard::with_token(url, token)
    }
}

impl Runboard {
    /// The Runboard at `url`, asked with `token`.
    pub(crate) fn with_token(url: Url, token: String) -> Result<Self, String> {
        Ok(Self {
            url,
            token,
            http: http_client()?,
        })
    }

    /// The API's address for `path`, which may carry a query string.
    pub(crate) fn address(&self, path: &str) -> Result<Url, String> {
        self.url
            .join(path.trim_start_matches('/'))
            .map_err(|e| format!("{} and {path} make no address: {e}", self.url))
    }

    /// One request whose answer must be a success; a refusal is said in the API's own words.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: Url,
        accept: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, accept);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach Runboard at {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let said = said(response.text().await.unwrap_or_default());
        Err(format!("Runboard refused ({status}): {said}"))
    }

    /// One request answered in JSON.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, String> {
        self.call_at(method, self.address(path)?, body).await
    }

    /// One request to `url` answered in JSON.
    pub(crate) async fn call_at<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<T, String> {
        let text = self
            .send(method, url.clone(), "application/json", body)
            .await?
            .text()
            .await
            .map_err(|e| format!("Runboard's answer from {url} broke off: {e}"))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("Runboard's answer from {url} is not what was expected: {e}"))
    }
}
