//! A runbook's action as its approvers and operators read it: the steps each entity goes
//! through, and each entity's story (what was found, what each step would do and did).

use leptos::prelude::*;
use runboard_model::{
    ActionId, DryRun, EntityResult, EntityState, IdempotencyKey, Money, StepPreview, StepState,
};

use crate::components::table_wrap::TableWrap;
use crate::format::{amount, thousands};

fn money_text(money: &[Money]) -> String {
    if money.is_empty() {
        return "none".to_owned();
    }
    money
        .iter()
        .map(|m| format!("{} {}", amount(&m.amount), m.currency))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The steps in order: what each calls, how, and what its dry run says in sum.
#[component]
pub fn RunbookSteps(action_id: ActionId, entities: u64, steps: Vec<StepPreview>) -> impl IntoView {
    view! {
        <p>
            {format!("Each of the {} entities gets a call of its own per step, with its own values filled in; step ", thousands(entities))}
            <em>"n + 1"</em>
            " is sent for an entity only once its step "<em>"n"</em>" succeeded. Keys: "
            <code class="mono">{IdempotencyKey::pattern(&action_id, true)}</code>
            ". Every step was dry-run against the data as it was before any step ran; each is dry-run again right before it is sent."
        </p>
        <TableWrap>
            <table class="preview" data-testid="runbook-steps">
                <thead><tr>
                    <th scope="col" class="num">"Step"</th><th scope="col">"What for"</th>
                    <th scope="col">"Mutation"</th><th scope="col">"Arguments as written"</th>
                    <th scope="col">"The dry run said"</th><th scope="col">"Money"</th>
                </tr></thead>
                <tbody>
                    {steps.into_iter().enumerate().map(|(n, step)| view! {
                        <tr>
                            <td class="num">{n + 1}</td>
                            <th scope="row">{step.title}</th>
                            <td><code class="mono">{step.mutation}</code></td>
                            <td><pre class="mono">{serde_json::to_string_pretty(&step.arguments).unwrap_or_default()}</pre></td>
                            <td>{match step.dry_run {
                                DryRun::Done { effects, .. } => format!("{} effects", thousands(effects)),
                                DryRun::NotOffered => "no dry run offered".to_owned(),
                            }}</td>
                            <td>{money_text(&step.money)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </TableWrap>
    }
}

/// Each entity's story, one card each: as found, then every step with what it would do and
/// what it did; a step after a failed one reads "not done".
#[component]
pub fn StoryCards(entities: Vec<EntityResult>, steps: Vec<StepPreview>) -> impl IntoView {
    view! {
        <div class="stories" data-testid="stories">
            {entities.into_iter().map(|entity| {
                let overall = match entity.state {
                    EntityState::Succeeded => "✓ every step done",
                    EntityState::Failed => "✕ stopped",
                    EntityState::Pending => "pending",
                };
                view! {
                    <article class="story" data-entity=entity.entity_id.clone()>
                        <header>
                            <h3 class="mono">{format!("{}. {}", thousands(entity.position + 1), entity.entity_id)}</h3>
                            <span class="story-state">{overall}</span>
                        </header>
                        <p class="error-message">
                            "Found: "{entity.found.clone().unwrap_or_else(|| "not found in the service's database".into())}
                            {entity.held.as_ref().map(|m| format!(" · holds {} {}", amount(&m.amount), m.currency))}
                        </p>
                        <ol class="story-steps">
                            {entity.steps.iter().map(|step| {
                                let title = steps.get(step.step as usize).map(|s| s.title.clone()).unwrap_or_default();
                                let did = match step.state {
                                    StepState::Succeeded => format!("✓ done: {}", step.detail.clone().unwrap_or_default()),
                                    StepState::Failed => format!("✕ stopped here: {}", step.detail.clone().unwrap_or_default()),
                                    StepState::Skipped => "not done: an earlier step failed".to_owned(),
                                    StepState::Pending => "not sent yet".to_owned(),
                                };
                                view! {
                                    <li data-step=step.step + 1 data-step-state=step.state.as_str()>
                                        <strong>{title}</strong>
                                        <p>"Would: "{if step.planned.is_empty() { "no dry run".to_owned() } else { step.planned.join("; ") }}</p>
                                        <p class="story-did">{did}</p>
                                        <details>
                                            <summary>"Its call"</summary>
                                            <pre class="mono">{serde_json::to_string_pretty(&step.variables).unwrap_or_default()}</pre>
                                        </details>
                                    </li>
                                }
                            }).collect_view()}
                        </ol>
                    </article>
                }
            }).collect_view()}
        </div>
    }
}
