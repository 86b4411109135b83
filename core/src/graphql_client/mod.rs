//! Runboard's GraphQL client of a service's mission-control endpoint: its catalog of
//! actions, read by introspection, and the calls Runboard makes to it.

mod credentials;
mod gate;

use std::sync::Arc;
use std::time::Duration;

pub use credentials::{Credentials, ServiceTokenClient};
pub(crate) use gate::SendGate;
use runboard_model::{ActionSpec, ArgumentSpec};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::error_text::{error_chain, shown_url};

/// How long Runboard waits for one mission-control request.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const INTROSPECTION: &str = "query RunboardCatalog {
  __schema { mutationType { fields {
    name description
    args { name description type { ...TypeRef } }
  } } }
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}";

/// Why a mission-control request failed, in words for the person who asked (and for
/// previews, pause reasons and Slack: each URL in it as [`shown_url`] shows it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("its mission control at {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "its mission control at {url} did not answer within {0:?}",
        CALL_TIMEOUT
    )]
    Timeout { url: String },
    /// 5xx and the like: worth trying again later.
    #[error("its mission control at {url} answered {status}: {detail}")]
    Server {
        url: String,
        status: u16,
        detail: String,
    },
    /// The service refused the call itself (a GraphQL error): trying again will not help.
    #[error("the service refused it: {0}")]
    Refused(String),
    #[error("its mission control answered something Runboard cannot read: {0}")]
    Malformed(String),
    /// The call's gate was shut when its bytes were due: the service never saw it.
    #[error("nothing was sent: this replica may no longer send the action's calls")]
    HeldBack,
    /// Runboard could not get its own token for the service: nothing was sent.
    #[error(
        "Runboard could not get its token for {audience} from the provider at {token_url}: {detail}"
    )]
    Credentials {
        token_url: String,
        audience: String,
        detail: String,
    },
}

impl CallError {
    /// The failure in one word, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Server { .. } => "server_error",
            Self::Refused(_) => "refused",
            Self::Malformed(_) => "malformed",
            Self::Credentials { .. } => "no_token",
            Self::HeldBack => "held_back",
        }
    }

    /// Whether sending the same call again later may succeed (timeouts, outages, 5xx, a
    /// token provider that did not answer).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::Server { .. }
                | Self::Credentials { .. }
        )
    }
}

