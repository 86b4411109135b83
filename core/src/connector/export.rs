//! Exports: a whole list of a service, however long, read page by page by keyset inside
//! one read-only snapshot of its database and handed on as the pages come, so that an
//! export of a million sagas is consistent (no saga twice or missed as they change
//! meanwhile) and costs the memory of one page.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use runboard_dialect::Row;
use runboard_model::{BatchItem, BatchItemStatus, Money, Saga};
use tokio::sync::OwnedSemaphorePermit;

use super::batches::{BatchItemRow, batch_items_statement};
use super::funds::FundsRow;
use super::sagas::SagaRow;
use super::{Connector, ReadError, ReadProblem, SagaFilter, classify};
use crate::db::{Arg, Transaction};

/// Rows one statement of an export reads: a million sagas take 200 statements, and a
/// page stays a few megabytes.
const EXPORT_PAGE: i64 = 5_000;

/// One page of an export as it comes, or why the service could not be read further.
pub type ExportPage<T> = Result<Vec<T>, ReadError>;

impl Connector {
    /// Every saga `filter` lists (its cursor and limit aside), in its order.
    pub fn export_sagas(
        self: Arc<Self>,
        filter: SagaFilter,
        now: DateTime<Utc>,
    ) -> impl Stream<Item = ExportPage<Saga>> + Send + 'static {
        walk(self, Sagas { filter, now })
    }

    /// Every item of a batch (in `status` if given) after the item `after` if given, by
    /// item id.
    pub fn export_batch_items(
        self: Arc<Self>,
        batch_id: String,
        status: Option<BatchItemStatus>,
        after: Option<String>,
    ) -> impl Stream<Item = ExportPage<BatchItem>> + Send + 'static {
        walk(
            self,
            BatchItems {
                batch_id,
                status,
                after,
            },
        )
    }

    /// The money each saga holds, by saga id; `None` where the service has no
    /// `withheld_funds` query (it holds no money).
    pub fn export_withheld(
        self: Arc<Self>,
    ) -> Option<impl Stream<Item = ExportPage<(String, Money)>> + Send + 'static> {
        self.queries.withheld_funds.as_ref()?;
        Some(walk(self, Withheld { after: None }))
    }
}

/// A list an export walks: its statement from where the last page ended, and its rows.
trait List: Send + 'static {
    type Row: Row;
    type Item: Send + 'static;
    const RELATION: &'static str;
    /// The statement of the next `rows` rows.
    fn statement(&self, connector: &Connector, rows: i64) -> (String, Vec<Arg>);
    /// The next statement starts after `last`.
    fn pass(&mut self, last: &Self::Row);
    fn item(&self, connector: &Connector, row: Self::Row) -> Result<Self::Item, ReadError>;
}

struct Sagas {
    filter: SagaFilter,
    now: DateTime<Utc>,
}

impl List for Sagas {
    type Row = SagaRow;
    type Item = Saga;
    const RELATION: &'static str = "supervisor_view";

    fn statement(&self, connector: &Connector, rows: i64) -> (String, Vec<Arg>) {
        connector.saga_statement(&self.filter, self.now, rows)
    }

    fn pass(&mut self, last: &SagaRow) {
        self.filter.after = Some(last.cursor());
    }

    fn item(&self, connector: &Connector, row: SagaRow) -> Result<Saga, ReadError> {
        Ok(row.into_saga(connector.stuck_before(self.now)))
    }
}

struct BatchItems {
    batch_id: String,
    status: Option<BatchItemStatus>,
    after: Option<String>,
}

impl List for BatchItems {
    type Row = BatchItemRow;
    type Item = BatchItem;
    const RELATION: &'static str = "batch_item";

    fn statement(&self, connector: &Connector, rows: i64) -> (String, Vec<Arg>) {
        batch_items_statement(
            &connector.queries.batch_item,
            &self.batch_id,
            self.status,
            self.after.as_deref(),
            rows,
        )
    }

    fn pass(&mut self, last: &BatchItemRow) {
        self.after = Some(last.item_id.clone());
    }

    fn item(&self, connector: &Connector, row: BatchItemRow) -> Result<BatchItem, ReadError> {
        connector.batch_item(row)
    }
}

struct Withheld {
    after: Option<String>,
}

impl List for Withheld {
    type Row = FundsRow;
    type Item = (String, Money);
    const RELATION: &'static str = "withheld_funds";

    fn statement(&self, connector: &Connector, rows: i64) -> (String, Vec<Arg>) {
        connector
            .withheld_statement(self.after.as_deref(), rows)
            .expect("export_withheld checked that the service has the query")
    }

    fn pass(&mut self, last: &FundsRow) {
        self.after = Some(last.saga_id.clone());
    }

    fn item(&self, connector: &Connector, row: FundsRow) -> Result<(String, Money), ReadError> {
        connector.held(row)
    }
}

/// An export under way: the snapshot is opened with the first page and ended after the
/// last; dropped half-way (the client went away), its connection goes back rolled back.
struct Walk<L> {
    connector: Arc<Connector>,
    list: L,
    open: Option<Snapshot>,
    finished: bool,
}

struct Snapshot {
    transaction: Transaction,
    /// An export holds one of the connections people's reads may use, like any of their
    /// reads, for as long as it runs: exports cannot take the one kept for polls and actions.
    _slot: Option<OwnedSemaphorePermit>,
}

fn walk<L: List>(
    connector: Arc<Connector>,
    list: L,
) -> impl Stream<Item = ExportPage<L::Item>> + Send + 'static {
    let walk = Walk {
        connector,
        list,
        open: None,
        finished: false,
    };
    futures_util::stream::unfold(walk, |mut walk| async move {
        if walk.finished {
            return None;
        }
        let page = walk.next_page().await;
        if page.is_err() {
            walk.finished = true;
        }
        Some((page, walk))
    })
}

impl<L: List> Walk<L> {
    /// The next page; the last one is shorter than a full page, and may be empty.
    async fn next_page(&mut self) -> ExportPage<L::Item> {
        let connector = self.connector.clone();
        let timeout = connector.timeout;
        let timed_out = || connector.error(ReadProblem::Timeout(timeout));
        let open = match &mut self.open {
            Some(open) => open,
            None => {
                let slot = connector.viewer_slot().await?;
                let transaction =
                    tokio::time::timeout(timeout, connector.pool.begin_snapshot(timeout))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(|e| connector.error(classify(L::RELATION, e)))?;
                self.open.insert(Snapshot {
                    transaction,
                    _slot: slot,
                })
            }
        };
        let (query, params) = self.list.statement(&connector, EXPORT_PAGE);
        connector.reads.record(&connector.name, L::RELATION);
        // Each statement has the service's timeout; the export as a whole has none, as a
        // million rows take their time.
        let rows: Vec<L::Row> =
            tokio::time::timeout(timeout, open.transaction.fetch_all_unnamed(&query, &params))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| connector.error(classify(L::RELATION, e)))?;
        if let Some(last) = rows.last() {
            self.list.pass(last);
        }
        if rows.len() < EXPORT_PAGE as usize {
            self.finished = true;
            if let Some(open) = self.open.take() {
                // Only read: ending it can fail only with the connection, which the pool drops.
                let _ = open.transaction.rollback().await;
            }
        }
        rows.into_iter()
            .map(|row| self.list.item(&connector, row))
            .collect()
    }
}
