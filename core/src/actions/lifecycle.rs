//! The one way an action changes state. [`App::transition`] checks the move against the
//! lifecycle ([`ActionState::can_become`]) and has the action's store commit the new state,
//! the entity holds, an approval and the audit entry in one transaction, for people's moves
//! (approving too) and the engine's alike; then it counts the end and tells the webhook.
//! The people's moves (submit, reject, cancel, resume) are here too.

use chrono::{DateTime, Utc};
use runboard_model::{Action, ActionId, ActionState, Digest, Role, User};
use serde_json::json;

use super::store::{Fence, MoveOutcome, NewApproval};
use super::{ActionError, Found};
use crate::App;
use crate::audit::{Actor, NewAuditEntry};
use crate::db::on_pool;
use crate::store::StoreError;

/// One move of one action, and what goes with it.
pub(crate) struct Transition<'a> {
    pub(crate) action: &'a Action,
    /// The state it must still be in; the move is refused if someone moved it meanwhile.
    pub(crate) from: ActionState,
    pub(crate) to: ActionState,
    /// Why it is in the new state, shown with it; `None` clears the old reason.
    pub(crate) detail: Option<&'a str>,
    pub(crate) audit: NewAuditEntry<'a>,
    /// The engine's moves: made only while it still holds this lease. Every move but to
    /// `executing` ends the lease.
    pub(crate) lease: Option<Fence<'a>>,
    /// Submission: the reason and incident link, and the entities held from now on.
    pub(crate) submission: Option<Submission<'a>>,
    /// A new preview that replaces the approved one: the approvals given so far are void.
    pub(crate) new_preview: Option<NewPreview<'a>>,
    /// An approval, recorded with the move to `approved`, which is made only once the
    /// action has all the approvals it needs.
    pub(crate) approval: Option<NewApproval<'a>>,
}

pub(crate) struct Submission<'a> {
    pub(crate) reason: &'a str,
    pub(crate) incident_url: Option<&'a str>,
    /// Its entities are held from now on ([`names_entities`]).
    pub(crate) holds_entities: bool,
}

pub(crate) struct NewPreview<'a> {
    /// The preview as JSON, and its digest over it and every chunk as changed here.
    pub(crate) json: &'a str,
    pub(crate) digest: &'a Digest,
    pub(crate) approvals_needed: u32,
    pub(crate) expires_at: DateTime<Utc>,
    /// Chunks whose dry run now says something else: `(chunk, effects as JSON)`.
    pub(crate) planned: &'a [(i32, String)],
    /// Entities as found again.
    pub(crate) found: &'a [Found],
}

impl<'a> Transition<'a> {
    /// A person's step from the action's current state.
    pub(crate) fn new(action: &'a Action, to: ActionState, audit: NewAuditEntry<'a>) -> Self {
        Self {
            action,
            from: action.state,
            to,
            detail: None,
            audit,
            lease: None,
            submission: None,
            new_preview: None,
            approval: None,
        }
    }
}

impl App {
    /// Makes the move in one transaction and returns the action as it now is; `Ok(None)`
    /// when the action was no longer in `from`, or the engine's lease no longer holds. An
    /// approval that the action needs more of is recorded without the move.
    /// Refused when the lifecycle does not allow it. The webhook hears of the new state.
    pub(crate) async fn transition(
        &self,
        t: Transition<'_>,
    ) -> Result<Option<Action>, ActionError> {
        if !t.from.can_become(t.to) {
            return Err(ActionError::Conflict(format!(
                "the action is {}, so it cannot become {}",
                t.from.as_str(),
                t.to.as_str()
            )));
        }
        match self.action_store().move_state(&t).await? {
            MoveOutcome::Refused => return Ok(None),
            // Still awaiting approval: nothing to tell, nothing ended.
            MoveOutcome::ApprovalRecorded => return self.action(&t.action.id).await.map(Some),
            MoveOutcome::Moved => {}
        }
        if t.to.is_final() || t.to == ActionState::Paused {
            self.metrics
                .record_action_end(&t.action.service, t.to.as_str());
        }
        self.notify_state(self.action(&t.action.id).await).map(Some)
    }

    /// A person's move: the move, or a refusal that says the action moved meanwhile.
    async fn person_moves(&self, t: Transition<'_>) -> Result<Action, ActionError> {
        self.transition(t).await?.ok_or_else(|| {
            ActionError::Conflict("the action changed while you looked at it; reload it".into())
        })
    }

