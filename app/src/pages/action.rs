use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use runboard_model::{ActionId, ActionState, DryRun, EntityState, IdempotencyKey};

use crate::components::action_state::ActionStateBadge;
use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::local_time::LocalTime;
use crate::components::pace::PacePanel;
use crate::components::refresh::{Freshness, auto_refresh_every};
use crate::components::runbook_story::{RunbookSteps, StoryCards};
use crate::components::table_wrap::TableWrap;
use crate::format::{amount, percent, thousands};
use crate::server_fns::ScreenError;
use crate::server_fns::approve_action::ApproveAction;
use crate::server_fns::cancel_action::CancelAction;
use crate::server_fns::read_action::{ActionPage, read_action};
use crate::server_fns::reject_action::RejectAction;
use crate::server_fns::resume_action::ResumeAction;
use crate::server_fns::set_action_pace::SetActionPace;
use crate::server_fns::submit_action::SubmitAction;

/// The page follows a running action closely.
const LIVE: Duration = Duration::from_secs(2);

/// One action: its preview, approvals, live per-entity progress, results and audit trail,
/// with the steps this person may take now.
#[component]
pub fn ActionView() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let query = use_query_map();
    let entities = Memo::new(move |_| {
        let q = query.read();
        (
            q.get("after").and_then(|a| a.parse::<u64>().ok()),
            q.get("only"),
        )
    });
    let submit = ServerAction::<SubmitAction>::new();
    let approve = ServerAction::<ApproveAction>::new();
    let reject = ServerAction::<RejectAction>::new();
    let cancel = ServerAction::<CancelAction>::new();
    let resume = ServerAction::<ResumeAction>::new();
    let set_pace = ServerAction::<SetActionPace>::new();
    let page = Resource::new(
        move || {
            (
                id.get(),
                entities.get(),
                submit.version().get(),
                approve.version().get(),
                reject.version().get(),
                cancel.version().get(),
                resume.version().get(),
                set_pace.version().get(),
            )
        },
        |(id, (after, only), ..)| read_action(ActionId::from(id), after, only),
    );
    let elapsed = auto_refresh_every(LIVE, move || page.refetch());
    let steps = Steps {
        submit,
        approve,
        reject,
        cancel,
        resume,
        set_pace,
    };
    view! {
        <p class="crumbs"><A href="/actions">"Actions"</A>" / "{move || id.get()}</p>
        <Freshness elapsed every=LIVE />
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the action…"</p> }>
            {move || Suspend::new(async move {
                let page = page.await?;
                Ok::<_, ScreenError>(view! { <ActionBody page steps /> })
            })}
        </Transition>
        <StepErrors steps />
    }
}

#[derive(Clone, Copy)]
struct Steps {
    submit: ServerAction<SubmitAction>,
    approve: ServerAction<ApproveAction>,
    reject: ServerAction<RejectAction>,
    cancel: ServerAction<CancelAction>,
    resume: ServerAction<ResumeAction>,
    set_pace: ServerAction<SetActionPace>,
}

/// A step the server refused, said in place.
#[component]
fn StepErrors(steps: Steps) -> impl IntoView {
    let error = move || {
        [
            steps.submit.value().get().and_then(|r| r.err()),
            steps.approve.value().get().and_then(|r| r.err()),
            steps.reject.value().get().and_then(|r| r.err()),
            steps.cancel.value().get().and_then(|r| r.err()),
            steps.resume.value().get().and_then(|r| r.err()),
            steps.set_pace.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
    };
    move || {
        error().map(|e| view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> })
    }
}

