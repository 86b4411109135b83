//! Statements assembled at run time for either database: the filters people choose.

use chrono::{DateTime, Utc};

use super::{Connector, ReadError};
use crate::db::on_pool;

/// A bind parameter, so that filters can be assembled at run time for either database.
pub(super) enum Param {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// Assembles WHERE clauses with numbered placeholders (`$n`, which both databases accept).
#[derive(Default)]
pub(super) struct Sql {
    conditions: Vec<String>,
    pub(super) params: Vec<Param>,
}

impl Sql {
    pub(super) fn param(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// `$3, $4, $5`: one placeholder per value, for `IN (…)`.
    pub(super) fn in_list(&mut self, values: &[String]) -> String {
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.param(Param::Text(v.clone())))
            .collect();
        placeholders.join(", ")
    }

    pub(super) fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    pub(super) fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Binds assembled parameters to a query of either database.
macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Text(v) => query.bind(v.clone()),
                Param::Time(v) => query.bind(*v),
                Param::Int(v) => query.bind(*v),
            };
        }
        query
    }};
}

impl Connector {
    /// Runs an assembled query of either database and maps its rows.
    pub(super) async fn fetch_all<R>(
        &self,
        relation: &'static str,
        query: &str,
        params: &[Param],
    ) -> Result<Vec<R>, ReadError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        self.read(relation, async {
            on_pool!(self.pool, |pool| {
                bind_all!(sqlx::query_as(query), params)
                    .fetch_all(pool)
                    .await
            })
        })
        .await
    }
}
