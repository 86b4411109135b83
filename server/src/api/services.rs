//! Fleet reads: services with their numbers, and live reads of one service's sagas and batches.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use runboard_core::connector::{Connector, SagaFilter, WithheldPage, page_limit};
use runboard_core::screens::Freshness;
use runboard_model::{
    BatchItemPage, BatchItemStatus, BatchProgress, DiscoveryNote, ErrorGroup, Money, SagaPage,
    SagaQuery, ServiceFunds, ServiceName, ServiceOverview,
};
use serde::{Deserialize, Serialize};

use super::export::{self, Format, HeldRow, ServiceFundsRow};
use super::extract::{ApiPath, Listed, NoQuery};
use crate::error::{ApiError, bad_request, internal, not_found};
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
pub async fn funds(
    State(state): State<ServerState>,
    listed: Listed<NoQuery>,
) -> Result<Response, ApiError> {
    let services = state
        .app
        .store
        .funds()
        .await
        .map_err(|e| internal("reading the service snapshots", e))?;
    Ok(match listed.format {
        Format::Json => Json(FundsList { services }).into_response(),
        Format::Csv => export::file(
            &export::file_name("runboard", "funds"),
            &ServiceFundsRow::of(&services),
        ),
    })
}

/// The money one saga holds.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeldBySaga {
    saga_id: String,
    #[serde(flatten)]
    money: Money,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SagaFunds {
    sagas: Vec<HeldBySaga>,
    /// `?after=` for the next page, when there is one.
    next: Option<String>,
}

/// A page of a list ordered by id: where the previous one ended, and how many.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/services/{service}/funds`: the money each of a service's failed and stuck
/// sagas holds, read live, by saga id (none where the service holds no money).
pub async fn saga_funds(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    Listed { format, query }: Listed<PageQuery>,
) -> Result<Response, ApiError> {
    let connector = connector(&state, &service)?;
    let limit = page_limit(query.limit).map_err(bad_request)?;
    if format == Format::Csv {
        let name = export::file_name(service.as_str(), "funds");
        return match connector.export_withheld() {
            Some(pages) => export::streamed(name, pages, ApiError::from).await,
            None => Ok(export::file::<HeldRow>(&name, &[])),
        };
    }
    let page = connector
        .withheld_page(query.after.as_deref(), limit)
        .await?
        .unwrap_or(WithheldPage {
            sagas: Vec::new(),
            next: None,
        });
    Ok(Json(SagaFunds {
        sagas: page
            .sagas
            .into_iter()
            .map(|(saga_id, money)| HeldBySaga { saga_id, money })
            .collect(),
        next: page.next,
    })
    .into_response())
}

/// `GET /api/v1/services/{service}/sagas`: sagas filtered and keyset-paged.
pub async fn sagas(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    Listed { format, query }: Listed<SagaQuery>,
) -> Result<Response, ApiError> {
    let connector = connector(&state, &service)?;
    let filter = SagaFilter::parse(&query).map_err(bad_request)?;
    if format == Format::Csv {
        let name = export::file_name(service.as_str(), "sagas");
        return export::streamed(
            name,
            connector.export_sagas(filter, Utc::now()),
            ApiError::from,
        )
        .await;
    }
    let page: SagaPage = connector.sagas(&filter, Utc::now()).await?;
    Ok(Json(page).into_response())
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
    Listed {
        format,
        query: LiveQuery { live },
    }: Listed<LiveQuery>,
) -> Result<Response, ApiError> {
    let connector = connector(&state, &service)?;
    let figures = state
        .app
        .screens
        .error_groups(&connector, Freshness::live_if(live))
        .await?;
    Ok(match format {
        Format::Json => Json(ErrorGroups {
            read_at: figures.read_at,
            groups: figures.value.clone(),
        })
        .into_response(),
        Format::Csv => export::file(
            &export::file_name(service.as_str(), "errors"),
            &figures.value,
        ),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchList {
    batches: Vec<BatchProgress>,
}

/// `GET /api/v1/services/{service}/batches`: batches with done / failed / pending.
pub async fn batches(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
    listed: Listed<NoQuery>,
) -> Result<Response, ApiError> {
    let batches = connector(&state, &service)?.batches(None).await?;
    Ok(match listed.format {
        Format::Json => Json(BatchList { batches }).into_response(),
        Format::Csv => export::file(&export::file_name(service.as_str(), "batches"), &batches),
    })
}

/// `GET /api/v1/services/{service}/batches/{id}`: one batch's progress.
pub async fn batch(
    State(state): State<ServerState>,
    ApiPath((service, batch_id)): ApiPath<(ServiceName, String)>,
) -> Result<Json<BatchProgress>, ApiError> {
    connector(&state, &service)?
        .batches(Some(&batch_id))
        .await?
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
    Listed { format, query }: Listed<ItemQuery>,
) -> Result<Response, ApiError> {
    let status: Option<BatchItemStatus> = query
        .status
        .map(|s| s.parse())
        .transpose()
        .map_err(bad_request)?;
    let connector = connector(&state, &service)?;
    if format == Format::Csv {
        // The whole list, whatever the limit (from `after` if given).
        let list = match status {
            Some(status) => format!("batch-{batch_id}-{}", status.as_str()),
            None => format!("batch-{batch_id}"),
        };
        let name = export::file_name(service.as_str(), &list);
        let pages = connector.export_batch_items(batch_id, status, query.after);
        return export::streamed(name, pages, ApiError::from).await;
    }
    let page: BatchItemPage = connector
        .batch_items(
            &batch_id,
            status,
            query.after.as_deref(),
            page_limit(query.limit).map_err(bad_request)?,
        )
        .await?;
    Ok(Json(page).into_response())
}

pub(crate) fn connector(
    state: &ServerState,
    service: &ServiceName,
) -> Result<Arc<Connector>, ApiError> {
    state.app.fleet.service(service).ok_or_else(|| {
        not_found(format!(
            "no service is registered as \"{service}\"; GET /api/v1/services lists them"
        ))
    })
}
