//! A person's access as a whole: their browser sessions and personal API tokens, listed
//! and ended at once by an admin (someone who left, a laptop lost at 3 a.m.), audited.

use chrono::{DateTime, Utc};
use runboard_model::{
    AccessRevoked, PersonAccess, PersonKey, PersonWithAccess, Role, SessionSeen, User,
};
use serde_json::json;

use crate::audit::{Actor, NewAuditEntry, append_audit};
use crate::db::{BeginWrite, on_pool};
use crate::store::{Store, StoreError};

/// Why an admin's request about someone's access was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("ending or listing another person's access needs the admin role")]
    NotAdmin,
    #[error("say whose access: the person key (`subject`) that /api/v1/me shows them")]
    NoSubject,
    #[error("say why their access ends, for the audit log")]
    NoReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The person an admin named, as their key.
fn checked(admin: &User, subject: &str) -> Result<PersonKey, AccessError> {
    if !admin.has(Role::Admin) {
        return Err(AccessError::NotAdmin);
    }
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(AccessError::NoSubject);
    }
    Ok(subject.into())
}

impl Store {
    /// Notes whose a new browser session is, in the same breath as signing them in.
    pub async fn record_session_owner(
        &self,
        session_id: &str,
        user: &User,
        signed_in_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Ok(on_pool!(self.pool, |pool| {
            sqlx::query(
                "INSERT INTO session_owner (session_id, subject, name, signed_in_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(session_id)
            .bind(&user.subject)
            .bind(&user.name)
            .bind(signed_in_at)
            .execute(pool)
            .await
            .map(drop)
        })?)
    }

    /// Everyone who can use Runboard now, by name: their sessions that have not ended and
    /// their live tokens, counted. For an admin.
    pub async fn people_with_access(
        &self,
        admin: &User,
        now: DateTime<Utc>,
    ) -> Result<Vec<PersonWithAccess>, AccessError> {
        if !admin.has(Role::Admin) {
            return Err(AccessError::NotAdmin);
        }
        let rows: Vec<(PersonKey, String, i64, i64)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT subject, MAX(name), SUM(sessions), SUM(tokens) FROM (
                     SELECT o.subject, o.name, 1 AS sessions, 0 AS tokens
                     FROM session_owner o JOIN session s ON s.id = o.session_id
                     UNION ALL
                     SELECT subject, name, 0, 1 FROM api_token
                     WHERE revoked_at IS NULL AND expires_at > $1
                 ) AS access
                 GROUP BY subject ORDER BY MAX(name), subject",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)?;
        Ok(rows
            .into_iter()
            .map(|(subject, name, sessions, tokens)| PersonWithAccess {
                subject,
                name,
                sessions: u64::try_from(sessions).unwrap_or_default(),
                live_tokens: u64::try_from(tokens).unwrap_or_default(),
            })
            .collect())
    }

    /// A person's sessions that have not ended and all their tokens, for an admin.
    pub async fn access_of(
        &self,
        admin: &User,
        subject: &str,
    ) -> Result<PersonAccess, AccessError> {
        let subject = checked(admin, subject)?;
        let sessions: Vec<(String, DateTime<Utc>)> = on_pool!(self.pool, |pool| {
            sqlx::query_as(
                "SELECT o.name, o.signed_in_at FROM session_owner o
                 JOIN session s ON s.id = o.session_id
                 WHERE o.subject = $1 ORDER BY o.signed_in_at DESC",
            )
            .bind(&subject)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)?;
        Ok(PersonAccess {
            tokens: self.api_tokens_of(&subject).await?,
            subject,
            sessions: sessions
                .into_iter()
                .map(|(name, signed_in_at)| SessionSeen { name, signed_in_at })
                .collect(),
        })
    }

    /// Ends every session of `subject` and revokes every live token of theirs, in one
    /// transaction with its audit entry: their next request, page or API, is refused.
    pub async fn revoke_access(
        &self,
        admin: &User,
        subject: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessRevoked, AccessError> {
        let subject = checked(admin, subject)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AccessError::NoReason);
        }
        let (sessions_ended, tokens_revoked) = self
            .end_access(&admin.subject, &subject, reason, now)
            .await?;
        tracing::warn!(%subject, by = %admin.subject, sessions_ended, tokens_revoked, "access revoked");
        Ok(AccessRevoked {
            subject,
            sessions_ended,
            tokens_revoked,
        })
    }

    /// The sessions ended and tokens revoked, with the audit entry, in one transaction.
    async fn end_access(
        &self,
        actor: &PersonKey,
        subject: &PersonKey,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        Ok(on_pool!(self.pool, |pool| {
            let mut tx = pool.begin_write().await?;
            let sessions = sqlx::query(
                "DELETE FROM session WHERE id IN
                 (SELECT session_id FROM session_owner WHERE subject = $1)",
            )
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM session_owner WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            let tokens = sqlx::query(
                "UPDATE api_token SET revoked_at = $1 WHERE subject = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            append_audit!(
                tx,
                &NewAuditEntry {
                    actor: Actor::Person(actor),
                    action_id: None,
                    kind: "access.revoked",
                    detail: json!({
                        "subject": subject,
                        "reason": reason,
                        "sessions_ended": sessions,
                        "tokens_revoked": tokens,
                    }),
                }
            );
            tx.commit().await?;
            (sessions, tokens)
        }))
    }
}