/// One service's mission-control endpoint.
#[derive(Clone)]
pub struct MissionControl {
    url: Url,
    /// What the calls carry to say that Runboard calls.
    credentials: Credentials,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TypeRef {
    kind: String,
    name: Option<String>,
    #[serde(rename = "ofType")]
    of_type: Option<Box<TypeRef>>,
}

#[derive(Deserialize)]
struct Argument {
    name: String,
    description: Option<String>,
    #[serde(rename = "type")]
    type_ref: TypeRef,
}

#[derive(Deserialize)]
struct Field {
    name: String,
    description: Option<String>,
    args: Vec<Argument>,
}

/// `(named type, list, required)` of a GraphQL type reference.
fn shape(type_ref: &TypeRef) -> (String, bool, bool) {
    let (required, inner) = match type_ref.kind.as_str() {
        "NON_NULL" => (true, type_ref.of_type.as_deref()),
        _ => (false, Some(type_ref)),
    };
    let Some(inner) = inner else {
        return ("?".into(), false, required);
    };
    let (list, mut named) = match inner.kind.as_str() {
        "LIST" => (true, inner.of_type.as_deref()),
        _ => (false, Some(inner)),
    };
    while let Some(t) = named {
        if let Some(name) = &t.name {
            return (name.clone(), list, required);
        }
        named = t.of_type.as_deref();
    }
    ("?".into(), list, required)
}

impl MissionControl {
    pub fn new(url: Url, credentials: Credentials) -> Self {
        Self {
            url,
            credentials,
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("a TLS backend is compiled in"),
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The endpoint as previews, records and errors show it to every reader: without the
    /// query or fragment where a key may hide.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }

    /// Calls from now on carry these credentials.
    pub(crate) fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }

    /// Whether a call can be sent now: Runboard holds a token for the service, or could get
    /// one. A call that cannot say who sends it is better not marked as sent at all.
    pub async fn ready(&self) -> Result<(), CallError> {
        self.credentials.bearer().await.map(|_| ())
    }

    /// Sends one GraphQL request with these extra headers; the `data` of the answer.
    pub async fn request(
        &self,
        document: &str,
        variables: &Value,
        headers: &[(&str, String)],
    ) -> Result<Value, CallError> {
        self.send(document, variables, headers, None).await
    }

    /// [`Self::request`] for a call that may leave only while `gate` is open: asked once
    /// more as the connection takes the body, after every await on the way.
    pub(crate) async fn request_gated(
        &self,
        document: &str,
        variables: &Value,
        headers: &[(&str, String)],
        gate: Arc<dyn SendGate>,
    ) -> Result<Value, CallError> {
        self.send(document, variables, headers, Some(gate)).await
    }

    async fn send(
        &self,
        document: &str,
        variables: &Value,
        headers: &[(&str, String)],
        gate: Option<Arc<dyn SendGate>>,
    ) -> Result<Value, CallError> {
        let url = self.shown_url();
        let body = serde_json::to_vec(&json!({ "query": document, "variables": variables }))
            .expect("a JSON value serializes");
        let body = match gate {
            None => reqwest::Body::from(body),
            Some(gate) => reqwest::Body::wrap(gate::GatedBody::new(body, gate)),
        };
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = self.credentials.bearer().await? {
            request = request.bearer_auth(token.expose_secret());
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            if held_back(&e) {
                CallError::HeldBack
            } else if e.is_timeout() {
                CallError::Timeout { url: url.clone() }
            } else {
                CallError::Unreachable {
                    url: url.clone(),
                    detail: error_chain(&e),
                }
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CallError::Unreachable {
            url: url.clone(),
            detail: error_chain(&e),
        })?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // Revoked, or signed with a key the service no longer trusts: not a refusal of
            // the entities. The next attempt asks the provider anew.
            self.credentials.refused();
        }
        if status.is_server_error() || matches!(status.as_u16(), 401 | 429) {
            return Err(CallError::Server {
                url,
                status: status.as_u16(),
                detail: text.chars().take(300).collect(),
            });
        }
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            CallError::Malformed(format!(
                "status {status}, not JSON: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array)
            && !errors.is_empty()
        {
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect();
            return Err(CallError::Refused(messages.join("; ")));
        }
        if !status.is_success() {
            return Err(CallError::Server {
                url,
                status: status.as_u16(),
                detail: text.chars().take(300).collect(),
            });
        }
        body.get("data")
            .cloned()
            .ok_or_else(|| CallError::Malformed("no data in the answer".into()))
    }

    /// The service's mutations from its schema: those with `dryRun` first, by name.
    pub async fn catalog(&self) -> Result<Vec<ActionSpec>, CallError> {
        let data = self.request(INTROSPECTION, &json!({}), &[]).await?;
        let fields = data
            .pointer("/__schema/mutationType/fields")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let fields: Vec<Field> = serde_json::from_value(fields)
            .map_err(|e| CallError::Malformed(format!("its schema does not read: {e}")))?;
        let mut actions: Vec<ActionSpec> = fields
            .into_iter()
            .map(|field| {
                let dry_run = field.args.iter().any(|a| a.name == "dryRun");
                let arguments = field
                    .args
                    .into_iter()
                    .filter(|a| a.name != "dryRun")
                    .map(|a| {
                        let (type_name, list, required) = shape(&a.type_ref);
                        ArgumentSpec {
                            name: a.name,
                            description: a.description,
                            type_name,
                            list,
                            required,
                        }
                    })
                    .collect();
                ActionSpec {
                    mutation: field.name,
                    description: field.description,
                    arguments,
                    dry_run,
                }
            })
            .collect();
        actions.sort_by(|a, b| (!a.dry_run, &a.mutation).cmp(&(!b.dry_run, &b.mutation)));
        Ok(actions)
    }
}

/// Whether a request failed because its gate held it back.
fn held_back(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<gate::HeldBack>() {
            return true;
        }
        source = cause.source();
    }
    false
}
