use leptos::prelude::*;
use runboard_model::{ActionSpec, SavedRunbook};
use serde::{Deserialize, Serialize};

use super::ScreenError;

/// What the new-action form starts from: the service's actions and the entities picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionForm {
    pub service: String,
    /// The mutations on offer, or why they cannot be read.
    pub actions: Result<Vec<ActionSpec>, String>,
    /// The IDs picked on the screen the operator came from (a saga, a lookup).
    pub ids: Vec<String>,
    /// The selection picked on the screen the operator came from: `(error group, batch)`,
    /// sent back as is so that the server resolves it again, never as a list of IDs.
    pub selection: Option<(Option<String>, Option<String>)>,
    /// What was picked, in words.
    pub picked: Option<String>,
    /// The service's saved runbooks, to start on what was picked.
    pub runbooks: Vec<SavedRunbook>,
}

/// The form for a new action on `service`, with the whole error group `error`, the failed
/// items of `batch`, or the comma-separated `ids` (from a saga or a lookup) picked, if one
/// is given.
#[server(prefix = "/rpc", endpoint = "action_form")]
pub async fn read_action_form(
    service: String,
    error: Option<String>,
    batch: Option<String>,
    ids: Option<String>,
) -> Result<ActionForm, ScreenError> {
    use runboard_core::actions::Selection;
    let app = super::app_for::<ReadActionForm>()?;
    let service: runboard_model::ServiceName = service.parse()?;
    let catalog = app.catalog_of(&service, false).await?;
    let selection = super::ask_for_action::selection(error, batch);
    let (ids, picked) = match &selection {
        Some(selection) => {
            let count = app.selected_count(&service, selection).await?;
            let picked = match selection {
                Selection::ErrorGroup(error) => {
                    format!("all {count} failed sagas with the error “{error}”")
                }
                Selection::FailedBatchItems(batch) => {
                    format!("all {count} failed items of batch {batch}")
                }
            };
            (Vec::new(), Some(picked))
        }
        None => {
            let ids: Vec<String> = ids
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(String::from)
                .collect();
            let picked = match ids.as_slice() {
                [] => None,
                [one] => Some(one.clone()),
                many => Some(format!("{} IDs", many.len())),
            };
            (ids, picked)
        }
    };
    let runbooks = app.runbooks_of(&service).await?;
    Ok(ActionForm {
        runbooks,
        service: service.into(),
        actions: catalog.actions.map_err(|e| e.to_string()),
        ids,
        selection: selection.map(|s| match s {
            Selection::ErrorGroup(error) => (Some(error), None),
            Selection::FailedBatchItems(batch) => (None, Some(batch)),
        }),
        picked,
    })
}
