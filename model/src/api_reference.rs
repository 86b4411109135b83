//! The API reference as the app shows it: the OpenAPI document's routes and schemas, in
//! the words a person reads.

use serde::{Deserialize, Serialize};

/// Every documented route, grouped by part, and the schemas they name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReference {
    pub title: String,
    pub version: String,
    pub description: String,
    pub operations: Vec<ApiOperation>,
    pub schemas: Vec<ApiSchema>,
}

/// One route of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiOperation {
    /// The part of the API it belongs to: "actions", "fleet", …
    pub tag: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    /// Who may call it, in words.
    pub who: String,
    pub parameters: Vec<ApiParameter>,
    /// The schema of its JSON body, if it takes one.
    pub body: Option<String>,
    /// An example of that body.
    pub body_example: Option<String>,
    /// The status of its success.
    pub status: String,
    /// What it answers: a schema's name, or a media type for a file.
    pub answer: Option<String>,
}

/// A parameter in a route's path or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiParameter {
    pub name: String,
    /// `path` or `query`.
    pub place: String,
    pub required: bool,
    pub description: String,
}

/// One schema, as JSON Schema text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSchema {
    pub name: String,
    pub json: String,
}
