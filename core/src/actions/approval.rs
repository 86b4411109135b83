//! Approvals: who may approve, how many approvals an action needs, and recording one.

use std::collections::BTreeMap;

use runboard_model::{Action, ActionState, Money, Role, User};
use rust_decimal::Decimal;
use serde_json::json;

use super::ActionError;
use crate::App;
use crate::audit::{NewAuditEntry, append_audit};
use crate::connector::Connector;
use crate::db::{BeginWrite, on_pool};

/// Approvals an action needs: the service's number for the mutation (`base`), and one more
/// when the money it moves in any currency passes that currency's `extra_above`.
pub(crate) fn approvals_needed(
    base: u32,
    money: &[Money],
    extra_above: &BTreeMap<String, Decimal>,
) -> u32 {
    let large = money.iter().any(|m| {
        extra_above
            .get(&m.currency)
            .is_some_and(|limit| m.amount > *limit)
    });
    base + u32::from(large)
}

impl App {
    /// Approvals `service`'s `mutation` needs when it moves `money` ([`approvals_needed`]),
    /// with the service's numbers (`approvals` of its settings, default 1).
    pub(crate) fn approvals_needed(
        &self,
        connector: &Connector,
        mutation: &str,
        money: &[Money],
    ) -> u32 {
        approvals_needed(
            connector.approvals_for(mutation),
            money,
            &self.config.actions.extra_approval_above,
        )
    }

    /// Approvals a runbook needs: the most any of its steps' mutations needs, and one more
    /// when the money of all its steps together passes a currency's `extra_approval_above`.
    pub(crate) fn approvals_needed_for_runbook(
        &self,
        connector: &Connector,
        preview: &runboard_model::Preview,
    ) -> u32 {
        let base = preview
            .steps
            .iter()
            .map(|step| connector.approvals_for(&step.mutation))
            .max()
            .unwrap_or(1);
        approvals_needed(
            base,
            &preview.money,
            &self.config.actions.extra_approval_above,
        )
    }

    /// Approves the preview with this digest. Approvers need the approver role, may not
    /// approve their own request, and count once each.
    pub async fn approve_action(
        &self,
        user: &User,
        id: &str,
        digest: &str,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(
                "approving needs the approver role".into(),
            ));
        }
        let action = self.action(id).await?;
        if action.requester == user.subject {
            return Err(ActionError::Forbidden(
                "you asked for this action; another approver must approve it".into(),
            ));
        }
        if action.approvals.iter().any(|a| a.approver == user.subject) {
            return Err(ActionError::Conflict(
                "you have already approved this action".into(),
            ));
        }
        if self.expire_if_due(&action).await? {
            return Err(ActionError::Conflict(
                "its preview expired before it was approved; the requester must make a new one"
                    .into(),
            ));
        }
        if action.state != ActionState::AwaitingApproval {
            return Err(ActionError::Conflict(format!(
                "the action is {}; only an action awaiting approval can be approved",
                action.state.as_str()
            )));
        }
        if digest != action.digest {
            return Err(ActionError::Conflict(
                "the preview you approved is not the action's current preview; read it again and approve what it now says".into(),
            ));
        }
        let now = crate::audit::now();
        // Counted inside the transaction that records the approval, behind a lock on the
        // action's row: two approvals at once are counted one after the other, so the
        // second sees the first and the action ends approved.
        let outcome: Result<Option<bool>, sqlx::Error> = on_pool!(self.store.pool, |pool| {
            async {
                let mut tx = pool.begin_write().await?;
                // The digest is checked again in the update: a new preview since voids this approval.
                let locked = sqlx::query(
                    "UPDATE action SET updated_at = $1 WHERE id = $2 AND state = $3 AND digest = $4",
                )
                .bind(now)
                .bind(id)
                .bind(ActionState::AwaitingApproval.as_str())
                .bind(digest)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if locked != 1 {
                    return Ok(None);
                }
                sqlx::query(
                    "INSERT INTO action_approval (action_id, approver, approver_name, digest, at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(&user.subject)
                .bind(&user.name)
                .bind(digest)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let (given, needed): (i64, i32) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM action_approval WHERE action_id = $1 AND digest = $2),
                            approvals_needed FROM action WHERE id = $1",
                )
                .bind(id)
                .bind(digest)
                .fetch_one(&mut *tx)
                .await?;
                let approved = given >= i64::from(needed);
                if approved {
                    sqlx::query("UPDATE action SET state = $1 WHERE id = $2")
                        .bind(ActionState::Approved.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let audit = NewAuditEntry {
                    actor: &user.subject,
                    action_id: Some(id),
                    kind: "action.approved",
                    detail: json!({ "digest": digest, "approvals": given, "needed": needed }),
                };
                append_audit!(tx, &audit);
                tx.commit().await?;
                Ok(Some(approved))
            }
            .await
        });
        match outcome {
            Ok(Some(true)) => self.told(self.action(id).await),
            Ok(Some(false)) => self.action(id).await,
            Ok(None) => Err(ActionError::Conflict(
                "the action changed while you approved it; read it again".into(),
            )),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ActionError::Conflict(
                "you have already approved this action".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: &str, currency: &str) -> Money {
        Money {
            amount: amount.parse().unwrap(),
            currency: currency.into(),
        }
    }

    #[test]
    fn one_more_approval_when_any_currency_passes_its_limit_and_only_one() {
        let limits = BTreeMap::from([
            ("EUR".to_owned(), Decimal::from(10_000)),
            ("USD".to_owned(), Decimal::from(10_000)),
        ]);
        assert_eq!(approvals_needed(1, &[], &limits), 1);
        assert_eq!(
            approvals_needed(1, &[money("10000", "EUR")], &limits),
            1,
            "at the limit is not above it"
        );
        assert_eq!(approvals_needed(1, &[money("10000.01", "EUR")], &limits), 2);
        assert_eq!(
            approvals_needed(2, &[money("50000", "EUR"), money("50000", "USD")], &limits),
            3,
            "two large currencies still add one"
        );
        assert_eq!(
            approvals_needed(1, &[money("1000000", "JPY")], &limits),
            1,
            "no limit for JPY"
        );
    }
}
