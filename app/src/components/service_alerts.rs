use leptos::prelude::*;
use runboard_model::{Alert, AlertBoard, AlertState, Role};

use crate::components::layout::MyRoles;
use crate::server_fns::ScreenError;

/// The alerts board the navigation counts, read once per page and shared through context
/// with the screens that show a service's own alerts.
#[derive(Clone, Copy)]
pub struct AlertsOnPage(pub Resource<Result<AlertBoard, ScreenError>>);

/// How much of each alert a place shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// A link per alert, its summary on hover: a row of the overview.
    Badges,
    /// What was seen, where to look and, for operators, where to ask for the fix: the
    /// service's page.
    Panel,
}

/// The alerts open on `service` (firing, acknowledged or silenced), where the service is
/// shown, so that nobody has to go to the Alerts screen to learn what concerns it.
/// Nothing while none is open.
#[component]
pub fn ServiceAlerts(#[prop(into)] service: Signal<String>, shown: Shown) -> impl IntoView {
    let AlertsOnPage(board) = expect_context::<AlertsOnPage>();
    let me = expect_context::<MyRoles>();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let service = service.get();
                Suspend::new(async move {
                    let open: Vec<Alert> = board
                        .await
                        .map(|board| {
                            board
                                .alerts
                                .into_iter()
                                .filter(|a| a.service.as_str() == service && a.state != AlertState::Resolved)
                                .collect()
                        })
                        .unwrap_or_default();
                    if open.is_empty() {
                        return None;
                    }
                    Some(match shown {
                        Shown::Badges => badges(open).into_any(),
                        Shown::Panel => panel(open, me.holds(Role::Operator).await).into_any(),
                    })
                })
            }}
        </Suspense>
    }
}

fn state_note(alert: &Alert) -> &'static str {
    match alert.state {
        AlertState::Firing => "",
        AlertState::Acknowledged => " (acknowledged)",
        AlertState::Silenced => " (silenced)",
        AlertState::Resolved => " (resolved)",
    }
}

fn badges(open: Vec<Alert>) -> impl IntoView {
    view! {
        <ul class="row-alerts" aria-label="Alerts">
            {open
                .into_iter()
                .map(|alert| view! {
                    <li>
                        <a
                            class="badge badge-alert"
                            class:quiet=alert.state != AlertState::Firing
                            href=alert.link.clone()
                            title=alert.summary.clone()
                            data-testid="row-alert"
                        >
                            "⚠ "{alert.headline()}{state_note(&alert)}
                        </a>
                    </li>
                })
                .collect_view()}
        </ul>
    }
}

fn panel(open: Vec<Alert>, may_operate: bool) -> impl IntoView {
    view! {
        <section class="panel panel-alert" aria-labelledby="service-alerts-heading" data-testid="service-alerts">
            <h2 id="service-alerts-heading">"Alerts"</h2>
            <ul class="alerts">
                {open
                    .into_iter()
                    .map(|alert| view! {
                        <li class="alert">
                            <p>
                                <strong>{alert.headline()}</strong>{state_note(&alert)}": "{alert.summary.clone()}
                            </p>
                            <div class="row-actions">
                                <a href=alert.link.clone()>"Open the problem"</a>
                                {alert.ask_link.clone().filter(|_| may_operate).map(|href| view! {
                                    <a class="button" href=href>"Ask for the corrective action…"</a>
                                })}
                                <a href="/alerts">"Acknowledge or silence on the Alerts screen"</a>
                            </div>
                        </li>
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}
