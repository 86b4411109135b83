//! The audit log: whether its hash chain is intact.

use axum::Json;
use axum::extract::State;
use runboard_core::audit::ChainCheck;

use crate::error::{ApiError, internal};
use crate::http::ServerState;

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
