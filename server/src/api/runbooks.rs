//! Saved runbooks: kept under a name per service, exported and imported as the file
//! `runboard action plan` reads.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use runboard_core::actions::runbook::RunbookDraft;
use runboard_model::{SavedRunbook, ServiceName};
use serde::Serialize;

use super::extract::{ApiPath, BodyExample, JsonBody, SignedInUser};
use crate::action_file::ActionFile;
use crate::error::ApiError;
use crate::http::ServerState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunbookList {
    runbooks: Vec<SavedRunbook>,
}

/// `GET /api/v1/services/{service}/runbooks`: a service's runbooks, by name.
pub async fn of_service(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
) -> Result<Json<RunbookList>, ApiError> {
    let runbooks = state.app.runbooks_of(&service).await?;
    Ok(Json(RunbookList { runbooks }))
}

impl BodyExample for RunbookDraft {
    const EXAMPLE: &'static str = r#"{"service": "payments", "name": "Transfer the held funds and force-complete", "description": "…", "steps": [{"title": "Transfer the held funds", "mutation": "transferFunds", "arguments": {"amount": "{{ funds.amount }}", "…": "…"}}]}"#;
}

/// `POST /api/v1/runbooks`: saves a runbook under its name (replacing the one of that name).
pub async fn save(
    State(state): State<ServerState>,
    SignedInUser(user): SignedInUser,
    JsonBody(draft): JsonBody<RunbookDraft>,
) -> Result<(StatusCode, Json<SavedRunbook>), ApiError> {
    let saved = state.app.save_runbook(&user, &draft).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// `GET /api/v1/runbooks/{id}`.
pub async fn get(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<SavedRunbook>, ApiError> {
    Ok(Json(state.app.runbook(&id).await?))
}

/// `GET /api/v1/runbooks/{id}/runbook.toml`: the runbook as a file; with `entities` (or a
/// `[selection]`) and its `[params]` filled in, `runboard action plan` previews it.
pub async fn export(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let runbook = state.app.runbook(&id).await?;
    let file = ActionFile {
        name: Some(runbook.name.clone()),
        description: Some(runbook.description.clone()).filter(|d| !d.is_empty()),
        params: runbook
            .params
            .iter()
            .map(|p| (p.clone(), String::new()))
            .collect(),
        steps: runbook.steps,
        ..ActionFile::of_service(&runbook.service)
    };
    let text = file.to_text(&format!(
        "Runboard runbook \"{}\" of {}: name its entities (entities = [\"…\"], or a [selection])\n\
         and fill in its [params], then `runboard action plan` previews it.",
        runbook.name, runbook.service
    ));
    Ok(super::record::attachment(
        "application/toml; charset=utf-8",
        &format!("runbook-{id}.toml"),
        text,
    ))
}
