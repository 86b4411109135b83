//! The audit log: its entries, and whether its hash chain is intact.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use runboard_core::audit::{AuditEntry, ChainCheck};
use serde::{Deserialize, Serialize};

use super::export::{self, Format};
use super::extract::Listed;
use crate::error::{ApiError, bad_request, internal};
use crate::http::ServerState;

/// The largest page of entries a caller may ask for, and the pages a CSV file is read in.
const MAX_AUDIT_PAGE: u32 = 1_000;

/// `GET /api/v1/audit/verify`: recomputes every entry's hash; says where the chain first
/// breaks, if it does.
pub async fn verify(State(state): State<ServerState>) -> Result<Json<ChainCheck>, ApiError> {
    state
        .app
        .store
        .verify_audit_chain()
        .await
        .map(Json)
        .map_err(|e| internal("checking the audit chain", e))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The `next` of the previous page: entries after this one.
    after: Option<i64>,
    /// At most this many (100 unless given, at most 1,000).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    entries: Vec<AuditEntry>,
    /// `?after=` for the next page, when there is one.
    next: Option<i64>,
}

/// `GET /api/v1/audit?after=&limit=`: the audit log oldest first, in pages by entry number;
/// as CSV, all of it from `after`.
pub async fn list(
    State(state): State<ServerState>,
    Listed { format, query }: Listed<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(bad_request(format!(
            "limit={limit} is out of range; use 1 to {MAX_AUDIT_PAGE}"
        )));
    }
    let after = query.after.unwrap_or(0);
    let app = state.app.clone();
    if format == Format::Csv {
        // The log only grows at its end, so pages by entry number miss and repeat nothing.
        let pages = futures_util::stream::unfold(Some(after), move |after| {
            let app = app.clone();
            async move {
                let page = app.store.audit_page(after?, MAX_AUDIT_PAGE).await;
                let next = match &page {
                    Ok(entries) if entries.len() == MAX_AUDIT_PAGE as usize => {
                        entries.last().map(|e| e.seq)
                    }
                    _ => None,
                };
                Some((page, next))
            }
        });
        return export::streamed(export::file_name("runboard", "audit"), pages, |e| {
            internal("reading the audit log", e)
        })
        .await;
    }
    // One more than asked tells whether there is a next page.
    let mut entries = app
        .store
        .audit_page(after, limit + 1)
        .await
        .map_err(|e| internal("reading the audit log", e))?;
    let next = (entries.len() > limit as usize).then(|| {
        entries.truncate(limit as usize);
        entries.last().map_or(after, |e| e.seq)
    });
    Ok(Json(AuditPage { entries, next }).into_response())
}
