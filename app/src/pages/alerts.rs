use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use runboard_model::{Alert, AlertBoard, AlertState, Role, Silence, Watch};

use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::layout::MyRoles;
use crate::components::local_time::LocalTime;
use crate::components::refresh::{Freshness, auto_refresh};
use crate::server_fns::ScreenError;
use crate::server_fns::acknowledge_alert::AcknowledgeAlert;
use crate::server_fns::read_alerts::read_alerts;
use crate::server_fns::silence_alerts::SilenceAlerts;

/// The board's groups, in the order an on-call engineer reads them.
const GROUPS: [(AlertState, &str, &str); 4] = [
    (
        AlertState::Firing,
        "Firing",
        "Nobody has said they are on these.",
    ),
    (
        AlertState::Acknowledged,
        "Acknowledged",
        "Someone is on these: no reminder is sent.",
    ),
    (
        AlertState::Silenced,
        "Silenced",
        "A silence keeps these quiet until it ends.",
    ),
    (
        AlertState::Resolved,
        "Resolved in the last 7 days",
        "Their condition cleared by itself.",
    ),
];

/// Alerts: what the watches found, grouped by where each stands; operators acknowledge
/// and silence from here.
#[component]
pub fn Alerts() -> impl IntoView {
    let acknowledge = ServerAction::<AcknowledgeAlert>::new();
    let silence = ServerAction::<SilenceAlerts>::new();
    let board = Resource::new(
        move || (acknowledge.version().get(), silence.version().get()),
        |_| read_alerts(),
    );
    let elapsed = auto_refresh(move || board.refetch());
    let me = expect_context::<MyRoles>();
    let may_operate = Resource::new(|| (), move |()| me.holds(Role::Operator));
    let error = move || {
        acknowledge
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| silence.value().get().and_then(Result::err))
            .map(|e| view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> })
    };
    view! {
        <Title text="Alerts" />
        <div class="page-head">
            <h1>"Alerts"</h1>
            <DownloadCsv href=csv_href("/api/v1/alerts", []) what="open and resolved alerts" />
        </div>
        <Freshness elapsed />
        {error}
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading alerts…"</p> }>
            {move || Suspend::new(async move {
                let board = board.await?;
                let may_operate = may_operate.await;
                Ok::<_, ScreenError>(view! { <Board board may_operate acknowledge silence /> })
            })}
        </Transition>
    }
}

#[component]
fn Board(
    board: AlertBoard,
    may_operate: bool,
    acknowledge: ServerAction<AcknowledgeAlert>,
    silence: ServerAction<SilenceAlerts>,
) -> impl IntoView {
    let AlertBoard { alerts, silences } = board;
    let groups = GROUPS
        .into_iter()
        .map(|(state, title, meaning)| {
            let of_state: Vec<Alert> = alerts.iter().filter(|a| a.state == state).cloned().collect();
            let heading = format!("{}-heading", state.as_str());
            let labelled_by = heading.clone();
            let body = if of_state.is_empty() {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! {
                    <ul class="alerts">
                        {of_state
                            .into_iter()
                            .map(|alert| view! { <AlertItem alert may_operate acknowledge /> })
                            .collect_view()}
                    </ul>
                }
                .into_any()
            };
            view! {
                <section class="panel" aria-labelledby=labelled_by data-testid=format!("alerts-{}", state.as_str())>
                    <h2 id=heading>{title}</h2>
                    <p class="muted">{meaning}</p>
                    {body}
                </section>
            }
        })
        .collect_view();
    view! {
        {groups}
        <Silences silences may_operate silence />
    }
}

#[component]
fn AlertItem(
    alert: Alert,
    may_operate: bool,
    acknowledge: ServerAction<AcknowledgeAlert>,
) -> impl IntoView {
    let service_href = format!("/services/{}", alert.service);
    let open = alert.state != AlertState::Resolved;
    view! {
        <li class="alert" data-testid="alert">
            <p>
                <strong>{alert.headline()}</strong>" on "
                <A href=service_href>{alert.service.to_string()}</A>": "{alert.summary.clone()}
            </p>
            <p class="muted">
                "Fired "<LocalTime at=alert.fired_at />
                {alert.resolved_at.map(|at| view! { ", resolved "<LocalTime at /> })}
                {alert.acknowledged.clone().map(|ack| view! {
                    ", acknowledged by "{ack.by}" "<LocalTime at=ack.at />
                    {(!ack.note.is_empty()).then(|| format!(": “{}”", ack.note))}
                })}
            </p>
            <div class="row-actions">
                <a href=alert.link.clone()>"Open the problem"</a>
                {alert.ask_link.clone().filter(|_| open && may_operate).map(|href| view! {
                    <a class="button" href=href>"Ask for the corrective action…"</a>
                })}
                {(open && may_operate && alert.acknowledged.is_none()).then(|| view! {
                    <ActionForm action=acknowledge attr:class="filters">
                        <input type="hidden" name="id" value=alert.id.to_string() />
                        <label class="filter">
                            <span>"What you are doing (optional)"</span>
                            <input type="text" name="note" placeholder="moving the funds by hand" />
                        </label>
                        <button type="submit">"Acknowledge"</button>
                    </ActionForm>
                })}
            </div>
        </li>
    }
}

#[component]
fn Silences(
    silences: Vec<Silence>,
    may_operate: bool,
    silence: ServerAction<SilenceAlerts>,
) -> impl IntoView {
    let list = if silences.is_empty() {
        view! { <p class="muted">"No silence is in force."</p> }.into_any()
    } else {
        view! {
            <ul>
                {silences
                    .into_iter()
                    .map(|s| view! {
                        <li>
                            {s.watch.map_or("Every watch", Watch::title)}" on "
                            {s.service.map_or_else(|| "every service".to_owned(), |s| s.to_string())}
                            " until "<LocalTime at=s.until />", by "{s.created_by}": "{s.reason}
                        </li>
                    })
                    .collect_view()}
            </ul>
        }
        .into_any()
    };
    view! {
        <section class="panel" aria-labelledby="silences-heading">
            <h2 id="silences-heading">"Silences"</h2>
            {list}
            {may_operate.then(|| view! {
                <ActionForm action=silence attr:class="filters">
                    <label class="filter">
                        <span>"Service (empty: all)"</span>
                        <input type="text" name="service" placeholder="payments" />
                    </label>
                    <label class="filter">
                        <span>"Watch"</span>
                        <select name="watch">
                            <option value="">"Every watch"</option>
                            {Watch::ALL
                                .map(|w| view! { <option value=w.as_str()>{w.title()}</option> })
                                .collect_view()}
                        </select>
                    </label>
                    <label class="filter">
                        <span>"For"</span>
                        <input type="text" name="lasting" required value="2h" />
                    </label>
                    <label class="filter">
                        <span>"Why"</span>
                        <input type="text" name="reason" required placeholder="database failover under way" />
                    </label>
                    <button type="submit">"Silence"</button>
                </ActionForm>
            })}
        </section>
    }
}
