//! Lists as CSV files, for spreadsheets and notebooks: every list route answers CSV when
//! asked with `?format=csv` or an `Accept` header that prefers `text/csv`, with the same
//! filters as its JSON. The file is the whole list, not a page, written as its rows come:
//! a header row, RFC 4180 quoting, times in RFC 3339 UTC, money as exact decimals with
//! the currency in a column of its own, and text that came from a service or a person
//! neutralised so that no spreadsheet runs it (OWASP's advice on CSV injection).

mod rows;

use std::borrow::Cow;
use std::fmt::Display;

use axum::body::{Body, Bytes};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{Stream, StreamExt, stream};
use http::{HeaderMap, HeaderValue, header};
use runboard_model::Money;

use crate::error::{ApiError, bad_request};

pub(crate) use rows::{EntityRow, HeldRow, LookupRow, ServiceFundsRow};

/// What a list answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
}

impl Format {
    /// The format a request asks for: `?format=` if given (`value`), else CSV where the
    /// `Accept` header prefers `text/csv`, else JSON.
    pub(crate) fn asked(value: Option<&str>, headers: &HeaderMap) -> Result<Self, ApiError> {
        match value {
            Some("csv") => Ok(Self::Csv),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(bad_request(format!(
                "format={other:?} is not a format Runboard answers in; use format=json (the default) or format=csv"
            ))),
            None => Ok(
                if headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .any(prefers_csv)
                {
                    Self::Csv
                } else {
                    Self::Json
                },
            ),
        }
    }
}

/// Whether an `Accept` header ranks `text/csv` above JSON: above `application/json`, and at
/// least as high as a wildcard (which a browser sends with everything).
fn prefers_csv(accept: &str) -> bool {
    let (mut csv, mut json, mut wildcard) = (0.0_f32, 0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let best = match media.as_str() {
            "text/csv" => &mut csv,
            "application/json" => &mut json,
            "*/*" | "application/*" | "text/*" => &mut wildcard,
            _ => continue,
        };
        *best = best.max(q);
    }
    csv > 0.0 && csv > json && csv >= wildcard
}

/// A list's row as a CSV record.
pub(crate) trait CsvRow: Send + 'static {
    /// The header row.
    const COLUMNS: &'static [&'static str];
    fn cells(&self, cells: &mut Cells);
}

/// The cells of the records being written.
pub(crate) struct Cells {
    writer: csv::Writer<Vec<u8>>,
}

/// The characters a spreadsheet takes as the start of a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Text as a spreadsheet shows it rather than runs it: prefixed with `'` where it would
/// begin a formula.
fn neutralised(text: &str) -> Cow<'_, str> {
    if text.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

impl Cells {
    fn new() -> Self {
        Self {
            writer: csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::with_capacity(64 * 1024)),
        }
    }

    fn field(&mut self, field: &str) {
        self.writer
            .write_field(field)
            .expect("writing to memory cannot fail");
    }

    /// Text a service or a person wrote (IDs, names, messages): neutralised.
    pub(crate) fn text(&mut self, text: &str) {
        self.field(&neutralised(text));
    }

    pub(crate) fn opt_text(&mut self, text: Option<&str>) {
        self.text(text.unwrap_or_default());
    }

    /// A value Runboard itself words or counts (a state, a number): as it is.
    pub(crate) fn value(&mut self, value: impl Display) {
        self.field(&value.to_string());
    }

    pub(crate) fn time(&mut self, at: DateTime<Utc>) {
        self.field(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }

    pub(crate) fn opt_time(&mut self, at: Option<DateTime<Utc>>) {
        match at {
            Some(at) => self.time(at),
            None => self.field(""),
        }
    }

    /// Two cells: the amount and its currency. The amount is not neutralised though a
    /// negative one begins with `-`: it is a decimal Runboard parsed and writes itself (no
    /// formula can hide in it), and a notebook must read it as the number it is.
    pub(crate) fn money(&mut self, money: Option<&Money>) {
        match money {
            Some(money) => {
                self.value(money.amount);
                self.text(&money.currency);
            }
            None => {
                self.field("");
                self.field("");
            }
        }
    }

    fn end_record(&mut self) {
        self.writer
            .write_record(None::<&[u8]>)
            .expect("writing to memory cannot fail");
    }

    fn into_bytes(self) -> Bytes {
        Bytes::from(
            self.writer
                .into_inner()
                .expect("writing to memory cannot fail"),
        )
    }
}

/// The CSV text of `rows`, after the header row where `header` is set.
fn encode<R: CsvRow>(header: bool, rows: &[R]) -> Bytes {
    let mut cells = Cells::new();
    if header {
        for column in R::COLUMNS {
            cells.field(column);
        }
        cells.end_record();
    }
    for row in rows {
        row.cells(&mut cells);
        cells.end_record();
    }
    cells.into_bytes()
}

/// The name a CSV file is saved under: `<subject>-<list>-<UTC time>.csv`, where the
/// subject is the service (or `runboard` for lists across the fleet). IDs in the list's
/// name are a service's text: anything but letters, digits, `-`, `_` and `.` becomes `_`.
pub(crate) fn file_name(subject: &str, list: &str) -> String {
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-{}.csv",
        safe(subject),
        safe(list),
        Utc::now().format("%Y%m%dT%H%M%SZ")
    )
}

/// A whole list as a CSV file.
pub(crate) fn file<R: CsvRow>(name: &str, rows: &[R]) -> Response {
    response(name, Body::from(encode(true, rows)))
}

/// A list read in pages as a CSV file written as the pages come. The first page is read
/// before answering, so that a list that cannot be read at all is refused with its error;
/// a page that fails later ends the body with an error, so that the client sees a broken
/// download, never a file silently cut short.
pub(crate) async fn streamed<R, E>(
    name: String,
    pages: impl Stream<Item = Result<Vec<R>, E>> + Send + 'static,
    refuse: impl FnOnce(E) -> ApiError,
) -> Result<Response, ApiError>
where
    R: CsvRow,
    E: Display + Send + 'static,
{
    // Fused: a list that ended is asked again (by `chain`, and by the compression layer
    // after the body's end), and an unfold stream panics when polled past its end.
    let mut pages = Box::pin(pages.fuse());
    let first = match pages.next().await {
        Some(Ok(rows)) => rows,
        Some(Err(e)) => return Err(refuse(e)),
        None => Vec::new(),
    };
    let first = encode(true, &first);
    let file = name.clone();
    let rest = pages.map(move |page| match page {
        Ok(rows) => Ok(encode(false, &rows)),
        Err(error) => {
            tracing::error!(%error, file, "an export broke off; the client gets a broken download");
            Err(std::io::Error::other(format!(
                "the export broke off: {error}"
            )))
        }
    });
    let body = Body::from_stream(stream::once(async { Ok(first) }).chain(rest));
    Ok(response(&name, body))
}

fn response(name: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    // File names are plain ASCII (see `file_name`).
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_other_text_kept() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralised(formula), format!("'{formula}"));
        }
        assert_eq!(neutralised("insufficient funds"), "insufficient funds");
        assert_eq!(neutralised(""), "");
    }

    #[test]
    fn accept_headers_choose_csv_only_when_they_prefer_it() {
        assert!(prefers_csv("text/csv"));
        assert!(prefers_csv("text/csv, application/json;q=0.5"));
        assert!(prefers_csv("text/csv, */*"));
        assert!(!prefers_csv("application/json, text/csv;q=0.9"));
        assert!(!prefers_csv(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!prefers_csv("text/csv;q=0"));
    }
}
