//! Fleet reads: services with their numbers, and live reads of one service's sagas and batches.

use axum::Json;
use axum::extract::State;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use runboard_core::connector::{Connector, SagaFilter, page_limit};
use runboard_core::screens::Freshness;
use runboard_model::{
    BatchItemPage, BatchItemStatus, BatchProgress, DiscoveryNote, ErrorGroup, SagaPage, SagaQuery,
    ServiceFunds, ServiceName, ServiceOverview,
};
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery};
use crate::error::{ApiError, bad_request, failed, internal, not_found};
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceList {
    services: Vec<ServiceOverview>,
    /// What discovery in the cluster has to say: Services left out and why.
    discovery: Vec<DiscoveryNote>,
}

/// `GET /api/v1/services`: every service with its latest snapshot.
pub async fn list(State(state): State<ServerState>) -> Result<Json<ServiceList>, ApiError> {
    let services = state
        .app
        .store
        .overview()
        .await
        .map_err(|e| internal("reading the service snapshots", e))?;
    Ok(Json(ServiceList {
        services,
        discovery: state.app.fleet.discovery_notes(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FundsList {
    services: Vec<ServiceFunds>,
}

/// `GET /api/v1/funds`: withheld funds per service and currency, from the latest snapshots.
pub async fn funds(State(state): State<ServerState>) -> Result<Json<FundsList>, ApiError> {
    let services = state
        .app
        .store
        .funds()
        .await
        .map_err(|e| internal("reading the service snapshots", e))?;
    Ok(Json(FundsList { services }))
}

/// `GET /api/v1/services/{service}/sagas`: sagas filtered and keyset-paged.
pub async fn sagas(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    ApiQuery(query): ApiQuery<SagaQuery>,
) -> Result<Json<SagaPage>, ApiError> {
    let connector = connector(&state, &service)?;
    let filter = SagaFilter::parse(&query).map_err(bad_request)?;
    let page = connector.sagas(&filter, Utc::now()).await.map_err(failed)?;
    Ok(Json(page))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorGroups {
    /// When the service was read for them.
    read_at: DateTime<Utc>,
    groups: Vec<ErrorGroup>,
}

/// `?live=true`: read the service now rather than take the shared read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    #[serde(default)]
    live: bool,
}

/// `GET /api/v1/services/{service}/errors`: failed sagas grouped by error message, as read
/// for everyone within the poll interval (grouping a whole saga table for every script that
/// asks would starve the service), or read now with `?live=true`.
pub async fn errors(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    ApiQuery(LiveQuery { live }): ApiQuery<LiveQuery>,
) -> Result<Json<ErrorGroups>, ApiError> {
    let connector = connector(&state, &service)?;
    let figures = state
        .app
        .screens
        .error_groups(&connector, Freshness::live_if(live))
        .await
        .map_err(failed)?;
    Ok(Json(ErrorGroups {
        read_at: figures.read_at,
        groups: figures.value.clone(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchList {
    batches: Vec<BatchProgress>,
}

/// `GET /api/v1/services/{service}/batches`: batches with done / failed / pending.
pub async fn batches(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
) -> Result<Json<BatchList>, ApiError> {
    let batches = connector(&state, &service)?
        .batches(None)
        .await
        .map_err(failed)?;
    Ok(Json(BatchList { batches }))
}

/// `GET /api/v1/services/{service}/batches/{id}`: one batch's progress.
pub async fn batch(
    State(state): State<ServerState>,
    ApiPath((service, batch_id)): ApiPath<(ServiceName, String)>,
) -> Result<Json<BatchProgress>, ApiError> {
    connector(&state, &service)?
        .batches(Some(&batch_id))
        .await
        .map_err(failed)?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| not_found(format!("service {service} has no batch {batch_id:?}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/services/{service}/batches/{id}/items`: a batch's items, keyset-paged.
pub async fn batch_items(
    State(state): State<ServerState>,
    ApiPath((service, batch_id)): ApiPath<(ServiceName, String)>,
    ApiQuery(query): ApiQuery<ItemQuery>,
) -> Result<Json<BatchItemPage>, ApiError> {
    let status: Option<BatchItemStatus> = query
        .status
        .map(|s| s.parse())
        .transpose()
        .map_err(bad_request)?;
    let page = connector(&state, &service)?
        .batch_items(
            &batch_id,
            status,
            query.after.as_deref(),
            page_limit(query.limit).map_err(bad_request)?,
        )
        .await
        .map_err(failed)?;
    Ok(Json(page))
}

pub(crate) fn connector(
    state: &ServerState,
    service: &ServiceName,
) -> Result<Arc<Connector>, ApiError> {
    state.app.fleet.service(service.as_str()).ok_or_else(|| {
        not_found(format!(
            "no service is registered as {service:?}; GET /api/v1/services lists them"
        ))
    })
}
