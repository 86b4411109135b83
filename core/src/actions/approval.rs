//! Approvals: who may approve, how many approvals an action needs, and approving: an
//! approval is recorded by the lifecycle's move to `approved` ([`App::transition`]).

use std::collections::BTreeMap;

use runboard_model::{Action, ActionId, ActionState, Digest, Money, Role, User};
use rust_decimal::Decimal;
use serde_json::json;

use super::store::NewApproval;
use super::{ActionError, Transition};
use crate::App;
use crate::audit::{Actor, NewAuditEntry};
use crate::connector::Connector;
use crate::store::StoreError;

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
        id: &ActionId,
        digest: &Digest,
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
        if *digest != action.digest {
            return Err(ActionError::Conflict(
                "the preview you approved is not the action's current preview; read it again and approve what it now says".into(),
            ));
        }
        // Recorded with the move to approved, which is made once the approvals of this
        // digest are as many as the action needs; the digest is checked again there.
        let mut approve = Transition::new(
            &action,
            ActionState::Approved,
            NewAuditEntry {
                actor: Actor::Person(&user.subject),
                action_id: Some(id),
                kind: "action.approved",
                detail: json!({ "digest": digest }),
            },
        );
        approve.approval = Some(NewApproval {
            approver: &user.subject,
            approver_name: &user.name,
            digest,
        });
        match self.transition(approve).await {
            Ok(Some(action)) => Ok(action),
            Ok(None) => Err(ActionError::Conflict(
                "the action changed while you approved it; read it again".into(),
            )),
            Err(ActionError::Store(StoreError::Query(sqlx::Error::Database(e))))
                if e.is_unique_violation() =>
            {
                Err(ActionError::Conflict(
                    "you have already approved this action".into(),
                ))
            }
            Err(e) => Err(e),
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
