//! A new action's rows: the action, its entities and its chunks, written in one
//! transaction with the audit entry of its preview.

use chrono::{DateTime, SecondsFormat, Utc};
use runboard_model::{
    ActionId, ActionState, Digest, EntityState, IdempotencyKey, PersonKey, ServiceName,
};

use super::ActionStore;
use crate::actions::{ActionError, Found};
use crate::audit::{NewAuditEntry, append_audit};
use crate::db::{BeginWrite, Transaction, on_pool, on_transaction};

/// Entity rows one INSERT writes: 10 parameters each, well inside both databases' limits.
const ENTITY_ROWS_PER_INSERT: usize = 500;

/// Chunk rows one INSERT writes: 11 parameters each, well inside both databases' limits.
const CHUNK_ROWS_PER_INSERT: usize = 500;

/// Writes the entities `found` as pending rows of action `id`, numbered from `position` on
/// (left past them), each in the chunk `chunk_of(position)`. Many rows a statement: 100,000
/// single inserts would take most of a preview.
macro_rules! insert_entities {
    ($connection:expr, $id:expr, $found:expr, $position:ident, $chunk_of:expr, $now:expr) => {
        for rows in $found.chunks(ENTITY_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO action_entity (action_id, entity_id, position, chunk, state, attempts,
                     updated_at, found, held_amount, held_currency) ",
            );
            insert.push_values(rows, |mut row, entity: &Found| {
                row.push_bind($id)
                    .push_bind(&entity.id)
                    .push_bind($position)
                    .push_bind(($chunk_of)($position))
                    .push_bind(EntityState::Pending.as_str())
                    .push_bind(0_i32)
                    .push_bind($now)
                    .push_bind(&entity.state)
                    .push_bind(entity.held.as_ref().map(|m| m.amount.to_string()))
                    .push_bind(entity.held.as_ref().map(|m| m.currency.clone()));
                $position += 1;
            });
            insert.build().execute(&mut *$connection).await?;
        }
    };
}

/// Writes `members` as pending rows of `chunk` of action `id` with PostgreSQL's COPY, in
/// its text format, numbered from `position` on.
async fn copy_entities(
    connection: &mut sqlx::PgConnection,
    id: &ActionId,
    members: &[Found],
    position: i32,
    chunk: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (id, now) = (
        id.to_string(),
        now.to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    let mut rows = String::with_capacity(members.len() * 160);
    for (member, position) in members.iter().zip(position..) {
        let held = member.held.as_ref();
        for (column, value) in [
            Some(id.as_str()),
            Some(member.id.as_str()),
            Some(&*position.to_string()),
            Some(&*chunk.to_string()),
            Some(EntityState::Pending.as_str()),
            Some("0"),
            Some(now.as_str()),
            member.state.as_deref(),
            held.map(|m| m.amount.to_string()).as_deref(),
            held.map(|m| m.currency.as_str()),
        ]
        .into_iter()
        .enumerate()
        {
            if column > 0 {
                rows.push('\t');
            }
            push_copy_text(&mut rows, value);
        }
        rows.push('\n');
    }
    let mut copy = connection
        .copy_in_raw(
            "COPY action_entity (action_id, entity_id, position, chunk, state, attempts,
                 updated_at, found, held_amount, held_currency) FROM STDIN",
        )
        .await?;
    copy.send(rows.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// `value` as one column of COPY's text format: `\N` for none, and the characters that
/// separate columns and rows (or escape) escaped, so that an ID or a state says anything.
fn push_copy_text(row: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        row.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => row.push_str("\\\\"),
            '\t' => row.push_str("\\t"),
            '\n' => row.push_str("\\n"),
            '\r' => row.push_str("\\r"),
            c => row.push(c),
        }
    }
}

/// A new action as its preview writes it, in the state `previewed`.
pub(crate) struct NewAction<'a> {
    pub(crate) id: &'a ActionId,
    pub(crate) service: &'a ServiceName,
    /// The mutation, or the runbook's label.
    pub(crate) mutation: &'a str,
    pub(crate) requester: &'a PersonKey,
    pub(crate) requester_name: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) entity_count: i64,
    pub(crate) dry_run_offered: bool,
    /// The preview as JSON, its digest and the approvals it needs: empty (and 0) while a
    /// mutation's preview is written, filled in by [`PreviewWrite::finish`].
    pub(crate) preview: &'a str,
    pub(crate) digest: &'a str,
    pub(crate) approvals_needed: u32,
    pub(crate) now: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) request_key: Option<&'a str>,
    pub(crate) request_digest: Option<&'a str>,
}

/// One chunk of a mutation's preview: its number, its members, and what its dry run said
/// (effects as JSON), if there was one.
pub(crate) struct NewChunk<'a> {
    pub(crate) number: i32,
    pub(crate) members: &'a [Found],
    pub(crate) planned: Option<&'a str>,
}

/// One call of a runbook's preview: `(step, chunk, entity, planned, variables)`, the step
/// counted from 0, the planned effects and the variables as JSON.
pub(crate) type RunbookCall<'a> = (usize, i32, &'a str, Option<String>, String);

/// A mutation's preview being written, chunk by chunk as its dry run answers: nothing is
/// kept unless [`PreviewWrite::finish`] commits it.
pub(crate) struct PreviewWrite {
    tx: Transaction,
    id: ActionId,
    now: DateTime<Utc>,
    /// The position of the next entity.
    position: i32,
}

