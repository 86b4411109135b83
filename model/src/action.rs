use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Money;

/// A mission-control mutation a service offers, as its GraphQL schema describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionSpec {
    /// The mutation's name: `retrySagas`.
    pub mutation: String,
    pub description: Option<String>,
    /// Its arguments, `dryRun` left out.
    pub arguments: Vec<ArgumentSpec>,
    /// Whether it takes `dryRun`: without it, a preview can only show Runboard's own part.
    pub dry_run: bool,
}

impl ActionSpec {
    /// The argument that lists the entities acted on (the first list of IDs), if any.
    pub fn entity_argument(&self) -> Option<&ArgumentSpec> {
        self.arguments
            .iter()
            .find(|a| a.list && a.type_name == "ID")
    }
}

/// One argument of a mutation, with the GraphQL type a form is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArgumentSpec {
    pub name: String,
    pub description: Option<String>,
    /// The named type: `ID`, `String`, `Boolean`, `Int`, `Float`, or an input or enum type.
    pub type_name: String,
    /// A list of `type_name`: a pasted list in a form.
    pub list: bool,
    /// Non-null: the call cannot be made without it.
    pub required: bool,
}

impl ArgumentSpec {
    /// The type as GraphQL writes it: `[ID!]!`.
    pub fn graphql_type(&self) -> String {
        let inner = if self.list {
            format!("[{}!]", self.type_name)
        } else {
            self.type_name.clone()
        };
        if self.required {
            format!("{inner}!")
        } else {
            inner
        }
    }
}

/// Where an action is in its life (SPEC.md, "Actions: preview, approval, execution").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Previewed,
    AwaitingApproval,
    Approved,
    Executing,
    /// Stopped by Runboard (too many failures, or its dry run could not be re-checked);
    /// an operator resumes or cancels it.
    Paused,
    /// Cancelled while executing: nothing more is sent, and its entities stay held until
    /// no call of it is in flight.
    Cancelling,
    Succeeded,
    PartiallyFailed,
    Failed,
    Rejected,
    Expired,
    Cancelled,
}

impl ActionState {
    pub const ALL: [ActionState; 12] = [
        Self::Previewed,
        Self::AwaitingApproval,
        Self::Approved,
        Self::Executing,
        Self::Paused,
        Self::Cancelling,
        Self::Succeeded,
        Self::PartiallyFailed,
        Self::Failed,
        Self::Rejected,
        Self::Expired,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Previewed => "previewed",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Approved => "approved",
            Self::Executing => "executing",
            Self::Paused => "paused",
            Self::Cancelling => "cancelling",
            Self::Succeeded => "succeeded",
            Self::PartiallyFailed => "partially_failed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The lifecycle (SPEC.md, "Actions"): the states an action in this state may move to.
    /// Every change of state, by a person or by the engine, is checked against it.
    pub fn next_states(self) -> &'static [ActionState] {
        use ActionState::*;
        match self {
            Previewed => &[AwaitingApproval, Expired, Cancelled],
            AwaitingApproval => &[Approved, Rejected, Expired, Cancelled],
            Approved => &[Executing, Cancelled],
            // Back to awaiting approval when the dry run before the first call differs.
            Executing => &[
                Succeeded,
                PartiallyFailed,
                Failed,
                Paused,
                AwaitingApproval,
                Cancelling,
            ],
            Paused => &[Executing, Cancelled],
            Cancelling => &[Cancelled],
            Succeeded | PartiallyFailed | Failed | Rejected | Expired | Cancelled => &[],
        }
    }

    pub fn can_become(self, to: ActionState) -> bool {
        self.next_states().contains(&to)
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::PartiallyFailed
                | Self::Failed
                | Self::Rejected
                | Self::Expired
                | Self::Cancelled
        )
    }
}

/// What a call does (or in a dry run would do) to one entity, as the service says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effect {
    pub entity_id: String,
    pub description: String,
    pub amount: Option<String>,
    pub currency: Option<String>,
}

/// Effects that do the same thing, whatever entity, amount or time they name: how an
/// approver reads a dry run of 100,000 entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectGroup {
    /// One of its effects' descriptions, as an example.
    pub example: String,
    pub count: u64,
    /// The money its effects move, per currency.
    pub money: Vec<Money>,
}

