//! A contract query is checked to be one read before Runboard runs it on every poll: the
//! text comes from the config file or from a Service's annotations, which whoever may
//! annotate that Service writes. (The read-only sessions stop whatever a parser cannot
//! see, such as a function that writes.)

use std::ops::ControlFlow;

use runboard_dialect::Dialect;
use sqlparser::ast::{Query, Select, SetExpr, Statement, Visit, Visitor};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// What to give instead, said after each refusal.
const GIVE: &str = "give one SELECT returning the contract's columns";

/// Why `query` is not exactly one SELECT that only reads, as `dialect` parses it; `None`
/// where it is.
pub(super) fn refusal(query: &str, dialect: Dialect) -> Option<String> {
    let parsed = match dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, query),
        Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, query),
    };
    let statements = match parsed {
        Ok(statements) => statements,
        Err(e) => {
            let database = match dialect {
                Dialect::Postgres => "PostgreSQL",
                Dialect::Sqlite => "SQLite",
            };
            return Some(format!("cannot be read as {database} SQL ({e}); {GIVE}"));
        }
    };
    let statement = match statements.as_slice() {
        [] => return Some(format!("is empty; {GIVE}")),
        [statement] => statement,
        more => {
            return Some(format!(
                "holds {} statements; {GIVE} (Runboard reads it as a subquery)",
                more.len()
            ));
        }
    };
    // `WITH … INSERT …` parses as a query whose body writes.
    let not_a_query = match statement {
        Statement::Query(query) => change_of(&query.body).map(with_article),
        other => Some(kind(other)),
    };
    if let Some(kind) = not_a_query {
        return Some(format!(
            "is {kind} statement, not a SELECT; Runboard only reads a service's database: {GIVE}"
        ));
    }
    match statement.visit(&mut OnlyReads) {
        ControlFlow::Break(refusal) => Some(refusal),
        ControlFlow::Continue(()) => None,
    }
}

/// Walks every query and subquery of a statement, stopping at the first that would do
/// more than read.
struct OnlyReads;

impl Visitor for OnlyReads {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if let Some(lock) = query.locks.first() {
            return ControlFlow::Break(format!(
                "locks the rows it reads ({lock}), and would on every poll; Runboard only reads: remove the locking clause"
            ));
        }
        let ctes = query.with.iter().flat_map(|with| &with.cte_tables);
        for cte in ctes {
            if let Some(change) = change_of(&cte.query.body) {
                return ControlFlow::Break(format!(
                    "changes data ({change} in its WITH clause, as {}); Runboard only reads: {GIVE} that changes nothing",
                    cte.alias.name
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if select.into.is_some() {
            return ControlFlow::Break(
                "creates a table (SELECT … INTO); Runboard only reads: remove the INTO clause"
                    .into(),
            );
        }
        ControlFlow::Continue(())
    }

    /// A statement inside the query (an INSERT in a subquery, as some databases allow).
    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        if matches!(statement, Statement::Query(_)) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(format!(
                "changes data ({} inside it); Runboard only reads: {GIVE} that changes nothing",
                kind(statement)
            ))
        }
    }
}

/// The statement a query body is, where it changes data.
fn change_of(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        _ => None,
    }
}

/// A statement's kind as its first keyword says it: "an INSERT", "a DELETE".
fn kind(statement: &Statement) -> String {
    let text = statement.to_string();
    with_article(
        &text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase(),
    )
}

