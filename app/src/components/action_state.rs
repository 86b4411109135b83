use leptos::prelude::*;
use runboard_model::ActionState;

/// An action's state as a mark and words: never told by colour alone.
#[component]
pub fn ActionStateBadge(state: ActionState) -> impl IntoView {
    let (mark, words) = match state {
        ActionState::Previewed => ("◇", "previewed, not submitted"),
        ActionState::AwaitingApproval => ("…", "awaiting approval"),
        ActionState::Approved => ("✓", "approved, about to run"),
        ActionState::Executing => ("▶", "executing"),
        ActionState::Paused => ("⏸", "paused"),
        ActionState::Cancelling => ("■", "cancelling: waiting for calls in flight"),
        ActionState::Succeeded => ("✓", "succeeded"),
        ActionState::PartiallyFailed => ("◐", "partially failed"),
        ActionState::Failed => ("✕", "failed"),
        ActionState::Rejected => ("✕", "rejected"),
        ActionState::Expired => ("–", "expired"),
        ActionState::Cancelled => ("–", "cancelled"),
    };
    view! {
        <span class=format!("status action-{}", state.as_str()) data-state=state.as_str()>
            <span aria-hidden="true">{mark}" "</span>
            {words}
        </span>
    }
}
