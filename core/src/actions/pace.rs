//! An action's own pace (SPEC.md, "Pace"): set with the request, or changed by an operator
//! at any time before it ends; the engine reads it as its calls go.

use runboard_model::{Action, ActionId, Pace, PersonKey, Role, User};
use serde_json::json;

use super::ActionError;
use crate::App;
use crate::audit::{Actor, NewAuditEntry};
use crate::db::on_pool;

/// A pace as asked for: something to say, and every number above 0.
pub(crate) fn checked(pace: &Pace) -> Result<(), ActionError> {
    if pace.entities_per_second.is_none() && pace.calls_per_second.is_none() {
        return Err(ActionError::BadArguments(
            "give entities_per_second or calls_per_second (or both), e.g. {\"entities_per_second\": 500}".into(),
        ));
    }
    match pace.problem() {
        Some(problem) => Err(ActionError::BadArguments(problem)),
        None => Ok(()),
    }
}

impl App {
    /// Gives an action that has not ended a pace of its own: what `pace` says replaces what
    /// the action had, what it leaves out stays (and where the action never said, the
    /// service's default holds). An executing action keeps to it from its next call on, on
    /// whichever replica sends them.
    pub async fn set_pace(
        &self,
        user: &User,
        id: &ActionId,
        pace: Pace,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "setting an action's pace needs the operator role".into(),
            ));
        }
        checked(&pace)?;
        self.store_pace(&user.subject, id, &pace).await?;
        self.action(id).await
    }

    /// Stores the pace with its audit entry, unless the action has ended.
    pub(crate) async fn store_pace(
        &self,
        actor: &PersonKey,
        id: &ActionId,
        pace: &Pace,
    ) -> Result<(), ActionError> {
        let action = self.action(id).await?;
        if action.state.is_final() {
            return Err(ActionError::Conflict(format!(
                "the action is {}: a pace no longer changes anything",
                action.state.as_str()
            )));
        }
        let own: Option<String> = on_pool!(self.store.pool, |pool| {
            sqlx::query_scalar("SELECT pace FROM action WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?
        });
        let pace = pace.or(super::read_pace(own.as_deref()));
        let text = serde_json::to_string(&pace).expect("a pace serializes");
        let audit = NewAuditEntry {
            actor: Actor::Person(actor),
            action_id: Some(id),
            kind: "action.paced",
            detail: json!({ "pace": pace, "before": action.pace, "state": action.state }),
        };
        let changed = self.action_store().set_pace(id, &text, &audit).await?;
        if !changed {
            return Err(ActionError::Conflict(
                "the action ended just now: a pace no longer changes anything".into(),
            ));
        }
        Ok(())
    }
}