fn with_article(keyword: &str) -> String {
    let article = if keyword.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {keyword}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContractQueries;

    fn refused(query: &str) -> String {
        refusal(query, Dialect::Postgres).unwrap_or_else(|| panic!("{query:?} is let through"))
    }

    #[test]
    fn the_default_queries_are_reads_on_both_databases() {
        let defaults = ContractQueries::default();
        for query in [
            &defaults.supervisor_view,
            &defaults.batch_run,
            &defaults.batch_item,
        ] {
            for dialect in [Dialect::Postgres, Dialect::Sqlite] {
                assert_eq!(refusal(query, dialect), None, "{dialect:?}: {query}");
            }
        }
    }

    #[test]
    fn the_demo_fleets_queries_are_reads_on_their_databases() {
        for (query, dialect) in [
            (
                runboard_fleet::PAYMENTS_WITHHELD_FUNDS_POSTGRES,
                Dialect::Postgres,
            ),
            (
                runboard_fleet::PAYMENTS_WITHHELD_FUNDS_SQLITE,
                Dialect::Sqlite,
            ),
            (runboard_fleet::PAYMENTS_SAGA_EVENTS, Dialect::Postgres),
            (runboard_fleet::PAYMENTS_SAGA_EVENTS, Dialect::Sqlite),
            (runboard_fleet::PAYMENTS_ENTITY_FACTS, Dialect::Postgres),
            (runboard_fleet::PAYMENTS_ENTITY_FACTS, Dialect::Sqlite),
        ] {
            assert_eq!(refusal(query, dialect), None, "{dialect:?}: {query}");
        }
    }

    #[test]
    fn reads_of_every_shape_are_let_through() {
        for query in [
            "SELECT saga_id FROM saga UNION ALL SELECT saga_id FROM archived_saga",
            "WITH recent AS (SELECT * FROM saga WHERE updated_at > now() - interval '1 day') SELECT * FROM recent",
            "SELECT s.* FROM supervisor_view s WHERE EXISTS (SELECT 1 FROM held h WHERE h.saga_id = s.saga_id)",
            // A function call is syntax like any other: the read-only session stops one that writes.
            "SELECT v.* FROM supervisor_view v, note_visit() n",
        ] {
            assert_eq!(refusal(query, Dialect::Postgres), None, "{query}");
        }
    }

    #[test]
    fn a_query_that_locks_rows_is_refused_wherever_the_lock_is() {
        for query in [
            "SELECT * FROM supervisor_view FOR UPDATE",
            "SELECT * FROM supervisor_view FOR SHARE SKIP LOCKED",
            "SELECT * FROM (SELECT * FROM saga FOR UPDATE) AS s",
        ] {
            let said = refused(query);
            assert!(said.contains("locks the rows it reads (FOR "), "{said}");
            assert!(said.contains("remove the locking clause"), "{said}");
        }
    }

    #[test]
    fn a_query_whose_with_clause_writes_is_refused() {
        let said =
            refused("WITH gone AS (DELETE FROM saga RETURNING *) SELECT * FROM supervisor_view");
        assert!(
            said.starts_with("changes data (DELETE in its WITH clause, as gone)"),
            "{said}"
        );
        let said = refused(
            "WITH noted AS (INSERT INTO visit VALUES (now()) RETURNING 1) SELECT * FROM supervisor_view",
        );
        assert!(said.contains("INSERT in its WITH clause"), "{said}");
    }

    #[test]
    fn two_statements_are_refused() {
        let said = refused("SELECT * FROM supervisor_view; DELETE FROM saga");
        assert!(said.starts_with("holds 2 statements"), "{said}");
        assert!(said.contains("give one SELECT"), "{said}");
    }

    #[test]
    fn a_statement_other_than_a_select_is_refused() {
        let said = refused("INSERT INTO saga (saga_id) VALUES ('x')");
        assert!(
            said.starts_with("is an INSERT statement, not a SELECT"),
            "{said}"
        );
        let said = refused("WITH picked AS (SELECT 1) INSERT INTO visit SELECT * FROM picked");
        assert!(
            said.starts_with("is an INSERT statement, not a SELECT"),
            "{said}"
        );
        let said = refusal("DELETE FROM saga", Dialect::Sqlite).unwrap();
        assert!(said.starts_with("is a DELETE statement"), "{said}");
    }

    #[test]
    fn select_into_is_refused() {
        let said = refused("SELECT * INTO copied FROM supervisor_view");
        assert!(said.starts_with("creates a table"), "{said}");
        assert!(said.contains("remove the INTO clause"), "{said}");
    }

    #[test]
    fn text_that_is_not_sql_says_what_the_parser_saw() {
        let said = refused("SELEKT * FROM supervisor_view");
        assert!(
            said.starts_with("cannot be read as PostgreSQL SQL ("),
            "{said}"
        );
        assert!(said.ends_with("give one SELECT returning the contract's columns"));
        assert!(refused("  ").starts_with("is empty"));
    }
}
