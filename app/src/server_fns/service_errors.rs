use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::ErrorGroup;
use serde::{Deserialize, Serialize};

/// Error groups and the server's clock when they were read, for "first seen 3 h ago".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorGroups {
    pub read_at: DateTime<Utc>,
    pub groups: Vec<ErrorGroup>,
}

/// A service's failed sagas grouped by error message, largest group first.
#[server(prefix = "/rpc", endpoint = "service_errors")]
pub async fn service_errors(service: String) -> Result<ErrorGroups, ServerFnError> {
    let app = super::app_for(super::Access::Read)?;
    let read_at = Utc::now();
    let groups = super::connector(&app, &service)?
        .error_groups()
        .await
        .map_err(super::read_failed)?;
    Ok(ErrorGroups { read_at, groups })
}
