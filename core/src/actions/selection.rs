//! The entities a selection on a screen stands for, resolved on the server.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use runboard_model::ServiceName;

use super::ActionError;
use super::preview::{EachOnce, saga_state};
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

/// One page of a selection, in order: each entity, with its state as a preview shows it
/// where the page held it whole (an error group's sagas), as one shared string per distinct
/// state.
pub(crate) type SelectedPage = Vec<(String, Option<Arc<str>>)>;

/// Where the reading of a selection's pages is.
enum Next<C> {
    First,
    After(C),
    Done,
}

impl<C> Next<C> {
    fn of(cursor: Option<C>) -> Self {
        cursor.map_or(Next::Done, Next::After)
    }

    /// Where the next page starts, or `None` when there is none.
    fn start(self) -> Option<Option<C>> {
        match self {
            Next::First => Some(None),
            Next::After(cursor) => Some(Some(cursor)),
            Next::Done => None,
        }
    }
}

impl App {
    /// The IDs a selection stands for, each once, read page by page; more than
    /// [`super::MAX_ENTITIES`] is refused rather than cut short.
    pub async fn selected_entities(
        &self,
        service: &ServiceName,
        selection: &Selection,
    ) -> Result<Vec<String>, ActionError> {
        let mut ids = Vec::new();
        self.each_selected(service, selection, |id| ids.push(id))
            .await?;
        Ok(ids)
    }

    /// How many entities a selection stands for now, each counted once, as the action form
    /// says before anything is asked: without keeping a list of them beside the set that
    /// finds repeats (a million IDs twice over). The same refusal past
    /// [`super::MAX_ENTITIES`].
    pub async fn selected_count(
        &self,
        service: &ServiceName,
        selection: &Selection,
    ) -> Result<usize, ActionError> {
        let mut count = 0;
        self.each_selected(service, selection, |_| count += 1)
            .await?;
        Ok(count)
    }

    /// Hands `each` every entity of the selection once, in order.
    async fn each_selected(
        &self,
        service: &ServiceName,
        selection: &Selection,
        mut each: impl FnMut(String),
    ) -> Result<(), ActionError> {
        let mut pages = self.selection_pages(service, selection)?;
        let mut once = EachOnce::default();
        while let Some(page) = pages.try_next().await? {
            for (id, _) in page {
                if once.first(&id)? {
                    each(id);
                }
            }
        }
        Ok(())
    }

    /// A selection's pages, each read when the one before has been taken, so that what is
    /// done with them (a preview's calls) starts with the first. Entities may repeat across
    /// pages: a service keeping its times as text (SQLite) may hold one written with six
    /// decimals, "…22.565000", where the page's cursor is bound as "…22.565", which sorts
    /// before it; the next page then starts with the row the last one ended on.
    pub(crate) fn selection_pages<'a>(
        &'a self,
        service: &ServiceName,
        selection: &'a Selection,
    ) -> Result<BoxStream<'a, Result<SelectedPage, ActionError>>, ActionError> {
        let connector = self.action_connector(service)?;
        Ok(match selection {
            Selection::ErrorGroup(error) => {
                let filter = crate::connector::SagaFilter {
                    status: Some(runboard_model::SagaStatus::Failed),
                    error_message: Some(error.clone()),
                    oldest_first: true,
                    limit: crate::connector::SELECTION_PAGE,
                    ..Default::default()
                };
                let start = (Next::First, HashSet::<Arc<str>>::new());
                stream::try_unfold(start, move |(next, mut shared)| {
                    let (connector, mut filter) = (connector.clone(), filter.clone());
                    async move {
                        let Some(after) = next.start() else {
                            return Ok(None);
                        };
                        filter.after = after;
                        let page = connector
                            .sagas_for_selection(&filter, Utc::now())
                            .await
                            .map_err(ActionError::Read)?;
                        let next = match page.next {
                            Some(next) => Some(next.parse().map_err(ActionError::BadArguments)?),
                            None => None,
                        };
                        let sagas = page
                            .sagas
                            .into_iter()
                            .map(|saga| {
                                let state = saga_state(&saga);
                                let state = match shared.get(state.as_str()) {
                                    Some(state) => state.clone(),
                                    None => {
                                        let state: Arc<str> = state.into();
                                        shared.insert(state.clone());
                                        state
                                    }
                                };
                                (saga.saga_id, Some(state))
                            })
                            .collect();
                        Ok(Some((sagas, (Next::of(next), shared))))
                    }
                })
                .boxed()
            }
            Selection::FailedBatchItems(batch) => stream::try_unfold(Next::First, move |next| {
                let connector = connector.clone();
                async move {
                    let Some(after) = next.start() else {
                        return Ok(None);
                    };
                    let page = connector
                        .batch_items(
                            batch,
                            Some(runboard_model::BatchItemStatus::Failed),
                            after.as_deref(),
                            crate::connector::MAX_PAGE,
                        )
                        .await
                        .map_err(ActionError::Read)?;
                    let items = page.items.into_iter().map(|i| (i.item_id, None)).collect();
                    Ok(Some((items, Next::of(page.next))))
                }
            })
            .boxed(),
        })
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
