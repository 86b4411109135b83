//! The funds relation (`withheld_funds`): the money failed and stuck sagas hold.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use runboard_model::{Money, add_to_totals};
use rust_decimal::Decimal;

use super::sql::Sql;
use super::{Connector, MAX_PAGE, ReadError, ReadProblem, next_page};
use crate::db::{Arg, on_transaction};

/// One page of the money each saga holds, by saga id; `next` is where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct WithheldPage {
    pub sagas: Vec<(String, Money)>,
    pub next: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct FundsRow {
    pub(super) saga_id: String,
    amount: String,
    currency: String,
}

impl Connector {
    /// Withheld funds per currency, summed exactly from the service's own query; none where
    /// the service has no `withheld_funds` query (it holds no money).
    pub async fn withheld_funds(&self) -> Result<Vec<Money>, ReadError> {
        let mut totals = Vec::new();
        for (_, money) in self.withheld_by_saga().await?.unwrap_or_default() {
            add_to_totals(&mut totals, money.amount, &money.currency);
        }
        Ok(totals)
    }

    /// The money each failed or stuck saga holds, as the service's own query reports it;
    /// `None` where the service has no `withheld_funds` query.
    pub async fn withheld_by_saga(&self) -> Result<Option<Vec<(String, Money)>>, ReadError> {
        let Some(funds_query) = &self.queries.withheld_funds else {
            return Ok(None);
        };
        // Amounts travel as text so that neither driver rounds them through a float.
        let sql = format!(
            "SELECT saga_id, CAST(amount AS TEXT) AS amount, currency FROM ({funds_query}) AS withheld_funds"
        );
        let limit = self.row_limit as usize;
        let rows: Result<Vec<FundsRow>, ReadProblem> = self
            .read("withheld_funds", async |transaction| {
                on_transaction!(transaction, |connection| {
                    let mut rows = Vec::new();
                    let mut stream = sqlx::query_as::<_, FundsRow>(&sql).fetch(connection);
                    while let Some(row) = stream.try_next().await? {
                        if rows.len() == limit {
                            return Ok(Err(ReadProblem::TooManyRows {
                                relation: "withheld_funds",
                                limit: self.row_limit,
                            }));
                        }
                        rows.push(row);
                    }
                    Ok(Ok(rows))
                })
            })
            .await?;
        let rows = rows.map_err(|problem| self.error(problem))?;
        rows.into_iter()
            .map(|row| self.held(row))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// One page of the money each saga holds, by saga id from after `after`; `None` where
    /// the service has no `withheld_funds` query.
    pub async fn withheld_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<WithheldPage>, ReadError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let Some((query, params)) = self.withheld_statement(after, i64::from(limit) + 1) else {
            return Ok(None);
        };
        let mut rows: Vec<FundsRow> = self.fetch_all("withheld_funds", &query, &params).await?;
        let next = next_page(&mut rows, limit, |last| last.saga_id.clone());
        let sagas = rows
            .into_iter()
            .map(|row| self.held(row))
            .collect::<Result<_, _>>()?;
        Ok(Some(WithheldPage { sagas, next }))
    }

    /// The statement of the money sagas hold, by saga id from after `after`, at most `rows`.
    pub(super) fn withheld_statement(
        &self,
        after: Option<&str>,
        rows: i64,
    ) -> Option<(String, Vec<Arg>)> {
        let funds_query = self.queries.withheld_funds.as_ref()?;
        let mut sql = Sql::default();
        if let Some(after) = after {
            let p = sql.param(Arg::Text(after.to_owned()));
            sql.and(format!("saga_id > {p}"));
        }
        let l = sql.param(Arg::Int(rows));
        let query = format!(
            "SELECT saga_id, CAST(amount AS TEXT) AS amount, currency FROM ({funds_query}) AS withheld_funds \
             {} ORDER BY saga_id LIMIT {l}",
            sql.where_clause()
        );
        Some((query, sql.params))
    }

    /// A row of the service's funds as the saga and its money; the amount exact.
    pub(super) fn held(&self, row: FundsRow) -> Result<(String, Money), ReadError> {
        let amount: Decimal = row.amount.trim().parse().map_err(|e| {
            self.error(ReadProblem::MalformedRow {
                relation: "withheld_funds",
                detail: format!("amount {:?} is not a decimal number: {e}", row.amount),
            })
        })?;
        let currency = row.currency.trim().to_owned();
        Ok((row.saga_id, Money { amount, currency }))
    }

    /// Per currency, since when the saga holding money the longest has been failed or
    /// stuck (its last update); none where the service holds no money.
    pub(crate) async fn oldest_holding(&self) -> Result<Vec<(String, DateTime<Utc>)>, ReadError> {
        let Some(funds_query) = &self.queries.withheld_funds else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT withheld_funds.currency, MIN(supervisor_view.updated_at) AS since \
             FROM ({funds_query}) AS withheld_funds \
             JOIN ({}) AS supervisor_view ON supervisor_view.saga_id = withheld_funds.saga_id \
             GROUP BY withheld_funds.currency",
            self.queries.supervisor_view
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            currency: String,
            since: DateTime<Utc>,
        }
        let rows: Vec<Row> = self.fetch_all("withheld_funds", &sql, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.currency.trim().to_owned(), r.since))
            .collect())
    }
}
