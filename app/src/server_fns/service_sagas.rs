use chrono::{DateTime, Utc};
use leptos::prelude::*;
use runboard_model::{SagaPage, SagaQuery};
use serde::{Deserialize, Serialize};

/// A page of sagas and the server's clock when it was read, so that ages render the
/// same on the server and in the hydrating browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaList {
    pub read_at: DateTime<Utc>,
    pub page: SagaPage,
}

/// One page of a service's sagas, filtered as the URL says. The query travels as JSON: the
/// form encoding cannot carry a struct of optional fields.
#[server(prefix = "/rpc", endpoint = "service_sagas", input = leptos::server_fn::codec::Json)]
pub async fn service_sagas(service: String, query: SagaQuery) -> Result<SagaList, ServerFnError> {
    use runboard_core::connector::SagaFilter;

    let app = super::app_for(super::Access::Read)?;
    let filter = SagaFilter::parse(&query).map_err(ServerFnError::new)?;
    let read_at = Utc::now();
    let page = super::connector(&app, &service)?
        .sagas(&filter, read_at)
        .await
        .map_err(super::read_failed)?;
    Ok(SagaList { read_at, page })
}