    /// Refuses a step that only an action in `state` can take, saying what state it is in.
    fn only_when(action: &Action, state: ActionState, step: &str) -> Result<(), ActionError> {
        if action.state == state {
            return Ok(());
        }
        Err(ActionError::Conflict(format!(
            "the action is {}; only a {} action can be {step}",
            action.state.as_str(),
            state.as_str()
        )))
    }

    /// Tells the webhook about the action's new state, if that is worth telling; passes it on.
    pub(crate) fn notify_state(
        &self,
        action: Result<Action, ActionError>,
    ) -> Result<Action, ActionError> {
        if let Ok(action) = &action
            && let Some(event) = crate::notify::event_for(action.state)
        {
            self.notifier.send(event, action);
        }
        action
    }

    /// A preview made now: when it was made and when it expires, by Runboard's clock (so a
    /// test moves past its time rather than waiting for it), to the microsecond both stores
    /// keep.
    pub(crate) fn preview_times(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = crate::audit::as_stored(self.clock.now());
        let ttl = chrono::Duration::from_std(self.config.actions.preview_ttl)
            .unwrap_or(chrono::Duration::days(1));
        (now, now + ttl)
    }

    /// Marks an action expired if its preview is past its time; true if it did.
    pub(super) async fn expire_if_due(&self, action: &Action) -> Result<bool, ActionError> {
        if action.expires_at > self.clock.now() || !action.state.can_become(ActionState::Expired) {
            return Ok(false);
        }
        let mut expire = Transition::new(
            action,
            ActionState::Expired,
            NewAuditEntry {
                actor: Actor::Runboard,
                action_id: Some(&action.id),
                kind: "action.expired",
                detail: json!({ "expires_at": action.expires_at }),
            },
        );
        expire.detail = Some("its preview expired before it was approved");
        Ok(self.transition(expire).await?.is_some())
    }

    /// Expires every preview past its time; returns how many.
    pub async fn expire_previews(&self) -> Result<usize, ActionError> {
        let due: Vec<ActionId> = on_pool!(self.store.pool, |pool| {
            sqlx::query_scalar("SELECT id FROM action WHERE state IN ($1, $2) AND expires_at <= $3")
                .bind(ActionState::Previewed.as_str())
                .bind(ActionState::AwaitingApproval.as_str())
                .bind(self.clock.now())
                .fetch_all(pool)
                .await?
        });
        let mut expired = 0;
        for id in due {
            let action = self.action(&id).await?;
            if self.expire_if_due(&action).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Sends a previewed action for approval, with the requester's reason (or the one given
    /// when it was asked for); its entities are held from now until it ends, so no other
    /// action acts on them meanwhile.
    pub async fn submit_action(
        &self,
        user: &User,
        id: &ActionId,
        reason: Option<&str>,
        incident_url: Option<&str>,
    ) -> Result<Action, ActionError> {
        let action = self.action(id).await?;
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .or(action.reason.as_deref())
            .unwrap_or_default();
        if action.requester != user.subject {
            return Err(ActionError::Forbidden(format!(
                "only {} (who asked for it) may submit this action",
                action.requester_name
            )));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ActionError::BadArguments(
                "a reason is required: say why this action is needed".into(),
            ));
        }
        let incident_url = incident_url.map(str::trim).filter(|u| !u.is_empty());
        if let Some(url) = incident_url
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(ActionError::BadArguments(format!(
                "the incident link must be an http(s) URL, not {url:?}"
            )));
        }
        if self.expire_if_due(&action).await? {
            return Err(ActionError::Conflict(
                "its preview expired; make a new one".into(),
            ));
        }
        // Checked here, not left to the lifecycle table: an executing action may become
        // awaiting approval too, but never by a submission.
        Self::only_when(&action, ActionState::Previewed, "submitted")?;
        let held = self.held_entity(&action).await?;
        if let Some((entity, other)) = held {
            return Err(ActionError::Conflict(format!(
                "{entity} is already in action {other}, which has not ended; wait for it or cancel it"
            )));
        }
        let mut submit = Transition::new(
            &action,
            ActionState::AwaitingApproval,
            NewAuditEntry {
                actor: Actor::Person(&user.subject),
                action_id: Some(id),
                kind: "action.submitted",
                detail: json!({ "reason": reason, "incident_url": incident_url, "digest": action.digest }),
            },
        );
        submit.submission = Some(Submission {
            reason,
            incident_url,
            holds_entities: names_entities(&action),
        });
        match self.person_moves(submit).await {
            // Another submission took one of the entities between the check and the insert.
            Err(ActionError::Store(StoreError::Query(sqlx::Error::Database(e))))
                if e.is_unique_violation() =>
            {
                Err(ActionError::Conflict(
                    "another action took some of these entities just now; reload and look".into(),
                ))
            }
            outcome => outcome,
        }
    }

