use leptos::prelude::*;
use runboard_model::SagaStatus;

/// A saga's status as a mark and a word: never told by colour alone.
#[component]
pub fn StatusBadge(status: SagaStatus) -> impl IntoView {
    let mark = match status {
        SagaStatus::Running => "▶",
        SagaStatus::Stuck => "⏸",
        SagaStatus::Failed => "✕",
        SagaStatus::Completed => "✓",
    };
    view! {
        <span class=format!("status status-{status}")>
            <span aria-hidden="true">{mark}" "</span>
            {status.as_str()}
        </span>
    }
}
