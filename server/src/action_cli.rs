//! `runboard action plan|submit|status`: a client of a Runboard's API for actions kept as
//! reviewable files ([`ActionFile`]), with a personal API token or `runboard login`'s sign-in.

use std::path::PathBuf;

use clap::Subcommand;
use runboard_model::{Action, ActionId, DryRun, IdempotencyKey, url_encode};
use serde_json::Value;
use url::Url;

use crate::action_file::ActionFile;
use crate::cli_client::{Runboard, RunboardArgs};

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Ask for the preview of the action a file describes and print it: the entities, the
    /// money, the service's dry run and the digest approvers approve. Nothing is sent for
    /// real; the preview waits, previewed, until it is submitted.
    Plan {
        /// The action file (TOML: service, mutation, reason, [arguments] or [selection]).
        file: PathBuf,
        #[command(flatten)]
        runboard: RunboardArgs,
    },
    /// Preview the file's action as `plan` does, then submit it for approval; prints the
    /// action's address.
    Submit {
        file: PathBuf,
        #[command(flatten)]
        runboard: RunboardArgs,
    },
    /// Save the runbook a file describes (its name, description and [[steps]]) for its
    /// service, replacing the one of that name, once its steps check against the service;
    /// prints its id. Its entities and reason, if any, are not kept.
    Save {
        file: PathBuf,
        #[command(flatten)]
        runboard: RunboardArgs,
    },
    /// Where an action stands: its state, approvals and progress.
    Status {
        /// The action's id, as `plan` and `submit` print it.
        id: String,
        #[command(flatten)]
        runboard: RunboardArgs,
    },
}

/// Runs one action command; what it prints goes to stdout, an error's reason to the caller.
pub async fn run(command: ActionCommand) -> Result<(), String> {
    match command {
        ActionCommand::Plan { file, runboard } => {
            let runboard = runboard.connect().await?;
            let action = plan(&runboard, &read(&file)?).await?;
            print!("{}", described(&action, &runboard.url));
            println!("Nothing is sent until it is submitted and approved.");
            Ok(())
        }
        ActionCommand::Submit { file, runboard } => {
            let runboard = runboard.connect().await?;
            let file = read(&file)?;
            let planned = plan(&runboard, &file).await?;
            print!("{}", described(&planned, &runboard.url));
            let submitted: Action = runboard
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/actions/{}/submit", planned.id),
                    Some(serde_json::json!({
                        "reason": file.reason,
                        "incident_url": file.incident_url,
                    })),
                )
                .await?;
            println!(
                "Submitted: {} awaits {} approval(s) at {}",
                submitted.id,
                submitted.approvals_needed,
                page(&runboard.url, &submitted.id)
            );
            Ok(())
        }
        ActionCommand::Save { file, runboard } => {
            let runboard = runboard.connect().await?;
            let file = read(&file)?;
            let saved: runboard_model::SavedRunbook = runboard
                .call(
                    reqwest::Method::POST,
                    "/api/v1/runbooks",
                    Some(file.runbook()?),
                )
                .await?;
            println!(
                "Saved runbook \"{}\" of {} ({} step(s)) as {}",
                saved.name,
                saved.service,
                saved.steps.len(),
                saved.id
            );
            Ok(())
        }
        ActionCommand::Status { id, runboard } => {
            let runboard = runboard.connect().await?;
            let action: Value = runboard
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/actions/{}?limit=1", url_encode(&id)),
                    None,
                )
                .await?;
            let action: Action = serde_json::from_value(action["action"].clone())
                .map_err(|e| format!("Runboard's answer about action {id} is not one: {e}"))?;
            print!("{}", described(&action, &runboard.url));
            Ok(())
        }
    }
}

fn read(path: &PathBuf) -> Result<ActionFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the action file {}: {e}", path.display()))?;
    ActionFile::parse(&text).map_err(|e| format!("{} is not an action file: {e}", path.display()))
}

async fn plan(runboard: &Runboard, file: &ActionFile) -> Result<Action, String> {
    runboard
        .call(
            reqwest::Method::POST,
            "/api/v1/actions",
            Some(file.request()),
        )
        .await
}

fn page(base: &Url, id: &ActionId) -> String {
    base.join(&format!("actions/{}", url_encode(id.as_str())))
        .map_or_else(|_| id.to_string(), String::from)
}

/// A service's (or a requester's) text as a terminal shows it harmlessly: control characters,
/// and the bidirectional overrides that reorder what is read, escaped (`\u{1b}`), so that no
/// effect description can move the cursor and repaint a line a reviewer reads.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(harmful) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if harmful(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Whether a terminal would act on `c` rather than show it: a control character, or a
/// bidirectional override that reorders what is read.
pub(crate) fn harmful(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An action as a reviewer reads it in a terminal.
fn described(action: &Action, base: &Url) -> String {
    use std::fmt::Write;
    let preview = &action.preview;
    let mut text = format!(
        "Action {} on {}: {} ({})\n  {}\n",
        action.id,
        action.service,
        printable(&action.mutation),
        action.state.as_str(),
        page(base, &action.id)
    );
    if action.is_runbook() {
        let _ = writeln!(
            text,
            "Entities: {}, each with a call of its own per step, {} at once; keys {}",
            preview.entities,
            preview.concurrency,
            IdempotencyKey::pattern(&action.id, true)
        );
        for (n, step) in preview.steps.iter().enumerate() {
            let money: Vec<String> = step
                .money
                .iter()
                .map(|m| printable(&m.to_string()).into_owned())
                .collect();
            let _ = writeln!(
                text,
                "Step {}: {} ({}), money {}",
                n + 1,
                printable(&step.title),
                printable(&step.mutation),
                if money.is_empty() {
                    "none".to_owned()
                } else {
                    money.join(", ")
                }
            );
        }
    } else {
        let _ = writeln!(
            text,
            "Entities: {} in {} call(s) of at most {}, {} at once",
            preview.entities,
            preview.calls(),
            preview.chunk_size,
            preview.concurrency
        );
    }
    let money: Vec<String> = preview
        .money
        .iter()
        .map(|m| printable(&m.to_string()).into_owned())
        .collect();
    let _ = writeln!(
        text,
        "Money moved: {}",
        if money.is_empty() {
            "none".to_owned()
        } else {
            money.join(", ")
        }
    );
    match &preview.dry_run {
        DryRun::Done { effects, groups } => {
            let _ = writeln!(text, "The service's dry run: {effects} effect(s)");
            for group in groups {
                let money: Vec<String> = group
                    .money
                    .iter()
                    .map(|m| printable(&m.to_string()).into_owned())
                    .collect();
                let _ = writeln!(
                    text,
                    "  {} × {}{}",
                    group.count,
                    printable(&group.example),
                    if money.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", money.join(", "))
                    }
                );
            }
        }
        DryRun::NotOffered => {
            let _ = writeln!(text, "The service's dry run: not offered by this mutation");
        }
    }
    let _ = writeln!(
        text,
        "Approvals: {} of {} needed",
        action.approvals.len(),
        action.approvals_needed
    );
    let progress = &action.progress;
    if progress.succeeded + progress.failed > 0 {
        let _ = writeln!(
            text,
            "Progress: {} succeeded, {} failed, {} pending",
            progress.succeeded, progress.failed, progress.pending
        );
    }
    let _ = writeln!(text, "Digest: {}", action.digest);
    text
}
