//! The entities a selection on a screen stands for, resolved on the server.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use runboard_model::ServiceName;

use super::preview::{first_of_each, keep_marked, saga_state};
use super::{ActionError, MAX_ENTITIES};
use crate::App;

/// Entities picked on a screen rather than pasted: `{"error_group": "…"}` or
/// `{"failed_batch_items": "…"}` in a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selection {
    /// Every failed saga with this error message: the whole group, not a page of it.
    ErrorGroup(String),
    /// Every failed item of this batch.
    FailedBatchItems(String),
}

/// The entities of a selection, in order, and what the reading said of them.
pub(crate) struct Selected {
    pub(crate) ids: Vec<String>,
    /// Each entity's state as a preview shows it, where the pages read held it whole: an
    /// error group's sagas come with everything a preview says of them, so a million of
    /// them need no second lookup. One shared string per distinct state.
    pub(crate) states: Option<Vec<Arc<str>>>,
}

impl Selected {
    /// Keeps the first of each entity (and its state).
    fn keep_first(&mut self) {
        let keep = first_of_each(&self.ids);
        keep_marked(&mut self.ids, &keep);
        if let Some(states) = &mut self.states {
            keep_marked(states, &keep);
        }
    }

    /// Whether the list, each entity once, is still within [`MAX_ENTITIES`].
    fn within_cap(&mut self) -> bool {
        if self.ids.len() > MAX_ENTITIES {
            self.keep_first();
        }
        self.ids.len() <= MAX_ENTITIES
    }
}

impl App {
    /// The IDs a selection stands for, read page by page; more than [`MAX_ENTITIES`] is
    /// refused rather than cut short.
    pub async fn selected_entities(
        &self,
        service: &ServiceName,
        selection: &Selection,
    ) -> Result<Vec<String>, ActionError> {
        Ok(self.read_selection(service, selection).await?.ids)
    }

    /// [`App::selected_entities`], with the states the pages held.
    pub(crate) async fn read_selection(
        &self,
        service: &ServiceName,
        selection: &Selection,
    ) -> Result<Selected, ActionError> {
        let connector = self.action_connector(service)?;
        // Each entity once, whatever the paging gives: a service keeping its times as text
        // (SQLite) may hold one written with six decimals, "…22.565000", where the page's
        // cursor is bound as "…22.565", which sorts before it; the next page then starts
        // with the row the last one ended on. Repeats are dropped once the list is read, or
        // as soon as it looks too long.
        let mut selected = Selected {
            ids: Vec::new(),
            states: None,
        };
        match selection {
            Selection::ErrorGroup(error) => {
                let mut filter = crate::connector::SagaFilter {
                    status: Some(runboard_model::SagaStatus::Failed),
                    error_message: Some(error.clone()),
                    oldest_first: true,
                    limit: crate::connector::SELECTION_PAGE,
                    ..Default::default()
                };
                let mut shared: HashSet<Arc<str>> = HashSet::new();
                loop {
                    let page = connector
                        .sagas_for_selection(&filter, Utc::now())
                        .await
                        .map_err(ActionError::Read)?;
                    for saga in page.sagas {
                        let state = saga_state(&saga);
                        let state = match shared.get(state.as_str()) {
                            Some(state) => state.clone(),
                            None => {
                                let state: Arc<str> = state.into();
                                shared.insert(state.clone());
                                state
                            }
                        };
                        selected.ids.push(saga.saga_id);
                        selected.states.get_or_insert_default().push(state);
                    }
                    match page.next {
                        Some(next) if selected.within_cap() => {
                            filter.after = Some(next.parse().map_err(ActionError::BadArguments)?);
                        }
                        _ => break,
                    }
                }
            }
            Selection::FailedBatchItems(batch) => {
                let mut after: Option<String> = None;
                loop {
                    let page = connector
                        .batch_items(
                            batch,
                            Some(runboard_model::BatchItemStatus::Failed),
                            after.as_deref(),
                            crate::connector::MAX_PAGE,
                        )
                        .await
                        .map_err(ActionError::Read)?;
                    selected
                        .ids
                        .extend(page.items.into_iter().map(|i| i.item_id));
                    match page.next {
                        Some(next) if selected.within_cap() => after = Some(next),
                        _ => break,
                    }
                }
            }
        }
        selected.keep_first();
        if selected.ids.len() > MAX_ENTITIES {
            return Err(ActionError::BadArguments(format!(
                "the selection holds more than {MAX_ENTITIES} entities, the most one action takes; narrow it (a filter of the service screen) or act on it in parts"
            )));
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use super::Selection;

    #[test]
    fn a_selection_is_read_from_a_request_by_its_kind_and_a_wrong_kind_is_named() {
        let group: Selection = serde_json::from_str(r#"{"error_group": "card declined"}"#).unwrap();
        assert_eq!(group, Selection::ErrorGroup("card declined".into()));
        let items: Selection = serde_json::from_str(r#"{"failed_batch_items": "b-7"}"#).unwrap();
        assert_eq!(items, Selection::FailedBatchItems("b-7".into()));
        let wrong = serde_json::from_str::<Selection>(r#"{"error": "card declined"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("error_group") && wrong.contains("failed_batch_items"),
            "{wrong}"
        );
    }
}
