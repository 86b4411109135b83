//! The append-only, hash-chained audit log: every step of every action, and who took it.
//!
//! Entry `n` stores `hash = SHA-256(hash of entry n-1, "\n", [n, at, actor, action, kind, detail])`.
//! [`Store::verify_audit_chain`] recomputes every hash from the stored fields: an entry
//! edited, deleted or inserted by hand breaks the chain at that entry, and the head row
//! catches entries cut off the end.

use chrono::{DateTime, SecondsFormat, Utc};
use runboard_model::{ActionId, PersonKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{BeginWrite, on_pool};
use crate::store::{Store, StoreError};

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One step, as it is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Who took the step, as [`Actor::as_str`] wrote it.
    pub actor: String,
    pub action_id: Option<String>,
    /// What happened: `action.previewed`, `action.approved`, …
    pub kind: String,
    /// The step's particulars as JSON text, exactly as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Who takes a step: a person, or Runboard itself (the execution engine, expiry).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Person(&'a PersonKey),
    Runboard,
}

impl<'a> Actor<'a> {
    /// As the log keeps it: the person's key, or `runboard`.
    pub fn as_str(self) -> &'a str {
        match self {
            Self::Person(key) => key.as_str(),
            Self::Runboard => "runboard",
        }
    }
}

/// A step to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor: Actor<'a>,
    pub action_id: Option<&'a ActionId>,
    pub kind: &'a str,
    pub detail: serde_json::Value,
}

/// What checking the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChainCheck {
    Intact { entries: i64 },
    Broken { seq: i64, reason: String },
}

fn entry_hash(prev_hash: &str, seq: i64, at: DateTime<Utc>, entry: &Fields<'_>) -> String {
    let fields = serde_json::to_string(&(
        seq,
        at.to_rfc3339_opts(SecondsFormat::Micros, true),
        entry.actor,
        entry.action_id,
        entry.kind,
        entry.detail,
    ))
    .expect("strings serialize");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(fields.as_bytes());
    hex(&hasher.finalize())
}

/// Bytes (a digest) as lowercase hexadecimal, the form every hash of Runboard's is kept in.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Fields<'a> {
    actor: &'a str,
    action_id: Option<&'a str>,
    kind: &'a str,
    detail: &'a str,
}

/// Appends `$entry` (a [`NewAuditEntry`]) inside the open transaction `$tx`, so that a
/// step and its record commit together or not at all. Evaluates to the new entry's seq.
macro_rules! append_audit {
    ($tx:expr, $entry:expr) => {{
        let entry: &$crate::audit::NewAuditEntry<'_> = $entry;
        let (seq, prev_hash): (i64, String) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut *$tx)
                .await?;
        let at = $crate::audit::now();
        let detail = entry.detail.to_string();
        let hash = $crate::audit::hash_of(&prev_hash, seq, at, entry, &detail);
        sqlx::query(
            "INSERT INTO audit_entry (seq, at, actor, action_id, kind, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(at)
        .bind(entry.actor.as_str())
        .bind(entry.action_id)
        .bind(entry.kind)
        .bind(&detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
        seq
    }};
}
pub(crate) use append_audit;

/// Now, to the microsecond both databases keep, so the hashed time is the stored time.
pub(crate) fn now() -> DateTime<Utc> {
    as_stored(Utc::now())
}

/// `at` to the microsecond both databases keep: what reading it back gives.
pub(crate) fn as_stored(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

pub(crate) fn hash_of(
    prev_hash: &str,
    seq: i64,
    at: DateTime<Utc>,
    entry: &NewAuditEntry<'_>,
    detail: &str,
) -> String {
    entry_hash(
        prev_hash,
        seq,
        at,
        &Fields {
            actor: entry.actor.as_str(),
            action_id: entry.action_id.map(ActionId::as_str),
            kind: entry.kind,
            detail,
        },
    )
}

const COLUMNS: &str = "seq, at, actor, action_id, kind, detail, prev_hash, hash";

impl Store {
    /// Appends one entry on its own (steps that change other tables append inside their
    /// own transaction with [`append_audit!`]).
    pub async fn append_audit(&self, entry: &NewAuditEntry<'_>) -> Result<i64, StoreError> {
        Ok(on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let seq = append_audit!(tx, entry);
            tx.commit().await?;
            seq
        }))
    }

    /// The entries about one action, oldest first.
    pub async fn audit_of_action(
        &self,
        action_id: &ActionId,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let query = format!("SELECT {COLUMNS} FROM audit_entry WHERE action_id = $1 ORDER BY seq");
        Ok(on_pool!(self.pool, |pool| {
            sqlx::query_as(&query)
                .bind(action_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Up to `limit` entries after the entry `after` (0 from the start), oldest first.
    pub async fn audit_page(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let query =
            format!("SELECT {COLUMNS} FROM audit_entry WHERE seq > $1 ORDER BY seq LIMIT $2");
        Ok(on_pool!(self.pool, |pool| {
            sqlx::query_as(&query)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }))
    }

    /// Recomputes the whole chain from the stored fields, in pages, and says where it first breaks.
    pub async fn verify_audit_chain(&self) -> Result<ChainCheck, StoreError> {
        const PAGE: u32 = 5_000;
        let mut expected_prev = GENESIS.to_owned();
        let mut last_seq = 0_i64;
        loop {
            let page = self.audit_page(last_seq, PAGE).await?;
            for entry in &page {
                let broken = |reason: String| {
                    Ok(ChainCheck::Broken {
                        seq: entry.seq,
                        reason,
                    })
                };
                if entry.seq != last_seq + 1 {
                    return broken(format!(
                        "entry {} follows entry {last_seq}: entries are missing or were inserted",
                        entry.seq
                    ));
                }
                if entry.prev_hash != expected_prev {
                    return broken("it does not point at the entry before it".into());
                }
                let fields = Fields {
                    actor: &entry.actor,
                    action_id: entry.action_id.as_deref(),
                    kind: &entry.kind,
                    detail: &entry.detail,
                };
                if entry_hash(&entry.prev_hash, entry.seq, entry.at, &fields) != entry.hash {
                    return broken("its fields do not match its hash: it was edited".into());
                }
                expected_prev.clone_from(&entry.hash);
                last_seq = entry.seq;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self.pool, |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        if head_seq != last_seq || head_hash != expected_prev {
            return Ok(ChainCheck::Broken {
                seq: last_seq + 1,
                reason: format!(
                    "the log ends at entry {last_seq} but {head_seq} were written: entries were cut off the end"
                ),
            });
        }
        Ok(ChainCheck::Intact { entries: last_seq })
    }
}
