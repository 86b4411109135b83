use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use runboard_model::Role;

use crate::components::action_state::ActionStateBadge;
use crate::components::layout::MyRoles;
use crate::components::local_time::LocalTime;
use crate::components::relative_time::RelativeTime;
use crate::components::status::StatusBadge;
use crate::format::{query_string, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::entity_actions::entity_actions;
use crate::server_fns::read_saga::{SagaView, read_saga};

/// One saga: its supervisor row, and its facts and history where the service keeps them.
#[component]
pub fn SagaPage() -> impl IntoView {
    let params = use_params_map();
    let key = Memo::new(move |_| {
        let p = params.read();
        (
            p.get("service").unwrap_or_default(),
            p.get("saga").unwrap_or_default(),
        )
    });
    let saga = Resource::new(
        move || key.get(),
        |(service, saga)| read_saga(service, saga),
    );
    let actions = Resource::new(
        move || key.get(),
        |(service, saga)| entity_actions(service, saga),
    );
    let me = expect_context::<MyRoles>();
    view! {
        <p class="crumbs">
            <A href="/">"Services"</A>" / "
            <A href=move || format!("/services/{}", url_encode(&key.get().0))>{move || key.get().0}</A>
            " / saga"
        </p>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading the saga…"</p> }>
            {move || Suspend::new(async move {
                let view = saga.await?;
                Ok::<_, ScreenError>(view! { <SagaDetail view /> })
            })}
        </Transition>
        <section aria-labelledby="saga-actions-heading">
            <h2 id="saga-actions-heading">"Actions that touched it"</h2>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    me.holds(Role::Operator).await.then(|| {
                        let (service, saga) = key.get();
                        view! {
                            <p><a class="button" href=format!(
                                "/actions/new{}",
                                query_string([("service", Some(service.as_str())), ("ids", Some(saga.as_str()))]),
                            )>"Fix this saga: an action or a runbook…"</a></p>
                        }
                    })
                })}
            </Suspense>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading actions…"</p> }>
                {move || Suspend::new(async move {
                    let actions = actions.await?;
                    Ok::<_, ScreenError>(if actions.is_empty() {
                        view! { <p class="muted">"No action has named this saga."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="saga-actions">
                                {actions.into_iter().map(|action| view! {
                                    <li>
                                        <A href=format!("/actions/{}", action.id)>{action.mutation.clone()}</A>
                                        " asked for by "{action.requester_name.clone()}" on "<LocalTime at=action.created_at />
                                        " · "<ActionStateBadge state=action.state />
                                    </li>
                                }).collect_view()}
                            </ul>
                        }
                        .into_any()
                    })
                })}
            </Transition>
        </section>
    }
}

#[component]
fn SagaDetail(view: SagaView) -> impl IntoView {
    let SagaView {
        read_at,
        saga,
        events,
        facts,
    } = view;
    view! {
        <Title text=format!("Saga {}", saga.saga_id) />
        <h1 class="mono saga-id">{saga.saga_id.clone()}</h1>
        <dl class="saga-row">
            <div><dt>"Status"</dt><dd><StatusBadge status=saga.status /></dd></div>
            <div><dt>"Type"</dt><dd>{saga.saga_type.clone()}</dd></div>
            <div><dt>"Current step"</dt><dd>{saga.current_step.clone()}</dd></div>
            <div><dt>"Created"</dt><dd><RelativeTime at=saga.created_at now=read_at /></dd></div>
            <div><dt>"Last progress"</dt><dd><RelativeTime at=saga.updated_at now=read_at /></dd></div>
            {saga.error_message.clone().map(|e| view! {
                <div class="wide"><dt>"Error"</dt><dd class="error-message">{e}</dd></div>
            })}
        </dl>
        {facts.map(|facts| view! {
            <section aria-labelledby="facts-heading">
                <h2 id="facts-heading">"Facts"</h2>
                {if facts.is_empty() {
                    view! { <p class="muted">"The service keeps no facts about this saga."</p> }.into_any()
                } else {
                    view! {
                        <dl class="saga-facts">
                            {facts.into_iter().map(|fact| view! {
                                <div><dt>{fact.name}</dt><dd class="mono">{fact.value}</dd></div>
                            }).collect_view()}
                        </dl>
                    }
                    .into_any()
                }}
            </section>
        })}
        <section aria-labelledby="history-heading">
            <h2 id="history-heading">"History"</h2>
            {match events {
                None => view! { <p class="muted">"This service keeps no history Runboard can read (no saga_events query is configured for it)."</p> }.into_any(),
                Some(events) if events.is_empty() => view! { <p class="muted">"No events recorded."</p> }.into_any(),
                Some(events) => view! {
                    <ol class="history">
                        {events.into_iter().map(|event| view! {
                            <li>
                                <RelativeTime at=event.at now=read_at />
                                " "<strong>{event.kind}</strong>
                                {(!event.detail.is_empty()).then(|| view! { " · "<span class="detail">{event.detail}</span> })}
                            </li>
                        }).collect_view()}
                    </ol>
                }
                .into_any(),
            }}
        </section>
    }
}
