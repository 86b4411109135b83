use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{SagaPage, SagaQuery};
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// A page of sagas, when it was read (ages and statuses are as of then, so they render the
/// same on the server and in the hydrating browser), and the server's clock when it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaList {
    pub read_at: DateTime<Utc>,
    pub answered_at: DateTime<Utc>,
    pub page: SagaPage,
}

/// One page of a service's sagas, filtered as the URL says: as read for everyone watching
/// within the poll interval, or (`live`) read now. The query travels as JSON: the form
/// encoding cannot carry a struct of optional fields.
#[server(prefix = "/rpc", endpoint = "service_sagas", input = leptos::server_fn::codec::Json)]
pub async fn service_sagas(
    service: String,
    query: SagaQuery,
    #[server(default)] live: bool,
) -> Result<SagaList, ScreenError> {
    use runboard_core::connector::SagaFilter;
    use runboard_core::screens::Freshness;

    let app = super::app_for::<ServiceSagas>()?;
    let filter = SagaFilter::parse(&query)
        .map_err(|wrong| ScreenError::refused(http::StatusCode::BAD_REQUEST, wrong))?;
    let connector = super::connector(&app, &service)?;
    let figures = app
        .screens
        .sagas(&connector, &filter, Freshness::live_if(live))
        .await?;
    Ok(SagaList {
        read_at: figures.read_at,
        answered_at: Utc::now(),
        page: figures.value.clone(),
    })
}
