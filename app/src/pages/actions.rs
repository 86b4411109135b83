use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use runboard_model::Action;

use crate::components::action_state::ActionStateBadge;
use crate::components::local_time::LocalTime;
use crate::components::refresh::{Freshness, auto_refresh};
use crate::components::table_wrap::TableWrap;
use crate::format::thousands;
use crate::server_fns::ScreenError;
use crate::server_fns::list_actions::list_actions;

/// The list's views: (value in the URL, label).
const VIEWS: &[(&str, &str)] = &[
    ("awaiting_me", "Waiting for my approval"),
    ("mine", "Mine"),
    ("all", "All"),
];

/// Actions: those waiting for my approval, mine, or all.
#[component]
pub fn Actions() -> impl IntoView {
    let query = use_query_map();
    let view_name = Memo::new(move |_| {
        query
            .read()
            .get("view")
            .filter(|v| VIEWS.iter().any(|(name, _)| name == v))
            .unwrap_or_else(|| "all".to_owned())
    });
    let actions = Resource::new(move || view_name.get(), list_actions);
    let elapsed = auto_refresh(move || actions.refetch());
    view! {
        <Title text="Actions" />
        <h1>"Actions"</h1>
        <Freshness elapsed />
        <nav class="tabs" aria-label="Which actions">
            {VIEWS
                .iter()
                .map(|(name, label)| {
                    let href = format!("/actions?view={name}");
                    view! {
                        <a href=href aria-current=move || (view_name.get() == *name).then_some("page")>
                            {*label}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading actions…"</p> }>
            {move || Suspend::new(async move {
                let actions = actions.await?;
                Ok::<_, ScreenError>(view! { <ActionTable actions /> })
            })}
        </Transition>
    }
}

#[component]
fn ActionTable(actions: Vec<Action>) -> impl IntoView {
    if actions.is_empty() {
        return view! { <p class="panel empty">"No actions here."</p> }.into_any();
    }
    view! {
        <TableWrap>
            <table class="actions">
                <thead>
                    <tr>
                        <th scope="col">"Action"</th>
                        <th scope="col">"State"</th>
                        <th scope="col" class="num">"Entities"</th>
                        <th scope="col">"Money"</th>
                        <th scope="col">"Asked for by"</th>
                        <th scope="col">"Asked at"</th>
                    </tr>
                </thead>
                <tbody>
                    {actions
                        .into_iter()
                        .map(|action| {
                            let href = format!("/actions/{}", action.id);
                            let money = action
                                .preview
                                .money
                                .iter()
                                .map(|m| format!("{} {}", crate::format::amount(&m.amount), m.currency))
                                .collect::<Vec<_>>()
                                .join(", ");
                            view! {
                                <tr>
                                    <th scope="row">
                                        <a href=href>{format!("{} on {}", action.mutation, action.service)}</a>
                                    </th>
                                    <td><ActionStateBadge state=action.state /></td>
                                    <td class="num">{thousands(action.preview.entities)}</td>
                                    <td>{money}</td>
                                    <td>{action.requester_name.clone()}</td>
                                    <td><LocalTime at=action.created_at /></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </TableWrap>
    }
    .into_any()
}
