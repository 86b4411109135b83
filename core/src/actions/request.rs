//! A request for an action, as a client of the API or a form of the screens sends it.

use runboard_model::{Pace, RunbookStep, ServiceName};
use serde_json::Value;

use super::{RequestKey, Selection};

/// What an operator asks for: one mutation (`mutation` and its `arguments`), or a runbook
/// (`steps`, with the entities in `selection` or `entities`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub service: ServiceName,
    /// The mutation of an action of one step; left out for a runbook.
    #[serde(default)]
    pub mutation: String,
    /// One key per argument of the mutation; the list of IDs names the entities.
    #[serde(default)]
    pub arguments: Value,
    /// The entities picked on a screen, resolved on the server, in place of the list of IDs.
    #[serde(default)]
    pub selection: Option<Selection>,
    /// Why it is needed; may be given now or at submission.
    #[serde(default)]
    pub reason: Option<String>,
    /// A runbook's steps, in the order each entity goes through them.
    #[serde(default)]
    pub steps: Vec<RunbookStep>,
    /// The entities a runbook acts on, when no selection names them.
    #[serde(default)]
    pub entities: Vec<String>,
    /// The runbook's parameters (`{{ param.reason }}`), the same for every entity.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// A runbook's name, shown where an action shows its mutation.
    #[serde(default)]
    pub name: Option<String>,
    /// A saved runbook to start, by its id, in place of `steps` and `name`.
    #[serde(default)]
    pub runbook: Option<String>,
    /// The action's own pace, over its service's default (`[services.pace]`).
    #[serde(default)]
    pub pace: Option<Pace>,
    /// The client's `Idempotency-Key` header, with the digest of the rest of the request.
    #[serde(skip)]
    #[schema(ignore)]
    pub idempotency: Option<RequestKey>,
}

impl ActionRequest {
    /// A request on `service` that asks for nothing yet: the caller fills in the mutation or
    /// the steps, and what they act on. (No default: an action always names its service.)
    pub fn new(service: ServiceName) -> Self {
        Self {
            service,
            mutation: String::new(),
            arguments: Value::Null,
            selection: None,
            reason: None,
            steps: Vec::new(),
            entities: Vec::new(),
            params: Default::default(),
            name: None,
            runbook: None,
            pace: None,
            idempotency: None,
        }
    }
}