/// The dry run's outcome, in sum; each entity's effects are kept with its chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DryRun {
    /// The service's dry run of every chunk.
    Done {
        /// Effects listed in all.
        effects: u64,
        /// The effects by what they do, largest group first.
        groups: Vec<EffectGroup>,
    },
    /// The mutation takes no `dryRun`: only Runboard's own part can be shown.
    NotOffered,
}

/// Everything an approver approves: the exact requests and what they will do. Its digest
/// binds approvals to it, together with every entity as found and every chunk's dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    /// The mission-control endpoint the calls go to.
    pub endpoint: String,
    /// The GraphQL document each call sends.
    pub document: String,
    /// The variables of each call, the entity list aside.
    pub variables: serde_json::Value,
    /// The argument each call puts its chunk of entities in; `None` for a single call.
    pub entity_argument: Option<String>,
    /// How many entities the action names (one for a single call).
    pub entities: u64,
    /// Most entities one call names; 1 is one call per entity.
    pub chunk_size: u32,
    /// Calls sent at once, at most.
    pub concurrency: u32,
    pub dry_run: DryRun,
    /// The money the effects move, per currency.
    pub money: Vec<Money>,
    /// A runbook's steps, in the order each entity goes through them; empty for an action of
    /// one mutation. Left out of the JSON when empty, so that the digest of every action of
    /// one mutation stays what it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepPreview>,
    /// A runbook's parameters as the operator gave them (`{{ param.reason }}`), the same for
    /// every entity.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
    /// Entities the first call names, the canary; the calls after it double up to
    /// `chunk_size`. 0 (and left out of the JSON, so that older digests stay what they were):
    /// every call names `chunk_size`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub canary: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Preview {
    /// How many calls the entities need.
    pub fn calls(&self) -> u64 {
        crate::pace::call_sizes(self.entities, self.canary, self.chunk_size).count() as u64
    }

    /// How long the run should take at `pace`, when the dry run of every call took
    /// `dry_run`: as long (the real calls are as many, as many at a time), or what the pace
    /// allows, whichever is longer.
    pub fn estimate(
        &self,
        pace: &crate::Pace,
        dry_run: std::time::Duration,
    ) -> std::time::Duration {
        let calls = self.calls() * self.steps.len().max(1) as u64;
        dry_run.max(pace.time_for(self.entities * self.steps.len().max(1) as u64, calls))
    }
}

/// One step of a runbook as written: a mutation and its arguments, with placeholders such as
/// `{{ funds.amount }}` that each entity fills in from its own data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunbookStep {
    /// What the step is for, in words: "transfer the held funds".
    pub title: String,
    /// The service's mission-control mutation the step calls.
    pub mutation: String,
    /// Its arguments, one key each; the list of IDs is left out (Runboard fills it with the
    /// entity).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A runbook kept for a service under a name, to be started on any selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SavedRunbook {
    pub id: String,
    pub service: crate::ServiceName,
    /// "Transfer the held funds and force-complete".
    pub name: String,
    /// When to use it, and what it does.
    pub description: String,
    pub steps: Vec<RunbookStep>,
    /// The parameters its steps use (`{{ param.reason }}`): asked for when it starts.
    pub params: Vec<String>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// One step of a runbook: a mutation each entity gets its own call of, with its arguments
/// filled in from that entity's data, and the service's dry run of every such call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepPreview {
    /// What the step is for, in the runbook's words: "transfer the held funds".
    pub title: String,
    pub mutation: String,
    /// The GraphQL document each of its calls sends.
    pub document: String,
    /// The arguments as written, placeholders such as `{{ funds.amount }}` unfilled; each
    /// entity's own are kept with its call.
    pub arguments: serde_json::Value,
    pub dry_run: DryRun,
    /// The money its effects move, per currency.
    pub money: Vec<Money>,
}

/// One approver's approval of one preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub approver: crate::PersonKey,
    pub approver_name: String,
    pub digest: crate::Digest,
    pub at: DateTime<Utc>,
}

