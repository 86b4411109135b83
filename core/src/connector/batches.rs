//! The batches relations (`batch_run`, `batch_item`): progress, items and their errors.

use chrono::{DateTime, Utc};
use runboard_model::{BatchItem, BatchItemPage, BatchItemStatus, BatchProgress};

use super::sql::Sql;
use super::{Connector, LOOKUP_CHUNK, MAX_PAGE, ReadError, ReadProblem, count, next_page};
use crate::db::Arg;
use crate::db::on_transaction;

#[derive(sqlx::FromRow)]
struct BatchRow {
    batch_id: String,
    name: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    done: i64,
    failed: i64,
    pending: i64,
    last_finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct BatchItemRow {
    pub(super) item_id: String,
    status: String,
    error: Option<String>,
    updated_at: DateTime<Utc>,
}

impl Connector {
    /// The batch items with these IDs, as `(batch_id, item)`.
    pub async fn find_batch_items(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, BatchItem)>, ReadError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            batch_id: String,
            #[sqlx(flatten)]
            item: BatchItemRow,
        }
        let mut found = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let list = sql.in_list(chunk);
            let query = format!(
                "SELECT batch_id, item_id, status, error, updated_at FROM ({}) AS batch_item WHERE item_id IN ({})",
                self.queries.batch_item, list
            );
            let rows: Vec<Row> = self.fetch_all("batch_item", &query, &sql.params).await?;
            for row in rows {
                let item = self.batch_item(row.item)?;
                found.push((row.batch_id, item));
            }
        }
        Ok(found)
    }
    /// Batches, newest first, with their items counted by status.
    pub async fn batches(&self, batch_id: Option<&str>) -> Result<Vec<BatchProgress>, ReadError> {
        let mut sql = Sql::default();
        if let Some(id) = batch_id {
            let p = sql.param(Arg::Text(id.to_owned()));
            sql.and(format!("batch_run.batch_id = {p}"));
        }
        self.batch_progress(sql).await
    }

    /// The batches the *stalled batch* watch looks at: those running, and those finished
    /// since `finished_since`.
    pub(crate) async fn batches_to_watch(
        &self,
        finished_since: DateTime<Utc>,
    ) -> Result<Vec<BatchProgress>, ReadError> {
        let mut sql = Sql::default();
        let p = sql.param(Arg::Time(finished_since));
        sql.and(format!(
            "(batch_run.finished_at IS NULL OR batch_run.finished_at > {p})"
        ));
        self.batch_progress(sql).await
    }

    async fn batch_progress(&self, mut sql: Sql) -> Result<Vec<BatchProgress>, ReadError> {
        let l = sql.param(Arg::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT batch_run.batch_id, batch_run.name, batch_run.started_at, batch_run.finished_at, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'done' THEN 1 ELSE 0 END), 0) AS done, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
               COALESCE(SUM(CASE WHEN batch_item.status = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
               MAX(CASE WHEN batch_item.status IN ('done', 'failed') THEN batch_item.updated_at END) AS last_finished_at \
             FROM ({}) AS batch_run LEFT JOIN ({}) AS batch_item ON batch_item.batch_id = batch_run.batch_id \
             {} GROUP BY batch_run.batch_id, batch_run.name, batch_run.started_at, batch_run.finished_at \
             ORDER BY batch_run.started_at DESC, batch_run.batch_id LIMIT {l}",
            self.queries.batch_run,
            self.queries.batch_item,
            sql.where_clause(),
        );
        let rows: Vec<BatchRow> = self.fetch_all("batch_run", &query, &sql.params).await?;
        Ok(rows
            .into_iter()
            .map(|row| BatchProgress {
                batch_id: row.batch_id,
                name: row.name,
                started_at: row.started_at,
                finished_at: row.finished_at,
                done: count(row.done),
                failed: count(row.failed),
                pending: count(row.pending),
                last_finished_at: row.last_finished_at,
            })
            .collect())
    }

    /// How many batches have at least one failed item.
    pub async fn failed_batches(&self) -> Result<u64, ReadError> {
        let sql = format!(
            "SELECT COUNT(DISTINCT batch_id) FROM ({}) AS batch_item WHERE status = 'failed'",
            self.queries.batch_item
        );
        let (n,): (i64,) = self
            .read("batch_item", async |transaction| {
                on_transaction!(transaction, |connection| sqlx::query_as(&sql)
                    .fetch_one(connection)
                    .await)
            })
            .await?;
        Ok(count(n))
    }

    /// When each finished item of a batch finished, oldest first: the batch's progress over time.
    pub async fn finished_items(
        &self,
        batch_id: &str,
    ) -> Result<Vec<(DateTime<Utc>, BatchItemStatus)>, ReadError> {
        let mut sql = Sql::default();
        let b = sql.param(Arg::Text(batch_id.to_owned()));
        let l = sql.param(Arg::Int(i64::from(self.row_limit) + 1));
        let query = format!(
            "SELECT item_id, status, error, updated_at FROM ({}) AS batch_item \
             WHERE batch_id = {b} AND status IN ('done', 'failed') ORDER BY updated_at LIMIT {l}",
            self.queries.batch_item,
        );
        let rows: Vec<BatchItemRow> = self.fetch_all("batch_item", &query, &sql.params).await?;
        if rows.len() > self.row_limit as usize {
            return Err(self.error(ReadProblem::TooManyRows {
                relation: "batch_item",
                limit: self.row_limit,
            }));
        }
        rows.into_iter()
            .map(|row| Ok((row.updated_at, self.item_status(&row.status)?)))
            .collect()
    }

    /// A batch's failed items grouped by error, largest group first.
    pub async fn batch_errors(&self, batch_id: &str) -> Result<Vec<(String, u64)>, ReadError> {
        let mut sql = Sql::default();
        let b = sql.param(Arg::Text(batch_id.to_owned()));
        let l = sql.param(Arg::Int(i64::from(self.row_limit)));
        let query = format!(
            "SELECT COALESCE(error, '(no error given)') AS error, COUNT(*) AS count FROM ({}) AS batch_item \
             WHERE batch_id = {b} AND status = 'failed' GROUP BY error ORDER BY count DESC, error LIMIT {l}",
            self.queries.batch_item,
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            error: String,
            count: i64,
        }
        let rows: Vec<Row> = self.fetch_all("batch_item", &query, &sql.params).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.error, count(r.count)))
            .collect())
    }

    pub(super) fn batch_item(&self, row: BatchItemRow) -> Result<BatchItem, ReadError> {
        Ok(BatchItem {
            status: self.item_status(&row.status)?,
            item_id: row.item_id,
            error: row.error,
            updated_at: row.updated_at,
        })
    }

    fn item_status(&self, status: &str) -> Result<BatchItemStatus, ReadError> {
        status.parse().map_err(|detail| {
            self.error(ReadProblem::MalformedRow {
                relation: "batch_item",
                detail,
            })
        })
    }

    /// One batch's items, by item id, keyset-paged.
    pub async fn batch_items(
        &self,
        batch_id: &str,
        status: Option<BatchItemStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<BatchItemPage, ReadError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let (query, params) = batch_items_statement(
            &self.queries.batch_item,
            batch_id,
            status,
            after,
            i64::from(limit) + 1,
        );
        let mut rows: Vec<BatchItemRow> = self.fetch_all("batch_item", &query, &params).await?;
        let next = next_page(&mut rows, limit, |last| last.item_id.clone());
        let items = rows
            .into_iter()
            .map(|row| self.batch_item(row))
            .collect::<Result<_, ReadError>>()?;
        Ok(BatchItemPage { items, next })
    }
}

/// The statement of a batch's items (those in `status` if given) after the item `after`,
/// at most `rows` of them, by item id.
pub(super) fn batch_items_statement(
    batch_item: &str,
    batch_id: &str,
    status: Option<BatchItemStatus>,
    after: Option<&str>,
    rows: i64,
) -> (String, Vec<Arg>) {
    let mut sql = Sql::default();
    let b = sql.param(Arg::Text(batch_id.to_owned()));
    sql.and(format!("batch_id = {b}"));
    if let Some(status) = status {
        let p = sql.param(Arg::Text(status.as_str().to_owned()));
        sql.and(format!("status = {p}"));
    }
    if let Some(after) = after {
        let p = sql.param(Arg::Text(after.to_owned()));
        sql.and(format!("item_id > {p}"));
    }
    let l = sql.param(Arg::Int(rows));
    let query = format!(
        "SELECT item_id, status, error, updated_at FROM ({batch_item}) AS batch_item {} ORDER BY item_id LIMIT {l}",
        sql.where_clause(),
    );
    (query, sql.params)
}
