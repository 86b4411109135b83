//! The entities a selection on a screen stands for, resolved on the server.

use chrono::Utc;

use super::{ActionError, MAX_ENTITIES};
use crate::App;

/// Entities picked on a screen rather than pasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every failed saga with this error message: the whole group, not a page of it.
    ErrorGroup(String),
    /// Every failed item of this batch.
    FailedBatchItems(String),
}

impl App {
    /// The IDs a selection stands for, read page by page up to [`MAX_ENTITIES`].
    pub async fn selected_entities(
        &self,
        service: &str,
        selection: &Selection,
    ) -> Result<Vec<String>, ActionError> {
        let connector = self.action_connector(service)?;
        let mut ids = Vec::new();
        match selection {
            Selection::ErrorGroup(error) => {
                let mut filter = crate::connector::SagaFilter {
                    status: Some(runboard_model::SagaStatus::Failed),
                    error_message: Some(error.clone()),
                    oldest_first: true,
                    limit: crate::connector::MAX_PAGE,
                    ..Default::default()
                };
                loop {
                    let page = connector
                        .sagas(&filter, Utc::now())
                        .await
                        .map_err(ActionError::Read)?;
                    ids.extend(page.sagas.into_iter().map(|s| s.saga_id));
                    match page.next {
                        Some(next) if ids.len() < MAX_ENTITIES => {
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
                    ids.extend(page.items.into_iter().map(|i| i.item_id));
                    match page.next {
                        Some(next) if ids.len() < MAX_ENTITIES => after = Some(next),
                        _ => break,
                    }
                }
            }
        }
        ids.truncate(MAX_ENTITIES);
        Ok(ids)
    }
}