/// Where one entity of an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntityState {
    Pending,
    Succeeded,
    Failed,
}

impl EntityState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityResult {
    pub entity_id: String,
    /// Where the action named it: 0 for the first.
    pub position: u64,
    /// Its state in words as the preview found it ("failed at reserve_funds: insufficient
    /// funds"), or `None` when the service's database did not know it.
    pub found: Option<String>,
    /// The money it held when the preview was made.
    pub held: Option<Money>,
    /// What the approved dry run said its call would do.
    pub planned: Vec<String>,
    /// The call that carries it: `runboard:<action>:<chunk>` is its idempotency key.
    pub chunk: u32,
    pub state: EntityState,
    pub attempts: u32,
    /// The effect the service reported, or why the call failed.
    pub detail: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// In a runbook, each step for this entity in order: what it would do and what it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<EntityStep>,
}

/// Where one step of a runbook stands for one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Succeeded,
    Failed,
    /// Never to be sent: an earlier step failed for this entity.
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Skipped]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One runbook step of one entity: its own call, `runboard:<action>:<step>:<chunk>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityStep {
    /// The step's index in the runbook, from 0.
    pub step: u32,
    pub chunk: u32,
    pub state: StepState,
    /// What the approved dry run said this step would do to it.
    pub planned: Vec<String>,
    /// The variables its call sends, filled in for this entity.
    pub variables: serde_json::Value,
    pub attempts: u32,
    /// The effect the service reported, why the call failed, or why it was never sent.
    pub detail: Option<String>,
}

/// How far an action's calls have come, and, while it executes, how fast and until when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionProgress {
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// The engine's last measure of its rate and brake, while it executes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<crate::Execution>,
    /// When it should be done, at the rate measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
}

/// A corrective action: who asked for what, why, its preview, approvals and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    pub id: crate::ActionId,
    pub service: crate::ServiceName,
    pub mutation: String,
    pub state: ActionState,
    /// Why it is in this state, where that needs saying (paused, stopped for a new approval).
    pub state_detail: Option<String>,
    pub requester: crate::PersonKey,
    pub requester_name: String,
    pub reason: Option<String>,
    pub incident_url: Option<String>,
    pub preview: Preview,
    /// SHA-256 of the preview: what approvals bind to.
    pub digest: crate::Digest,
    pub approvals_needed: u32,
    pub approvals: Vec<Approval>,
    pub progress: ActionProgress,
    /// The pace it keeps to: its own where set, else its service's default.
    #[serde(default)]
    pub pace: crate::Pace,
    /// How long its run should take at that pace, from the preview's dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds: Option<u64>,
    /// In a runbook, the step whose calls the engine sends now (from 0); 0 otherwise.
    #[serde(default)]
    pub current_step: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Action {
    /// A runbook: several steps per entity, approved as one.
    pub fn is_runbook(&self) -> bool {
        !self.preview.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::ActionState::{self, *};

    #[test]
    fn every_state_is_reachable_from_a_preview_and_final_states_lead_nowhere() {
        let mut reached = vec![Previewed];
        let mut i = 0;
        while i < reached.len() {
            for next in reached[i].next_states() {
                if !reached.contains(next) {
                    reached.push(*next);
                }
            }
            i += 1;
        }
        assert_eq!(reached.len(), ActionState::ALL.len(), "{reached:?}");
        for state in ActionState::ALL {
            assert_eq!(
                state.is_final(),
                state.next_states().is_empty(),
                "{state:?}"
            );
        }
    }

    #[test]
    fn only_an_executing_action_is_cancelled_through_cancelling_and_only_a_paused_one_resumes() {
        assert!(Executing.can_become(Cancelling) && !Executing.can_become(Cancelled));
        assert_eq!(Cancelling.next_states(), [Cancelled]);
        let into_executing: Vec<_> = ActionState::ALL
            .into_iter()
            .filter(|s| s.can_become(Executing))
            .collect();
        assert_eq!(into_executing, [Approved, Paused]);
        assert!(
            !Paused.can_become(Approved),
            "a resumed action is re-checked, not re-approved"
        );
    }
}
