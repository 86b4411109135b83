//! `runboard sagas|batches|funds|alerts`: the lists of the screens in a terminal, each a
//! client of the same API route, as aligned columns, the API's JSON, or the server's CSV.

use std::io::{IsTerminal, Write};

use clap::{Args, Subcommand, ValueEnum};
use runboard_core::connector::MAX_PAGE;
use runboard_model::{AlertBoard, BatchProgress, Saga, ServiceFunds, query_string, url_encode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::action_cli::{harmful, printable};
use crate::cli_client::{Runboard, RunboardArgs};

#[derive(Debug, Subcommand)]
pub enum Read {
    /// A service's sagas, filtered as on its screen: every one that matches, page after page.
    Sagas {
        /// The service, as Runboard names it: payments
        service: String,
        /// running, stuck, failed or completed.
        #[arg(long)]
        status: Option<String>,
        /// The saga type.
        #[arg(long = "type")]
        saga_type: Option<String>,
        /// The step the sagas are at.
        #[arg(long)]
        step: Option<String>,
        /// Text the error message contains.
        #[arg(long)]
        error: Option<String>,
        /// Started at least this long ago: 30m, 2h, 3d.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Started at most this long ago.
        #[arg(long, value_name = "AGE")]
        newer_than: Option<String>,
        /// newest (the default) or oldest first.
        #[arg(long)]
        sort: Option<String>,
        #[command(flatten)]
        shown: Shown,
    },
    /// A service's batches with their progress.
    Batches {
        service: String,
        #[command(flatten)]
        shown: Shown,
    },
    /// Money held by failed and stuck sagas, per service and currency.
    Funds {
        #[command(flatten)]
        shown: Shown,
    },
    /// Open alerts and those resolved lately.
    Alerts {
        #[command(flatten)]
        shown: Shown,
    },
}

#[derive(Debug, Args)]
pub struct Shown {
    /// table: aligned columns; json: the API's JSON; csv: the server's CSV export.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    format: Format,
    #[command(flatten)]
    runboard: RunboardArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

pub async fn run(read: Read) -> Result<(), String> {
    match read {
        Read::Sagas {
            service,
            status,
            saga_type,
            step,
            error,
            older_than,
            newer_than,
            sort,
            shown,
        } => {
            let filters = query_string([
                ("status", status.as_deref()),
                ("type", saga_type.as_deref()),
                ("step", step.as_deref()),
                ("error", error.as_deref()),
                ("older_than", older_than.as_deref()),
                ("newer_than", newer_than.as_deref()),
                ("sort", sort.as_deref()),
            ]);
            let path = format!("api/v1/services/{}/sagas{filters}", url_encode(&service));
            let runboard = shown.runboard.connect().await?;
            let url = runboard.address(&path)?;
            if let Format::Csv = shown.format {
                return csv(&runboard, url).await;
            }
            let sagas = every_page(&runboard, url).await?;
            match shown.format {
                Format::Table => {
                    let sagas: Vec<Saga> = typed(Value::Array(sagas))?;
                    let rows = sagas.into_iter().map(|s| {
                        vec![
                            s.saga_id,
                            s.saga_type,
                            s.current_step,
                            s.status.to_string(),
                            s.created_at.to_rfc3339(),
                            s.updated_at.to_rfc3339(),
                            s.error_message.unwrap_or_default(),
                        ]
                    });
                    let headers = [
                        "ID", "TYPE", "STEP", "STATUS", "CREATED", "UPDATED", "ERROR",
                    ];
                    print!("{}", table(&headers, rows));
                }
                _ => println!(
                    "{}",
                    json(&serde_json::json!({ "sagas": sagas, "next": null }))
                ),
            }
            Ok(())
        }
        Read::Batches { service, shown } => {
            let path = format!("api/v1/services/{}/batches", url_encode(&service));
            show(shown, &path, |mut answer| {
                let batches: Vec<BatchProgress> = typed(answer["batches"].take())?;
                let rows = batches.into_iter().map(|b| {
                    vec![
                        b.batch_id,
                        b.name,
                        b.started_at.to_rfc3339(),
                        b.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        b.done.to_string(),
                        b.failed.to_string(),
                        b.pending.to_string(),
                    ]
                });
                let headers = [
                    "ID", "NAME", "STARTED", "FINISHED", "DONE", "FAILED", "PENDING",
                ];
                Ok(table(&headers, rows))
            })
            .await
        }
        Read::Funds { shown } => {
            show(shown, "api/v1/funds", |mut answer| {
                let services: Vec<ServiceFunds> = typed(answer["services"].take())?;
                let rows = services.into_iter().flat_map(|s| {
                    let polled = s.polled_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                    let service = s.service.to_string();
                    s.withheld_funds.into_iter().map(move |money| {
                        vec![
                            service.clone(),
                            money.currency,
                            money.amount.to_string(),
                            polled.clone(),
                        ]
                    })
                });
                Ok(table(&["SERVICE", "CURRENCY", "HELD", "POLLED"], rows))
            })
            .await
        }
        Read::Alerts { shown } => {
            show(shown, "api/v1/alerts", |answer| {
                let board: AlertBoard = typed(answer)?;
                let rows = board.alerts.into_iter().map(|a| {
                    vec![
                        a.id.to_string(),
                        a.service.to_string(),
                        a.headline(),
                        a.state.as_str().to_owned(),
                        a.fired_at.to_rfc3339(),
                        a.summary,
                    ]
                });
                let headers = ["ID", "SERVICE", "ALERT", "STATE", "FIRED", "SUMMARY"];
                Ok(table(&headers, rows))
            })
            .await
        }
    }
}

/// A list the API answers in one piece, shown as `as_table` makes it, as JSON or as CSV.
async fn show(
    shown: Shown,
    path: &str,
    as_table: impl FnOnce(Value) -> Result<String, String>,
) -> Result<(), String> {
    let runboard = shown.runboard.connect().await?;
    let url = runboard.address(path)?;
    match shown.format {
        Format::Csv => csv(&runboard, url).await,
        Format::Json => {
            let answer = runboard.call_at(reqwest::Method::GET, url, None).await?;
            println!("{}", json(&answer));
            Ok(())
        }
        Format::Table => {
            let answer = runboard.call_at(reqwest::Method::GET, url, None).await?;
            print!("{}", as_table(answer)?);
            Ok(())
        }
    }
}

/// Every saga of a keyset-paged list: page after page, each from the last one's `next`.
async fn every_page(runboard: &Runboard, url: Url) -> Result<Vec<Value>, String> {
    let mut sagas = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut page_url = url.clone();
        page_url
            .query_pairs_mut()
            .append_pair("limit", &MAX_PAGE.to_string());
        if let Some(after) = &after {
            page_url.query_pairs_mut().append_pair("after", after);
        }
        let mut page: Value = runboard
            .call_at(reqwest::Method::GET, page_url.clone(), None)
            .await?;
        match page["sagas"].take() {
            Value::Array(more) => sagas.extend(more),
            _ => return Err(format!("Runboard's answer from {page_url} holds no sagas")),
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(sagas),
        }
    }
}

/// Streams the server's CSV export of `url` to stdout as it comes.
async fn csv(runboard: &Runboard, mut url: Url) -> Result<(), String> {
    url.query_pairs_mut().append_pair("format", "csv");
    let mut response = runboard
        .send(reqwest::Method::GET, url.clone(), "text/csv", None)
        .await?;
    let stdout = std::io::stdout();
    // In a terminal a service's words are shown, never obeyed; a file gets them as sent.
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let broke = |e: reqwest::Error| format!("Runboard's CSV from {url} broke off: {e}");
    let mut pending = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(broke)? {
        let written = if terminal {
            pending.extend_from_slice(&chunk);
            let lines = pending
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            let text = String::from_utf8_lossy(&pending[..lines]).into_owned();
            pending.drain(..lines);
            text.split_inclusive('\n').try_for_each(|line| {
                writeln!(out, "{}", printable(line.trim_end_matches(['\r', '\n'])))
            })
        } else {
            out.write_all(&chunk)
        };
        written.map_err(|e| format!("cannot write the CSV: {e}"))?;
    }
    if !pending.is_empty() {
        write!(out, "{}", printable(&String::from_utf8_lossy(&pending)))
            .map_err(|e| format!("cannot write the CSV: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write the CSV: {e}"))
}

fn typed<T: DeserializeOwned>(answer: Value) -> Result<T, String> {
    serde_json::from_value(answer)
        .map_err(|e| format!("Runboard's answer is not what was expected: {e}"))
}

/// JSON for a terminal: what a terminal would act on (a bidirectional override, a C1
/// control) escaped as JSON escapes it, so the text stays the same JSON.
fn json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    if !text.contains(|c: char| c != '\n' && harmful(c)) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c != '\n' && harmful(c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Rows under their headers in aligned columns, each cell shown harmlessly.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.map(|row| {
            row.iter()
                .map(|cell| printable(cell).into_owned())
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_a_services_words_cannot_move_the_cursor() {
        let rows = vec![
            vec!["s-1".to_owned(), "ok".to_owned()],
            vec!["saga-22".to_owned(), "boom\u{1b}[2K\u{202e}".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "ERROR"], rows.into_iter()),
            "ID       ERROR\ns-1      ok\nsaga-22  boom\\u{1b}[2K\\u{202e}\n"
        );
    }

    #[test]
    fn json_for_a_terminal_escapes_what_a_terminal_acts_on_and_stays_the_same_json() {
        let value = serde_json::json!({ "error": "a\u{202e}b\u{9b}c\u{1b}" });
        let text = json(&value);
        assert!(!text.contains(['\u{202e}', '\u{9b}', '\u{1b}']), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
