//! The one statement that writes `action.state`, and what commits with it: the entity
//! holds, a new preview's rows, an approval, the end of the engine's lease, the audit
//! entry. The rules (which move the lifecycle allows, what follows it) are
//! [`App::transition`](crate::App::transition)'s.

use runboard_model::{ActionState, Digest, PersonKey};

use super::{ActionStore, END_LEASE, fenced};
use crate::actions::{ActionError, Transition};
use crate::audit::{NewAuditEntry, append_audit};
use crate::db::{BeginWrite, on_pool};

/// An approver's approval of the preview with `digest`, recorded with the move to
/// `approved`: the move is made only once the action has as many approvals of that digest
/// as it needs.
pub(crate) struct NewApproval<'a> {
    pub(crate) approver: &'a PersonKey,
    pub(crate) approver_name: &'a str,
    pub(crate) digest: &'a Digest,
}

/// What [`ActionStore::move_state`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveOutcome {
    /// The action is in the new state.
    Moved,
    /// The approval is recorded, and the action still needs more: it stays where it was.
    ApprovalRecorded,
    /// Nothing is written: the action was no longer in `from` (or no longer has the
    /// approved digest), or the engine's fence no longer holds.
    Refused,
}

impl ActionStore<'_> {
    /// Makes the move `t` in one transaction, as [`MoveOutcome`] says. The caller has
    /// checked it against the lifecycle.
    pub(crate) async fn move_state(&self, t: &Transition<'_>) -> Result<MoveOutcome, ActionError> {
        let now = crate::audit::now();
        let id = t.action.id.as_str();
        let (owner, epoch) = t.lease.map(|f| (f.owner, f.epoch)).unzip();
        let update = format!(
            "UPDATE action SET state = $1, state_detail = $2, updated_at = $3,
                 reason = COALESCE($8, reason), incident_url = COALESCE($9, incident_url),
                 preview = COALESCE($10, preview), digest = COALESCE($11, digest),
                 approvals_needed = COALESCE($12, approvals_needed),
                 expires_at = COALESCE($13, expires_at)
             WHERE id = $4 AND state = $5 AND ($6 IS NULL OR {fence})",
            fence = fenced("$4", "$6", "$7")
        );
        let preview = t.new_preview.as_ref();
        Ok(on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut audit = NewAuditEntry {
                actor: t.audit.actor,
                action_id: t.audit.action_id,
                kind: t.audit.kind,
                detail: t.audit.detail.clone(),
            };
            if let Some(approval) = &t.approval {
                // Counted inside the transaction that records the approval, behind a lock
                // on the action's row: two approvals at once are counted one after the
                // other, so the second sees the first and the action ends approved. The
                // digest is checked again: a new preview since voids this approval.
                let locked = sqlx::query(
                    "UPDATE action SET updated_at = $1 WHERE id = $2 AND state = $3 AND digest = $4",
                )
                .bind(now)
                .bind(id)
                .bind(t.from.as_str())
                .bind(approval.digest)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if locked != 1 {
                    return Ok(MoveOutcome::Refused);
                }
                sqlx::query(
                    "INSERT INTO action_approval (action_id, approver, approver_name, digest, at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(approval.approver)
                .bind(approval.approver_name)
                .bind(approval.digest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let (given, needed): (i64, i32) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM action_approval WHERE action_id = $1 AND digest = $2),
                            approvals_needed FROM action WHERE id = $1",
                )
                .bind(id)
                .bind(approval.digest)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(detail) = audit.detail.as_object_mut() {
                    detail.insert("approvals".into(), given.into());
                    detail.insert("needed".into(), needed.into());
                }
                if given < i64::from(needed) {
                    append_audit!(tx, &audit);
                    tx.commit().await?;
                    return Ok(MoveOutcome::ApprovalRecorded);
                }
            }
            let changed = sqlx::query(&update)
                .bind(t.to.as_str())
                .bind(t.detail)
                .bind(now)
                .bind(id)
                .bind(t.from.as_str())
                .bind(owner)
                .bind(epoch)
                .bind(t.submission.as_ref().map(|s| s.reason))
                .bind(t.submission.as_ref().and_then(|s| s.incident_url))
                .bind(preview.map(|p| p.json))
                .bind(preview.map(|p| p.digest))
                .bind(preview.map(|p| i32::try_from(p.approvals_needed).unwrap_or(i32::MAX)))
                .bind(preview.map(|p| p.expires_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed != 1 {
                return Ok(MoveOutcome::Refused);
            }
            if let Some(fence) = t.lease.filter(|_| t.to != ActionState::Executing) {
                sqlx::query(END_LEASE)
                    .bind(id)
                    .bind(fence.owner)
                    .bind(fence.epoch)
                    .execute(&mut *tx)
                    .await?;
            }
            if t.submission.as_ref().is_some_and(|s| s.holds_entities) {
                sqlx::query(
                    "INSERT INTO entity_hold (service, entity_id, action_id)
                     SELECT $1, entity_id, action_id FROM action_entity
                     WHERE action_id = $2",
                )
                .bind(&t.action.service)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(preview) = preview {
                sqlx::query("DELETE FROM action_approval WHERE action_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for (chunk, planned) in preview.planned {
                    sqlx::query(
                        "UPDATE action_chunk SET planned = $3 WHERE action_id = $1 AND chunk = $2",
                    )
                    .bind(id)
                    .bind(chunk)
                    .bind(planned)
                    .execute(&mut *tx)
                    .await?;
                }
                for entity in preview.found {
                    let held = entity.held.as_ref();
                    sqlx::query(
                        "UPDATE action_entity SET found = $3, held_amount = $4, held_currency = $5
                         WHERE action_id = $1 AND entity_id = $2",
                    )
                    .bind(id)
                    .bind(&entity.id)
                    .bind(&entity.state)
                    .bind(held.map(|m| m.amount.to_string()))
                    .bind(held.map(|m| m.currency.clone()))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if t.to.is_final() {
                sqlx::query("DELETE FROM entity_hold WHERE action_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            append_audit!(tx, &audit);
            tx.commit().await?;
            MoveOutcome::Moved
        }))
    }
}