    /// The first of the action's entities another live action holds, and that action.
    async fn held_entity(&self, action: &Action) -> Result<Option<(String, String)>, ActionError> {
        if !names_entities(action) {
            return Ok(None);
        }
        Ok(on_pool!(self.store.pool, |pool| {
            sqlx::query_as(
                "SELECT h.entity_id, h.action_id FROM action_entity e
                 JOIN entity_hold h ON h.service = $2 AND h.entity_id = e.entity_id
                 WHERE e.action_id = $1 ORDER BY e.position LIMIT 1",
            )
            .bind(&action.id)
            .bind(&action.service)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Rejects an action awaiting approval, with the approver's reason.
    pub async fn reject_action(
        &self,
        user: &User,
        id: &ActionId,
        reason: &str,
    ) -> Result<Action, ActionError> {
        if !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(
                "rejecting needs the approver role".into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ActionError::BadArguments("say why you reject it".into()));
        }
        let action = self.action(id).await?;
        let mut reject = Transition::new(
            &action,
            ActionState::Rejected,
            NewAuditEntry {
                actor: Actor::Person(&user.subject),
                action_id: Some(id),
                kind: "action.rejected",
                detail: json!({ "reason": reason }),
            },
        );
        reject.detail = Some(reason);
        self.person_moves(reject).await
    }

    /// Cancels an action that has not ended. One that is executing becomes `cancelling`:
    /// the engine sends nothing more, and its entities stay held until no call of it is in
    /// flight. Cancelling someone else's executing action needs the approver role.
    pub async fn cancel_action(&self, user: &User, id: &ActionId) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "cancelling needs the operator role".into(),
            ));
        }
        let action = self.action(id).await?;
        let executing = action.state == ActionState::Executing;
        if executing && action.requester != user.subject && !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(format!(
                "stopping {}'s action while it executes needs the approver role",
                action.requester_name
            )));
        }
        let (to, kind) = if executing {
            (ActionState::Cancelling, "action.cancelling")
        } else {
            (ActionState::Cancelled, "action.cancelled")
        };
        let detail = format!("cancelled by {}", user.name);
        let mut cancel = Transition::new(
            &action,
            to,
            NewAuditEntry {
                actor: Actor::Person(&user.subject),
                action_id: Some(id),
                kind,
                detail: json!({ "progress": action.progress }),
            },
        );
        cancel.detail = Some(&detail);
        self.person_moves(cancel).await
    }

    /// Resumes a paused action: the engine takes it up again, and runs the dry run again
    /// before its next call, as at every start. Resuming someone else's needs the approver
    /// role.
    pub async fn resume_action(&self, user: &User, id: &ActionId) -> Result<Action, ActionError> {
        if !user.has(Role::Operator) {
            return Err(ActionError::Forbidden(
                "resuming needs the operator role".into(),
            ));
        }
        let action = self.action(id).await?;
        // A pause is a brake someone pulled; releasing another's, like stopping it, is an
        // approver's call.
        if action.requester != user.subject && !user.has(Role::Approver) {
            return Err(ActionError::Forbidden(format!(
                "resuming {}'s paused action needs the approver role",
                action.requester_name
            )));
        }
        // An approved action becomes executing too, but only when the engine takes it up.
        Self::only_when(&action, ActionState::Paused, "resumed")?;
        let resume = Transition::new(
            &action,
            ActionState::Executing,
            NewAuditEntry {
                actor: Actor::Person(&user.subject),
                action_id: Some(id),
                kind: "action.resumed",
                detail: json!({ "progress": action.progress }),
            },
        );
        self.person_moves(resume).await
    }
}

/// Whether the action's rows are entities of the service, which submission holds, rather
/// than the one row of a single call: decided by the mutation's list argument, never by
/// what a row is called, since an ID is whatever a user types.
fn names_entities(action: &Action) -> bool {
    action.preview.entity_argument.is_some() || action.is_runbook()
}