/// Inserts the action's row.
macro_rules! insert_action {
    ($connection:expr, $action:expr) => {{
        let action: &NewAction<'_> = $action;
        sqlx::query(
            "INSERT INTO action (id, service, mutation, state, requester, requester_name, preview,
                 digest, dry_run_offered, approvals_needed, created_at, expires_at, updated_at, reason,
                 entity_count, request_key, request_digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $13, $14, $15, $16)",
        )
        .bind(action.id)
        .bind(action.service)
        .bind(action.mutation)
        .bind(ActionState::Previewed.as_str())
        .bind(action.requester)
        .bind(action.requester_name)
        .bind(action.preview)
        .bind(action.digest)
        .bind(action.dry_run_offered)
        .bind(i32::try_from(action.approvals_needed).unwrap_or(i32::MAX))
        .bind(action.now)
        .bind(action.expires_at)
        .bind(action.reason)
        .bind(action.entity_count)
        .bind(action.request_key)
        .bind(action.request_digest)
        .execute(&mut *$connection)
        .await?;
    }};
}

impl ActionStore<'_> {
    /// Begins a mutation's preview: the action first, for its chunks to refer to; its
    /// summary, digest and approvals are known at the end and filled in then, before anyone
    /// can see it.
    pub(crate) async fn begin_preview(
        &self,
        action: &NewAction<'_>,
    ) -> Result<PreviewWrite, ActionError> {
        let mut tx = self.pool.begin().await?;
        on_transaction!(&mut tx, |connection| insert_action!(connection, action));
        Ok(PreviewWrite {
            tx,
            id: action.id.clone(),
            now: action.now,
            position: 0,
        })
    }

    /// Writes a runbook's preview whole: the action (with its preview, digest and
    /// approvals), its entities, every step's call, and the audit entry.
    pub(crate) async fn insert_runbook_preview(
        &self,
        action: &NewAction<'_>,
        found: &[Found],
        calls: &[RunbookCall<'_>],
        audit: &NewAuditEntry<'_>,
    ) -> Result<(), ActionError> {
        let (id, now) = (action.id, action.now);
        on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            insert_action!(tx, action);
            let mut position = 0_i32;
            insert_entities!(tx, id, found, position, |p: i32| p, now);
            for rows in calls.chunks(CHUNK_ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO action_chunk (action_id, chunk, step, entity_id, variables, state,
                         members, idempotency_key, planned, attempts, updated_at) ",
                );
                insert.push_values(
                    rows,
                    |mut row, (step, chunk, entity, planned, variables)| {
                        row.push_bind(id)
                            .push_bind(*chunk)
                            .push_bind(i32::try_from(*step).unwrap_or(i32::MAX))
                            .push_bind(*entity)
                            .push_bind(variables)
                            .push_bind(EntityState::Pending.as_str())
                            .push_bind(1_i32)
                            .push_bind(IdempotencyKey::of_step_call(id, *step, *chunk))
                            .push_bind(planned)
                            .push_bind(0_i32)
                            .push_bind(now);
                    },
                );
                insert.build().execute(&mut *tx).await?;
            }
            append_audit!(tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }
}

impl PreviewWrite {
    /// Writes one chunk and its entities, pending.
    pub(crate) async fn add_chunk(&mut self, chunk: NewChunk<'_>) -> Result<(), ActionError> {
        let (id, now, mut position) = (&self.id, self.now, self.position);
        let members = i32::try_from(chunk.members.len()).unwrap_or(i32::MAX);
        on_transaction!(&mut self.tx, |connection| {
            sqlx::query(
                "INSERT INTO action_chunk (action_id, chunk, parent, state, members, idempotency_key,
                     planned, outcome, attempts, sent_epoch, updated_at, first_position, last_position)
                 VALUES ($1, $2, NULL, $3, $4, $5, $6, NULL, 0, NULL, $7, $8, $9)",
            )
            .bind(id)
            .bind(chunk.number)
            .bind(EntityState::Pending.as_str())
            .bind(members)
            .bind(IdempotencyKey::of_call(id, chunk.number))
            .bind(chunk.planned)
            .bind(now)
            .bind(position)
            .bind(position.saturating_add(members - 1))
            .execute(&mut *connection)
            .await?;
        });
        match &mut self.tx {
            // COPY: a million rows take a third less time than as INSERTs (README, "Beyond
            // 100,000 entities"), and nothing is planned per statement.
            Transaction::Postgres(connection) => {
                copy_entities(connection, id, chunk.members, position, chunk.number, now).await?;
                position += members;
            }
            Transaction::Sqlite(connection) => {
                let connection = &mut **connection;
                insert_entities!(
                    connection,
                    id,
                    chunk.members,
                    position,
                    |_| chunk.number,
                    now
                );
            }
        }
        self.position = position;
        Ok(())
    }

    /// Fills in the preview (as JSON), its digest, its entity count (known once every chunk is
    /// in), the approvals it needs and how long its dry run took, and commits the whole with
    /// its audit entry.
    pub(crate) async fn finish(
        mut self,
        preview: &str,
        digest: &Digest,
        entity_count: i64,
        approvals_needed: u32,
        dry_run_ms: Option<i64>,
        audit: &NewAuditEntry<'_>,
    ) -> Result<(), ActionError> {
        let id = &self.id;
        on_transaction!(&mut self.tx, |connection| {
            sqlx::query(
                "UPDATE action SET preview = $1, digest = $2, approvals_needed = $3, dry_run_ms = $5,
                     entity_count = $6
                 WHERE id = $4",
            )
            .bind(preview)
            .bind(digest)
            .bind(i32::try_from(approvals_needed).unwrap_or(i32::MAX))
            .bind(id)
            .bind(dry_run_ms)
            .bind(entity_count)
            .execute(&mut *connection)
            .await?;
            append_audit!(connection, audit);
        });
        self.tx.commit().await?;
        Ok(())
    }
}
