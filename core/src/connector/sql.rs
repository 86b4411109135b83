//! Statements assembled at run time for either database: the filters people choose.

use runboard_dialect::Row;

use super::{Connector, ReadError};
use crate::db::Arg;

/// Assembles WHERE clauses with numbered placeholders (`$n`, which both databases accept).
#[derive(Default)]
pub(super) struct Sql {
    conditions: Vec<String>,
    pub(super) params: Vec<Arg>,
}

impl Sql {
    pub(super) fn param(&mut self, param: Arg) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// `$3, $4, $5`: one placeholder per value, for `IN (…)`.
    pub(super) fn in_list(&mut self, values: &[String]) -> String {
        let placeholders: Vec<String> = values
            .iter()
            .map(|v| self.param(Arg::Text(v.clone())))
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

impl Connector {
    /// Runs an assembled query of either database and maps its rows.
    pub(super) async fn fetch_all<R: Row>(
        &self,
        relation: &'static str,
        query: &str,
        params: &[Arg],
    ) -> Result<Vec<R>, ReadError> {
        self.read(relation, async |transaction| {
            transaction.fetch_all_unnamed(query, params).await
        })
        .await
    }
}
