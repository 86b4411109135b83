//! The funds relation (`withheld_funds`): the money failed and stuck sagas hold.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use runboard_model::{Money, add_to_totals};
use rust_decimal::Decimal;

use super::{Connector, ReadError, ReadProblem};
use crate::db::on_transaction;

#[derive(sqlx::FromRow)]
struct FundsRow {
    saga_id: String,
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
            .map(|row| {
                let amount: Decimal = row.amount.trim().parse().map_err(|e| {
                    self.error(ReadProblem::MalformedRow {
                        relation: "withheld_funds",
                        detail: format!("amount {:?} is not a decimal number: {e}", row.amount),
                    })
                })?;
                let currency = row.currency.trim().to_owned();
                Ok((row.saga_id, Money { amount, currency }))
            })
            .collect::<Result<_, _>>()
            .map(Some)
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
