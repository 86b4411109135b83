use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::ErrorGroup;
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// Error groups, when they were read, and the server's clock when it answered, for
/// "first seen 3 h ago" and "read 12 s ago".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorGroups {
    pub read_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub groups: Vec<ErrorGroup>,
}

/// A service's failed sagas grouped by error message, largest group first: as read for
/// everyone watching within the poll interval, or (`live`) read now.
#[server(prefix = "/rpc", endpoint = "service_errors")]
pub async fn service_errors(
    service: String,
    #[server(default)] live: bool,
) -> Result<ErrorGroups, ScreenError> {
    use runboard_core::screens::Freshness;

    let app = super::app_for::<ServiceErrors>()?;
    let connector = super::connector(&app, &service)?;
    let figures = app
        .screens
        .error_groups(&connector, Freshness::live_if(live))
        .await?;
    Ok(ErrorGroups {
        read_at: figures.read_at,
        answered_at: Utc::now(),
        groups: figures.value.clone(),
    })
}