#[component]
fn ActionBody(page: ActionPage, steps: Steps) -> impl IntoView {
    let ActionPage {
        read_at: _,
        action,
        entities,
        only,
        next,
        audit,
        viewer,
        may_operate,
        may_approve,
    } = page;
    let is_requester = action.requester == viewer;
    let approved_by_me = action.approvals.iter().any(|a| a.approver == viewer);
    let state = action.state;
    let total = action.progress.succeeded + action.progress.failed + action.progress.pending;
    let record = format!("/api/v1/actions/{}/record.md", action.id);
    let none_here = entities.is_empty();
    // Every entity shown by this filter, as found, planned and done, not this page alone.
    let entities_csv = csv_href(
        &format!("/api/v1/actions/{}/entities", action.id),
        [("state", only.map(EntityState::as_str))],
    );
    let request_file = format!("/api/v1/actions/{}/request.toml", action.id);
    let preview = action.preview.clone();
    let groups = match &preview.dry_run {
        DryRun::Done { effects, groups } => Some((*effects, groups.clone())),
        DryRun::NotOffered => None,
    };
    let page_link = {
        let base = format!("/actions/{}", action.id);
        move |after: Option<u64>, only: Option<EntityState>| {
            let mut query = Vec::new();
            if let Some(after) = after {
                query.push(format!("after={after}"));
            }
            if let Some(only) = only {
                query.push(format!("only={}", only.as_str()));
            }
            if query.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", query.join("&"))
            }
        }
    };
    // Copy, so that each form below can carry it.
    let id = StoredValue::new(action.id.to_string());
    let digest = action.digest.to_string();
    let money = if preview.money.is_empty() {
        "none".to_owned()
    } else {
        preview
            .money
            .iter()
            .map(|m| format!("{} {}", amount(&m.amount), m.currency))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cancellable = may_operate
        && (state.can_become(ActionState::Cancelled) || state.can_become(ActionState::Cancelling));
    let calls = preview.calls();
    let runbook = action.is_runbook();
    view! {
        <Title text=format!("{} on {}", action.mutation, action.service) />
        <h1>{format!("{} on {}", action.mutation, action.service)}</h1>
        <p class="action-state"><ActionStateBadge state /></p>
        {action.state_detail.clone().map(|d| view! { <p class="panel" role="status">{d}</p> })}
        <dl class="figures">
            <div><dt>"Asked for by"</dt><dd>{action.requester_name.clone()}</dd></div>
            <div><dt>"Asked at"</dt><dd><LocalTime at=action.created_at /></dd></div>
            <div><dt>"Reason"</dt><dd>{action.reason.clone().unwrap_or_else(|| "not submitted yet".into())}</dd></div>
            {action.incident_url.clone().map(|url| view! { <div><dt>"Incident"</dt><dd><a href=url.clone() rel="noopener noreferrer">{url.clone()}</a></dd></div> })}
            <div><dt>"Approvals"</dt><dd data-testid="approvals">{format!("{} of {}", action.approvals.len(), action.approvals_needed)}</dd></div>
            <div><dt>"Money moved"</dt><dd>{money}</dd></div>
            <div><dt>"Preview expires"</dt><dd><LocalTime at=action.expires_at /></dd></div>
        </dl>

        <section class="panel steps" aria-label="What you can do">
            {(state == ActionState::Previewed && is_requester).then(|| view! {
                <ActionForm action=steps.submit attr:class="filters">
                    <input type="hidden" name="id" value=id.get_value() />
                    <label class="filter">
                        <span>"Why is it needed?"</span>
                        <input type="text" name="reason" required placeholder="INC-1234: the provider was down" />
                    </label>
                    <label class="filter">
                        <span>"Incident link (optional)"</span>
                        <input type="url" name="incident_url" placeholder="https://…" />
                    </label>
                    <button type="submit">"Submit for approval"</button>
                </ActionForm>
            })}
            {(state == ActionState::AwaitingApproval && is_requester).then(|| view! {
                <p>"Waiting for another approver: you cannot approve your own action."</p>
            })}
            {(state == ActionState::AwaitingApproval && may_approve && !is_requester && !approved_by_me).then(|| view! {
                <p>"You approve exactly the preview below (digest "<code class="mono">{digest[..12].to_owned()}"…"</code>")."</p>
                <div class="row-actions">
                    <ActionForm action=steps.approve>
                        <input type="hidden" name="id" value=id.get_value() />
                        <input type="hidden" name="digest" value=digest.clone() />
                        <button type="submit">"Approve"</button>
                    </ActionForm>
                    <ActionForm action=steps.reject attr:class="filters">
                        <input type="hidden" name="id" value=id.get_value() />
                        <label class="filter">
                            <span>"Reason to reject"</span>
                            <input type="text" name="reason" required />
                        </label>
                        <button type="submit">"Reject"</button>
                    </ActionForm>
                </div>
            })}
            {(approved_by_me && state == ActionState::AwaitingApproval).then(|| view! {
                <p>"You approved it; it needs more approvals."</p>
            })}
            {(state == ActionState::Paused && may_operate).then(|| view! {
                <ActionForm action=steps.resume>
                    <input type="hidden" name="id" value=id.get_value() />
                    <button type="submit">"Resume"</button>
                </ActionForm>
            })}
            {cancellable.then(|| view! {
                <ActionForm action=steps.cancel>
                    <input type="hidden" name="id" value=id.get_value() />
                    <button type="submit" class="secondary">"Cancel action"</button>
                </ActionForm>
            })}
            <p>
                <a href=record download>"Download the Markdown record"</a>
                " · "
                <a href=request_file download>"Download the request as a file"</a>
                " (for review, and for "<code>"runboard action plan"</code>")"
            </p>
        </section>

        <section aria-labelledby="progress-heading">
            <h2 id="progress-heading">"Progress"</h2>
            <p data-testid="progress">
                {format!(
                    "{} succeeded, {} failed, {} pending of {} ({} done)",
                    thousands(action.progress.succeeded),
                    thousands(action.progress.failed),
                    thousands(action.progress.pending),
                    thousands(total),
                    percent(action.progress.succeeded + action.progress.failed, total)
                )}
            </p>
            <nav class="row-actions" aria-label="Which entities">
                {[None, Some(EntityState::Failed), Some(EntityState::Pending), Some(EntityState::Succeeded)].into_iter().map(|state| {
                    let label = match state {
                        None => "All",
                        Some(EntityState::Failed) => "Failed",
                        Some(EntityState::Pending) => "Pending",
                        Some(EntityState::Succeeded) => "Succeeded",
                    };
                    let current = (state == only).then_some("page");
                    view! { <A href=page_link(None, state) attr:aria-current=current>{label}</A> }
                }).collect_view()}
            </nav>
            <DownloadCsv href=entities_csv what="these entities, every page" />
            {runbook.then(|| view! { <StoryCards entities=entities.clone() steps=preview.steps.clone() /> })}
            {(!runbook).then(|| view! {
            <TableWrap>
                <table class="results" data-testid="entities">
                    <thead><tr>
                        <th scope="col" class="num">"#"</th>
                        <th scope="col">"Entity"</th><th scope="col">"As found"</th>
                        <th scope="col">"Money held"</th><th scope="col">"The dry run said"</th>
                        <th scope="col">"Result"</th><th scope="col" class="num">"Call"</th>
                        <th scope="col">"Detail"</th>
                    </tr></thead>
                    <tbody>
                        {entities.iter().map(|e| view! {
                            <tr>
                                <td class="num">{thousands(e.position + 1)}</td>
                                <th scope="row" class="mono">{e.entity_id.clone()}</th>
                                <td class="error-message">{e.found.clone().unwrap_or_else(|| "not found in the service's database".into())}</td>
                                <td>{e.held.as_ref().map(|m| format!("{} {}", amount(&m.amount), m.currency))}</td>
                                <td class="error-message">{e.planned.join("; ")}</td>
                                <td>{match e.state { EntityState::Succeeded => "✓ succeeded", EntityState::Failed => "✕ failed", EntityState::Pending => "pending" }}</td>
                                <td class="num" title=format!("{} attempts", e.attempts)>{e.chunk}</td>
                                <td class="error-message">{e.detail.clone().unwrap_or_default()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </TableWrap>
            })}
            {none_here.then(|| view! { <p class="muted">"No entities here."</p> })}
            {next.map(|after| view! {
                <p><A href=page_link(Some(after), only)>"Next entities →"</A>" (the Markdown record has them all)"</p>
            })}
        </section>

        <PacePanel action=action.clone() may_operate set_pace=steps.set_pace />

        <section aria-labelledby="preview-heading">
            <h2 id="preview-heading">"Preview"</h2>
            {runbook.then(|| view! { <RunbookSteps action_id=action.id.clone() entities=preview.entities steps=preview.steps.clone() /> })}
            {(!runbook).then(|| view! {
            <p>
                {format!(
                    "{} {} to ",
                    thousands(calls),
                    if calls == 1 { "call" } else { "calls" }
                )}
                <code class="mono">{preview.endpoint.clone()}</code>
                {format!(
                    ", {} at a time, up to {} {} each",
                    preview.concurrency,
                    thousands(u64::from(preview.chunk_size)),
                    if preview.chunk_size == 1 { "entity" } else { "entities" }
                )}
                {preview.entity_argument.clone().map(|a| format!(" (in {a})"))}
                ", each with the idempotency key "<code class="mono">{IdempotencyKey::pattern(&action.id, false)}</code>
                ", whose entities are fixed before the first call."
            </p>
            <pre class="mono document">{preview.document.clone()}</pre>
            <p>"Variables besides the entities:"</p>
            <pre class="mono">{serde_json::to_string_pretty(&preview.variables).unwrap_or_default()}</pre>
            {match groups {
                Some((effects, groups)) => view! {
                    <p>{format!(
                        "The service's dry run of all {} entities lists {} effects; by what they do:",
                        thousands(preview.entities),
                        thousands(effects)
                    )}</p>
                    <TableWrap>
                        <table class="preview" data-testid="effect-groups">
                            <thead><tr>
                                <th scope="col" class="num">"Effects"</th><th scope="col">"For example"</th>
                                <th scope="col">"Money"</th>
                            </tr></thead>
                            <tbody>
                                {groups.into_iter().map(|g| view! {
                                    <tr>
                                        <td class="num">{thousands(g.count)}</td>
                                        <td class="error-message">{g.example}</td>
                                        <td>{g.money.iter().map(|m| format!("{} {}", amount(&m.amount), m.currency)).collect::<Vec<_>>().join(", ")}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </TableWrap>
                }.into_any(),
                None => view! { <p class="panel panel-error" role="status">"This service gives no dry run for this mutation: only Runboard's own part (entities and requests) is shown."</p> }.into_any(),
            }}
            })}
        </section>

        <section aria-labelledby="approvals-heading">
            <h2 id="approvals-heading">"Approvals"</h2>
            {if action.approvals.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {action.approvals.iter().map(|a| view! {
                            <li>{a.approver_name.clone()}" approved digest "<code class="mono">{a.digest.as_str()[..12].to_owned()}"…"</code>" at "<LocalTime at=a.at /></li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>

        <section aria-labelledby="audit-heading">
            <h2 id="audit-heading">"Audit trail"</h2>
            <TableWrap>
                <table class="audit">
                    <thead><tr>
                        <th scope="col" class="num">"#"</th><th scope="col">"When"</th>
                        <th scope="col">"Who"</th><th scope="col">"What"</th>
                    </tr></thead>
                    <tbody>
                        {audit.into_iter().map(|e| view! {
                            <tr>
                                <td class="num">{e.seq}</td>
                                <td><LocalTime at=e.at /></td>
                                <td>{e.actor}</td>
                                <td>{e.kind}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </TableWrap>
        </section>
    }
}
