//! An action as a Markdown record, to be reviewed like a pull request: who asked and why,
//! the exact preview, the approvals, the per-entity results and the audit trail.

use std::fmt;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use http::header;
use runboard_model::{
    Action, ActionId, Digest, DryRun, EntityResult, EntityState, IdempotencyKey, PersonKey,
    StepState,
};

use runboard_core::actions::{EntityPage, MAX_ENTITY_PAGE};

use crate::action_file::ActionFile;
use crate::error::{ApiError, internal};
use crate::http::ServerState;

/// Askama's escaper for every `.md` template (see `askama.toml`): a value becomes Markdown
/// text that shows as typed and makes no markup. Each value sits inside a line (a table cell,
/// a list item), so line breaks become spaces, and the characters that open HTML, links,
/// images, code, emphasis or a new table cell are escaped with `\`.
#[derive(Clone, Copy)]
pub(crate) struct Markdown;

impl askama::filters::Escaper for Markdown {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, text: &str) -> fmt::Result {
        for c in text.chars() {
            match c {
                '\n' | '\r' => dest.write_char(' ')?,
                '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' => {
                    dest.write_char('\\')?;
                    dest.write_char(c)?;
                }
                c => dest.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The record's own filters, for values shown as code: inside a code span or block,
/// backslashes are literal, so these fence the value instead of escaping it.
mod filters {
    use std::fmt::Display;

    /// The longest run of backticks in `text`.
    fn longest_backtick_run(text: &str) -> usize {
        text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
    }

    /// An inline code span that no backtick, `|` or line break in `value` can end early.
    pub fn code(value: impl Display, _: &dyn askama::Values) -> askama::Result<String> {
        let text = value
            .to_string()
            .replace(['\n', '\r'], " ")
            .replace('|', "\\|");
        let fence = "`".repeat(longest_backtick_run(&text) + 1);
        let pad = if text.starts_with('`') || text.ends_with('`') {
            " "
        } else {
            ""
        };
        Ok(format!("{fence}{pad}{text}{pad}{fence}"))
    }

    /// A fenced code block in `language` whose fence is longer than any backtick run in
    /// `value`, so no line of it can close the block.
    pub fn fenced(
        value: impl Display,
        _: &dyn askama::Values,
        language: &str,
    ) -> askama::Result<String> {
        let text = value.to_string();
        let fence = "`".repeat((longest_backtick_run(&text) + 1).max(3));
        Ok(format!("{fence}{language}\n{text}\n{fence}"))
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

struct EntityRow {
    id: String,
    call: u32,
    found: String,
    money: String,
    effect: String,
}

struct ResultRow {
    id: String,
    state: &'static str,
    attempts: u32,
    detail: String,
}

/// A runbook's step, as the record lists them.
struct StepLine {
    number: usize,
    title: String,
    mutation: String,
    arguments: String,
    money: String,
}

/// One entity's story through a runbook's steps.
struct Story {
    id: String,
    state: &'static str,
    found: String,
    money: String,
    steps: Vec<StoryStep>,
}

struct StoryStep {
    number: u32,
    title: String,
    would: String,
    state: &'static str,
    attempts: u32,
    detail: String,
}

struct ApprovalLine {
    name: String,
    subject: PersonKey,
    at: String,
    digest: Digest,
}

struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    kind: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "action_record.md")]
struct Record {
    title: String,
    id: ActionId,
    state: &'static str,
    state_detail: Option<String>,
    requester: String,
    created_at: String,
    reason: String,
    incident: String,
    approvals_needed: u32,
    approvals: Vec<ApprovalLine>,
    digest: Digest,
    /// How each call's idempotency key is made.
    idempotency_key: String,
    expires_at: String,
    endpoint: String,
    calls: u64,
    chunk_size: u32,
    concurrency: u32,
    entity_argument: Option<String>,
    document: String,
    variables: String,
    dry_run_note: &'static str,
    money: String,
    entities: Vec<EntityRow>,
    /// A runbook's steps; empty for an action of one mutation.
    steps: Vec<StepLine>,
    /// Every entity's story through a runbook's steps.
    stories: Vec<Story>,
    progress: String,
    results: Vec<ResultRow>,
    audit: Vec<AuditRow>,
}

fn record(
    action: Action,
    results: Vec<EntityResult>,
    audit: Vec<runboard_core::audit::AuditEntry>,
) -> Record {
    let preview = &action.preview;
    let dry_run = !matches!(preview.dry_run, DryRun::NotOffered);
    let entities = results
        .iter()
        .map(|e| EntityRow {
            id: e.entity_id.clone(),
            call: e.chunk,
            found: e
                .found
                .clone()
                .unwrap_or_else(|| "not found in the service's database".into()),
            money: e.held.as_ref().map_or("—".into(), |m| m.to_string()),
            effect: if dry_run {
                e.planned.join("; ")
            } else {
                "no dry run".into()
            },
        })
        .collect();
    let money = runboard_model::money_list(&preview.money);
    let steps = preview
        .steps
        .iter()
        .enumerate()
        .map(|(n, step)| StepLine {
            number: n + 1,
            title: step.title.clone(),
            mutation: step.mutation.clone(),
            arguments: step.arguments.to_string(),
            money: runboard_model::money_list(&step.money),
        })
        .collect();
    let stories = results
        .iter()
        .filter(|e| !e.steps.is_empty())
        .map(|e| Story {
            id: e.entity_id.clone(),
            state: match e.state {
                EntityState::Pending => "pending",
                EntityState::Succeeded => "every step done",
                EntityState::Failed => "stopped",
            },
            found: e
                .found
                .clone()
                .unwrap_or_else(|| "not found in the service's database".into()),
            money: e.held.as_ref().map_or("—".into(), |m| m.to_string()),
            steps: e
                .steps
                .iter()
                .map(|step| StoryStep {
                    number: step.step + 1,
                    title: preview
                        .steps
                        .get(step.step as usize)
                        .map(|s| s.title.clone())
                        .unwrap_or_default(),
                    would: if step.planned.is_empty() {
                        "no dry run".into()
                    } else {
                        step.planned.join("; ")
                    },
                    state: match step.state {
                        StepState::Pending => "not sent yet",
                        StepState::Succeeded => "succeeded",
                        StepState::Failed => "failed: stopped here",
                        StepState::Skipped => "not done",
                    },
                    attempts: step.attempts,
                    detail: step.detail.clone().unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    Record {
        title: format!("{} on {}", action.mutation, action.service),
        state: action.state.as_str(),
        state_detail: action.state_detail.clone(),
        requester: format!("{} ({})", action.requester_name, action.requester),
        created_at: time(action.created_at),
        reason: action
            .reason
            .clone()
            .unwrap_or_else(|| "not given yet (not submitted)".into()),
        incident: action.incident_url.clone().unwrap_or_else(|| "—".into()),
        approvals_needed: action.approvals_needed,
        approvals: action
            .approvals
            .iter()
            .map(|a| ApprovalLine {
                name: a.approver_name.clone(),
                subject: a.approver.clone(),
                at: time(a.at),
                digest: a.digest.clone(),
            })
            .collect(),
        digest: action.digest.clone(),
        idempotency_key: IdempotencyKey::pattern(&action.id, action.is_runbook()),
        expires_at: time(action.expires_at),
        endpoint: preview.endpoint.clone(),
        calls: preview.calls(),
        chunk_size: preview.chunk_size,
        concurrency: preview.concurrency,
        entity_argument: preview.entity_argument.clone(),
        document: preview.document.clone(),
        variables: serde_json::to_string_pretty(&preview.variables).unwrap_or_default(),
        dry_run_note: match preview.dry_run {
            DryRun::Done { .. } => {
                "The service's dry run (`dryRun: true`) of every call gave the effects below."
            }
            DryRun::NotOffered => {
                "**The service offers no dry run for this mutation**: only Runboard's own part (the entities and the requests) is shown."
            }
        },
        money,
        entities,
        steps,
        stories,
        progress: format!(
            "{} succeeded, {} failed, {} pending.",
            action.progress.succeeded, action.progress.failed, action.progress.pending
        ),
        results: results
            .into_iter()
            .map(|r| ResultRow {
                id: r.entity_id,
                state: match r.state {
                    EntityState::Pending => "pending",
                    EntityState::Succeeded => "succeeded",
                    EntityState::Failed => "failed",
                },
                attempts: r.attempts,
                detail: r.detail.unwrap_or_default(),
            })
            .collect(),
        audit: audit
            .into_iter()
            .map(|e| AuditRow {
                seq: e.seq,
                at: time(e.at),
                actor: e.actor,
                kind: e.kind,
                hash: e.hash,
            })
            .collect(),
        id: action.id,
    }
}

/// Every entity of the action, a page at a time: the record has them all.
async fn all_entities(
    app: &runboard_core::App,
    action: &Action,
) -> Result<Vec<EntityResult>, runboard_core::actions::ActionError> {
    let mut all = Vec::new();
    let mut page = EntityPage {
        after: None,
        limit: MAX_ENTITY_PAGE,
        state: None,
    };
    loop {
        let entities = app.action_entities(action, &page).await?;
        let Some(last) = entities.last() else {
            return Ok(all);
        };
        page.after = Some(last.position);
        all.extend(entities);
    }
}

/// `GET /api/v1/actions/{id}/record.md`.
pub async fn markdown(
    State(state): State<ServerState>,
    Path(id): Path<ActionId>,
) -> Result<Response, ApiError> {
    let app = &state.app;
    let action = app.action(&id).await?;
    let results = all_entities(app, &action).await?;
    let audit = app
        .store
        .audit_of_action(&id)
        .await
        .map_err(|e| internal("reading an action's audit trail", e))?;
    let text = record(action, results, audit)
        .render()
        .map_err(|e| internal("rendering an action's record", e))?;
    Ok(attachment(
        "text/markdown; charset=utf-8",
        &format!("action-{id}.md"),
        text,
    ))
}

/// `GET /api/v1/actions/{id}/request.toml`: what the action asked for, as the file
/// `runboard action plan` reads, every entity named (a selection resolved to its IDs).
pub async fn request_file(
    State(state): State<ServerState>,
    Path(id): Path<ActionId>,
) -> Result<Response, ApiError> {
    let app = &state.app;
    let action = app.action(&id).await?;
    if action.is_runbook() {
        let entities = all_entities(app, &action)
            .await?
            .into_iter()
            .map(|entity| entity.entity_id)
            .collect();
        let file = ActionFile {
            name: Some(action.mutation.clone()),
            entities,
            params: action.preview.params.clone(),
            steps: action
                .preview
                .steps
                .iter()
                .map(|step| runboard_model::RunbookStep {
                    title: step.title.clone(),
                    mutation: step.mutation.clone(),
                    arguments: step.arguments.clone(),
                })
                .collect(),
            ..ActionFile::asked_of(&action)
        };
        return Ok(request_attachment(&action, &file));
    }
    let mut arguments = match &action.preview.variables {
        serde_json::Value::Object(variables) => variables.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(argument) = &action.preview.entity_argument {
        let ids = all_entities(app, &action)
            .await?
            .into_iter()
            .map(|entity| serde_json::Value::String(entity.entity_id))
            .collect();
        arguments.insert(argument.clone(), serde_json::Value::Array(ids));
    }
    let file = ActionFile {
        mutation: action.mutation.clone(),
        arguments,
        ..ActionFile::asked_of(&action)
    };
    Ok(request_attachment(&action, &file))
}

/// An action's request file, to download.
fn request_attachment(action: &Action, file: &ActionFile) -> Response {
    let id = &action.id;
    let text = file.to_text(&format!(
        "What Runboard action {id} asked of {}: `runboard action plan` previews it again,\n\
         to the same digest while the service's data is as it was; `runboard action submit` asks for it.",
        action.service
    ));
    attachment(
        "application/toml; charset=utf-8",
        &format!("action-{id}.toml"),
        text,
    )
}

/// A file to download.
pub(super) fn attachment(content_type: &'static str, name: &str, text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response()
}
