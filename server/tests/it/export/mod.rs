//! Every list as CSV (#31), against the demo fleet on both stores: each file parses to the
//! rows, counts and money of its JSON pages walked to the end; text a service wrote that a
//! spreadsheet would run comes out prefixed; and a service read that fails half-way breaks
//! the download rather than end the file short. That a large export keeps memory flat is
//! measured in its own process (server/tests/alone/export.rs).

use crate::support as common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{Person, Setup, database_behind_proxy, registered, setup, setup_with, urlencode};
use reqwest::Method;
use runboard_core::poller::poll_once;
use runboard_testkit::{Backend, test_on_both_stores};
use serde_json::{Value, json};

mod downloads;
mod lists;

/// An error message a service might write, that a spreadsheet would run.
const FORMULA_ERROR: &str = "=HYPERLINK(\"http://evil.example\",\"card declined\")";

/// How a CSV cell is made of a JSON value.
#[derive(Clone, Copy)]
enum Kind {
    /// Text from a service or a person: as it is, or prefixed with `'` where it would
    /// begin a formula.
    Text,
    /// Runboard's own words and numbers (states, counts, amounts): exactly as in JSON.
    Own,
    /// A time: the same instant, in RFC 3339 UTC.
    Time,
}

type Columns = &'static [(&'static str, &'static str, Kind)];

/// A CSV file as the server sent it: its header and rows by column name.
struct CsvFile {
    header: Vec<String>,
    rows: Vec<BTreeMap<String, String>>,
    file_name: String,
}

async fn csv_of(response: reqwest::Response) -> CsvFile {
    assert_eq!(response.status(), 200, "{}", response.url());
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    let file_name = disposition
        .strip_prefix("attachment; filename=\"")
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{disposition}"))
        .to_owned();
    let body = response.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(&body[..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            assert_eq!(record.len(), header.len(), "{record:?}");
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    CsvFile {
        header,
        rows,
        file_name,
    }
}

/// `person` asks for `path` as CSV with `?format=csv`.
async fn get_csv(person: &Person, path: &str) -> CsvFile {
    let joiner = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{joiner}format=csv");
    csv_of(person.request(Method::GET, &path).send().await.unwrap()).await
}

/// Every item of a JSON list as `person` reads it, its pages walked to the end: `items` in
/// each page, the page's `next` (named `next`) sent back as `after`.
async fn walk(person: &Person, path: &str, items: &str, next: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let joiner = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(after) => format!("{path}{joiner}after={}", urlencode(after)),
            None => path.to_owned(),
        };
        let page = person.get(&url).await;
        all.extend(
            page[items]
                .as_array()
                .unwrap_or_else(|| panic!("{url}: {page}"))
                .clone(),
        );
        after = match &page[next] {
            Value::Null => return all,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
    }
}

/// What the CSV cell of a JSON value must be.
fn cell_of(value: &Value, kind: Kind) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match kind {
        Kind::Text if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{text}"),
        _ => text,
    }
}

/// The CSV rows are the JSON items, in the same order, column by column.
fn same_rows(what: &str, file: &CsvFile, items: &[Value], columns: Columns) {
    let names: Vec<&str> = columns.iter().map(|(name, ..)| *name).collect();
    assert_eq!(file.header, names, "{what}: the header row");
    assert_eq!(
        file.rows.len(),
        items.len(),
        "{what}: as many rows as JSON items"
    );
    for (row, item) in file.rows.iter().zip(items) {
        for (name, pointer, kind) in columns {
            let value = item.pointer(pointer).unwrap_or(&Value::Null);
            let cell = &row[*name];
            match kind {
                Kind::Time if !value.is_null() => {
                    let json: DateTime<Utc> = value.as_str().unwrap().parse().unwrap();
                    assert!(cell.ends_with('Z'), "{what}: {name} in UTC: {cell}");
                    let csv: DateTime<Utc> = cell.parse().unwrap();
                    assert_eq!(csv, json, "{what}: {name} of {item}");
                }
                _ => assert_eq!(*cell, cell_of(value, *kind), "{what}: {name} of {item}"),
            }
        }
    }
}

const SAGA_COLUMNS: Columns = &[
    ("saga_id", "/saga_id", Kind::Text),
    ("saga_type", "/saga_type", Kind::Text),
    ("current_step", "/current_step", Kind::Text),
    ("status", "/status", Kind::Own),
    ("error_message", "/error_message", Kind::Text),
    ("created_at", "/created_at", Kind::Time),
    ("updated_at", "/updated_at", Kind::Time),
];

const ITEM_COLUMNS: Columns = &[
    ("item_id", "/item_id", Kind::Text),
    ("status", "/status", Kind::Own),
    ("error", "/error", Kind::Text),
    ("updated_at", "/updated_at", Kind::Time),
];

/// The shared setup, every currency held raising an alert: the alerts list has rows.
async fn setup_with_alerts(backend: Backend) -> Setup {
    setup(backend)
        .configure(|config| {
            config.watches.money_held_above = ["EUR", "USD", "GBP", "CHF"]
                .into_iter()
                .map(|c| (c.to_owned(), rust_decimal::Decimal::ZERO))
                .collect();
        })
        .await
}
