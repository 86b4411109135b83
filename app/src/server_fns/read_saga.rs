use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{Saga, SagaEvent, SagaFact};
use serde::{Deserialize, Serialize};

use super::ScreenError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaView {
    pub read_at: DateTime<Utc>,
    pub saga: Saga,
    /// Its history, oldest first; `None` where the service keeps none Runboard can read.
    pub events: Option<Vec<SagaEvent>>,
    /// What the service keeps about it (accounts, reference); `None` where it offers nothing.
    pub facts: Option<Vec<SagaFact>>,
}

/// One saga's supervisor row and, where the service gives them, its history and facts.
#[server(prefix = "/rpc", endpoint = "saga")]
pub async fn read_saga(service: String, saga: String) -> Result<SagaView, ScreenError> {
    let app = super::app_for::<ReadSaga>()?;
    let connector = super::connector(&app, &service)?;
    let read_at = Utc::now();
    let ids = [saga.clone()];
    let (found, events, facts) = futures_util::join!(
        connector.find_sagas(&ids),
        connector.saga_events(&saga),
        connector.saga_facts(&saga)
    );
    let saga = found?.into_iter().next().ok_or_else(|| {
        ScreenError::refused(
            http::StatusCode::NOT_FOUND,
            format!("service {service} has no saga {saga:?}"),
        )
    })?;
    Ok(SagaView {
        read_at,
        saga,
        events: events?,
        facts: facts?,
    })
}
