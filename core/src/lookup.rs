//! Lookup: IDs pasted from anywhere (log lines, CSV, JSON, a spreadsheet column),
//! found in every service at once.

use std::collections::BTreeSet;

use regex::Regex;
use runboard_model::{LookupMatches, LookupResult};

use crate::services::Fleet;

/// The most IDs one lookup takes: enough for a day of incident logs, and a bound on the work.
pub const MAX_IDS: usize = 10_000;

/// UUIDs in any case, with hyphens, wherever they stand in the text.
fn uuid() -> Regex {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("a valid pattern")
}

/// The distinct IDs in `text`, in the order they first appear: UUIDs (lowercased, as
/// services store them) and whatever matches one of `patterns`.
pub fn extract_ids(text: &str, patterns: &[Regex]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut found: Vec<(usize, String)> = uuid()
        .find_iter(text)
        .map(|m| (m.start(), m.as_str().to_ascii_lowercase()))
        .collect();
    for pattern in patterns {
        found.extend(
            pattern
                .find_iter(text)
                .map(|m| (m.start(), m.as_str().to_owned())),
        );
    }
    found.sort_by_key(|(at, _)| *at);
    found
        .into_iter()
        .filter_map(|(_, id)| seen.insert(id.clone()).then_some(id))
        .collect()
}

/// Why a lookup was not made.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(
        "the text holds {0} IDs; look up at most {MAX_IDS} at a time, e.g. by splitting the paste"
    )]
    TooManyIds(usize),
}

/// Finds every ID in every service; a service that cannot be read says why in its place.
pub async fn lookup(fleet: &Fleet, text: &str) -> Result<LookupResult, LookupError> {
    let ids = extract_ids(text, &fleet.id_patterns());
    if ids.len() > MAX_IDS {
        return Err(LookupError::TooManyIds(ids.len()));
    }
    let reads = fleet.services().into_iter().map(|connector| {
        let ids = &ids;
        async move {
            let (sagas, items) =
                tokio::join!(connector.find_sagas(ids), connector.find_batch_items(ids));
            match (sagas, items) {
                (Ok(sagas), Ok(items)) => LookupMatches {
                    service: connector.name().to_string(),
                    sagas,
                    batch_items: items,
                    error: None,
                },
                (Err(e), _) | (_, Err(e)) => LookupMatches {
                    service: connector.name().to_string(),
                    sagas: Vec::new(),
                    batch_items: Vec::new(),
                    error: Some(e.problem.to_string()),
                },
            }
        }
    });
    let services = futures_util::future::join_all(reads).await;
    let matched: BTreeSet<&str> = services
        .iter()
        .flat_map(|s| {
            s.sagas
                .iter()
                .map(|saga| saga.saga_id.as_str())
                .chain(s.batch_items.iter().map(|(_, item)| item.item_id.as_str()))
        })
        .collect();
    let not_found = ids
        .iter()
        .filter(|id| !matched.contains(id.as_str()))
        .cloned()
        .collect();
    Ok(LookupResult {
        ids: ids.len(),
        services,
        not_found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_out_of_any_text_once_and_in_order() {
        let text = r#"2026-11-24T08:30:00Z ERROR saga=7F1C3B2A-0D4E-4B5F-8A6B-1C2D3E4F5A6B failed
{"saga_id": "0b9e2c1d-3f4a-4b5c-8d6e-7f8091a2b3c4", "retry": "7f1c3b2a-0d4e-4b5f-8a6b-1c2d3e4f5a6b"}
id;amount
PAY-000123;10.00
not-a-uuid-7f1c3b2a0d4e4b5f8a6b1c2d3e4f5a6b"#;
        let patterns = [Regex::new(r"\bPAY-\d{6}\b").unwrap()];
        assert_eq!(
            extract_ids(text, &patterns),
            [
                "7f1c3b2a-0d4e-4b5f-8a6b-1c2d3e4f5a6b",
                "0b9e2c1d-3f4a-4b5c-8d6e-7f8091a2b3c4",
                "PAY-000123",
            ]
        );
    }

    #[test]
    fn ten_thousand_ids_are_extracted() {
        let text: String = (0..10_000)
            .map(|i| format!("line {i}: 00000000-0000-4000-8000-{i:012}\n"))
            .collect();
        assert_eq!(extract_ids(&text, &[]).len(), 10_000);
    }
}
