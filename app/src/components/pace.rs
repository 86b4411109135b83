//! An action's pace, rate and ETA, the brake when it is on, and the control that changes
//! the pace of an action that has not ended.

use leptos::prelude::*;
use runboard_model::{Action, ActionState};

use crate::components::local_time::LocalTime;
use crate::format::thousands;
use crate::server_fns::set_action_pace::SetActionPace;

/// How fast the action goes and until when; with the pace control for an operator.
#[component]
pub fn PacePanel(
    action: Action,
    may_operate: bool,
    set_pace: ServerAction<SetActionPace>,
) -> impl IntoView {
    let execution = action.progress.execution.clone();
    let executing = action.state == ActionState::Executing;
    let rate = execution
        .as_ref()
        .and_then(|e| e.entities_per_second)
        .map(|r| format!("{} entities/s", thousands(r.round() as u64)));
    let in_flight = execution
        .as_ref()
        .map(|e| format!("{} of {} calls in flight", e.in_flight, e.concurrency));
    let brake = execution.as_ref().and_then(|e| e.brake.clone());
    let estimate = action.estimated_seconds.map(|s| {
        if s < 120 {
            format!("about {s} s")
        } else {
            format!("about {} min", s.div_ceil(60))
        }
    });
    let controllable = may_operate && !action.state.is_final();
    let current = action
        .pace
        .entities_per_second
        .map(|r| r.to_string())
        .unwrap_or_default();
    view! {
        <section aria-labelledby="pace-heading" data-testid="pace">
            <h2 id="pace-heading">"Pace"</h2>
            <dl class="figures">
                <div><dt>"Pace"</dt><dd data-testid="pace-setting">{action.pace.describe()}</dd></div>
                {estimate.map(|e| view! { <div><dt>"The run should take"</dt><dd data-testid="estimate">{e}</dd></div> })}
                {(executing).then(|| view! {
                    <div><dt>"Rate"</dt><dd data-testid="rate">{rate.unwrap_or_else(|| "measuring…".into())}</dd></div>
                })}
                {action.progress.eta.filter(|_| executing).map(|eta| view! {
                    <div><dt>"Done by about"</dt><dd data-testid="eta"><LocalTime at=eta /></dd></div>
                })}
                {in_flight.filter(|_| executing).map(|f| view! { <div><dt>"Calls"</dt><dd data-testid="in-flight">{f}</dd></div> })}
            </dl>
            {brake.filter(|_| executing).map(|b| view! { <p class="panel panel-warning" role="status" data-testid="brake">{b}</p> })}
            {controllable.then(|| view! {
                <ActionForm action=set_pace attr:class="filters">
                    <input type="hidden" name="id" value=action.id.to_string() />
                    <label class="filter">
                        <span>"Entities per second, at most"</span>
                        <input type="number" name="entities_per_second" min="0.01" step="any" required value=current />
                    </label>
                    <button type="submit" class="secondary">"Set the pace"</button>
                </ActionForm>
            })}
        </section>
    }
}
