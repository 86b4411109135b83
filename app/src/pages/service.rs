use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Form};
use leptos_router::hooks::{use_params_map, use_query_map};
use runboard_model::{ErrorGroup, Role, SagaQuery, SagaStatus};

use crate::components::download_csv::{DownloadCsv, csv_href};
use crate::components::layout::MyRoles;
use crate::components::live_read::{ReadAt, asked_live, refresh_shared};
use crate::components::refresh::{Freshness, auto_refresh};
use crate::components::relative_time::RelativeTime;
use crate::components::service_alerts::{ServiceAlerts, Shown};
use crate::components::status::StatusBadge;
use crate::components::table_wrap::TableWrap;
use crate::format::{query_string, thousands, url_encode};
use crate::server_fns::ScreenError;
use crate::server_fns::service_errors::{ErrorGroups, service_errors};
use crate::server_fns::service_sagas::{SagaList, service_sagas};

/// Ages offered by the age filter: (value in the URL, label).
const AGES: &[(&str, &str)] = &[
    ("", "any age"),
    ("10m", "older than 10 min"),
    ("1h", "older than 1 h"),
    ("1d", "older than 1 day"),
    ("7d", "older than 7 days"),
];

/// One service: its failed sagas grouped by error, and its sagas filtered as the URL says.
#[component]
pub fn Service() -> impl IntoView {
    let params = use_params_map();
    let service = Memo::new(move |_| params.read().get("service").unwrap_or_default());
    let first_name = service.get_untracked();
    let query_map = use_query_map();
    let query = Memo::new(move |_| {
        let q = query_map.read();
        SagaQuery {
            status: q.get("status"),
            saga_type: q.get("type"),
            step: q.get("step"),
            error: q.get("error"),
            older_than: q.get("older_than"),
            newer_than: q.get("newer_than"),
            sort: q.get("sort"),
            after: q.get("after"),
            limit: q.get("limit").and_then(|l| l.parse().ok()),
        }
    });
    // The whole error group selected for an action: every saga with that error, not the visible page.
    let selected = RwSignal::new(None::<ErrorGroup>);
    let me = expect_context::<MyRoles>();
    let live = asked_live();
    let groups = Resource::new(
        move || (service.get(), live.get()),
        |(s, live)| service_errors(s, live),
    );
    let sagas = Resource::new(
        move || (service.get(), query.get(), live.get()),
        |(s, q, live)| service_sagas(s, q, live),
    );
    let elapsed = auto_refresh(refresh_shared(move || {
        groups.refetch();
        sagas.refetch();
    }));

    view! {
        // On the server the head is written once the page is, when this view may be gone
        // already: then the name it was rendered for stands.
        <Title text=move || service.try_get().unwrap_or_else(|| first_name.clone()) />
        <p class="crumbs"><A href="/">"Services"</A>" / "{move || service.get()}</p>
        <div class="page-head">
            <h1>{move || service.get()}</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    me.holds(Role::Operator).await.then(|| view! {
                        <a class="button" href=format!("/actions/new{}", query_string([("service", Some(service.get().as_str()))]))>
                            "New action…"
                        </a>
                    })
                })}
            </Suspense>
        </div>
        <Freshness elapsed />
        <ServiceAlerts service shown=Shown::Panel />

        <section aria-labelledby="groups-heading">
            <h2 id="groups-heading">"Failed sagas by error"</h2>
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading error groups…"</p> }>
                {move || Suspend::new(async move {
                    let groups = groups.await?;
                    let can_act = me.holds(Role::Operator).await;
                    Ok::<_, ScreenError>(view! { <ErrorGroupTable groups service selected can_act /> })
                })}
            </Transition>
            {move || selected.get().map(|group| view! {
                <div class="selection" role="status">
                    <p>
                        <strong>"Selected: all "{thousands(group.count)}" failed sagas"</strong>
                        " with the error "<q class="mono">{group.error_message.clone()}</q>
                        ", not only those on this page."
                    </p>
                    <div class="row-actions">
                        <a class="button" href=format!(
                            "/actions/new{}",
                            query_string([("service", Some(service.get().as_str())), ("error", Some(group.error_message.as_str()))]),
                        )>"Ask for an action or run a runbook on them…"</a>
                        <button type="button" on:click=move |_| selected.set(None)>"Clear selection"</button>
                    </div>
                </div>
            })}
        </section>

        <section aria-labelledby="sagas-heading">
            <h2 id="sagas-heading">"Sagas"</h2>
            <SagaFilters query />
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading sagas…"</p> }>
                {move || Suspend::new(async move {
                    let list = sagas.await?;
                    Ok::<_, ScreenError>(view! { <SagaTable list service query /> })
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ErrorGroupTable(
    groups: ErrorGroups,
    service: Memo<String>,
    selected: RwSignal<Option<ErrorGroup>>,
    /// Operators may select a group for an action; others only look.
    can_act: bool,
) -> impl IntoView {
    let ErrorGroups {
        read_at,
        answered_at,
        groups,
    } = groups;
    if groups.is_empty() {
        return view! {
            <p class="panel empty">"No failed sagas. Nothing to fix here."</p>
            <ReadAt read_at now=answered_at />
        }
        .into_any();
    }
    let csv = csv_href(
        &format!(
            "/api/v1/services/{}/errors",
            url_encode(&service.get_untracked())
        ),
        [],
    );
    view! {
        <div class="list-head">
            <ReadAt read_at now=answered_at />
            <DownloadCsv href=csv what="the error groups" />
        </div>
        <TableWrap>
            <table class="groups">
                <thead>
                    <tr>
                        <th scope="col">"Error message"</th>
                        <th scope="col" class="num">"Sagas"</th>
                        <th scope="col">"First seen"</th>
                        <th scope="col">"Last seen"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {groups
                        .into_iter()
                        .map(|group| {
                            let href = format!(
                                "/services/{}{}",
                                service.get_untracked(),
                                query_string([("status", Some("failed")), ("error", Some(group.error_message.as_str()))]),
                            );
                            let to_select = group.clone();
                            view! {
                                <tr>
                                    <th scope="row" class="error-message">{group.error_message.clone()}</th>
                                    <td class="num">{thousands(group.count)}</td>
                                    <td><RelativeTime at=group.first_seen now=read_at /></td>
                                    <td><RelativeTime at=group.last_seen now=read_at /></td>
                                    <td class="row-actions">
                                        <a href=href>"Show sagas"</a>
                                        {can_act.then(|| view! {
                                            <button type="button" on:click=move |_| selected.set(Some(to_select.clone()))>
                                                "Select all "{thousands(group.count)}
                                            </button>
                                        })}
                                    </td>
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

/// A plain GET form: the filters end up in the URL, and it works before hydration too.
#[component]
fn SagaFilters(query: Memo<SagaQuery>) -> impl IntoView {
    let value =
        move |f: fn(&SagaQuery) -> Option<String>| move || f(&query.get()).unwrap_or_default();
    view! {
        <Form method="GET" action="">
            <div class="filters">
                <label>
                    <span>"Status"</span>
                    <select name="status" prop:value=value(|q| q.status.clone())>
                        <option value="">"any"</option>
                        {SagaStatus::ALL
                            .iter()
                            .map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    <span>"Type"</span>
                    <input name="type" prop:value=value(|q| q.saga_type.clone()) />
                </label>
                <label>
                    <span>"Step"</span>
                    <input name="step" prop:value=value(|q| q.step.clone()) />
                </label>
                <label class="wide">
                    <span>"Error message"</span>
                    <input name="error" prop:value=value(|q| q.error.clone()) />
                </label>
                <label>
                    <span>"Age"</span>
                    <select name="older_than" prop:value=value(|q| q.older_than.clone())>
                        {AGES.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    <span>"Order"</span>
                    <select name="sort" prop:value=value(|q| q.sort.clone())>
                        <option value="newest">"newest first"</option>
                        <option value="oldest">"oldest first"</option>
                    </select>
                </label>
                <button type="submit">"Apply"</button>
            </div>
        </Form>
    }
}

#[component]
fn SagaTable(list: SagaList, service: Memo<String>, query: Memo<SagaQuery>) -> impl IntoView {
    let SagaList {
        read_at,
        answered_at,
        page,
    } = list;
    let link = move |after: Option<&str>| {
        let q = query.get();
        let pairs = filters(&q).into_iter().chain([("after", after)]);
        format!("/services/{}{}", service.get(), query_string(pairs))
    };
    // The whole filtered set, every page of it.
    let csv = csv_href(
        &format!(
            "/api/v1/services/{}/sagas",
            url_encode(&service.get_untracked())
        ),
        filters(&query.get_untracked()),
    );
    let paged = query.get_untracked().after.is_some();
    let next = page.next.clone().map(|next| link(Some(&next)));
    if page.sagas.is_empty() {
        return view! {
            <p class="panel empty">"No saga matches these filters."</p>
            <ReadAt read_at now=answered_at />
            {paged.then(|| view! { <p><A href=link(None)>"Back to the first page"</A></p> })}
        }
        .into_any();
    }
    view! {
        <div class="list-head">
            <ReadAt read_at now=answered_at />
            <DownloadCsv href=csv what="the sagas matching these filters" />
        </div>
        <TableWrap>
            <table class="sagas">
                <thead>
                    <tr>
                        <th scope="col">"Saga"</th>
                        <th scope="col">"Type"</th>
                        <th scope="col">"Step"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Error"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Updated"</th>
                    </tr>
                </thead>
                <tbody>
                    {page
                        .sagas
                        .into_iter()
                        .map(|saga| view! {
                            <tr>
                                <th scope="row" class="mono">
                                    // A plain anchor: the router still navigates it in place, and
                                    // `A` would resolve each of a page's 50 links reactively.
                                    <a href=format!("/services/{}/sagas/{}", url_encode(&service.get_untracked()), url_encode(&saga.saga_id))>
                                        {saga.saga_id.clone()}
                                    </a>
                                </th>
                                <td>{saga.saga_type.clone()}</td>
                                <td>{saga.current_step.clone()}</td>
                                <td><StatusBadge status=saga.status /></td>
                                <td class="error-message">{saga.error_message.clone().unwrap_or_default()}</td>
                                <td><RelativeTime at=saga.created_at now=read_at /></td>
                                <td><RelativeTime at=saga.updated_at now=read_at /></td>
                            </tr>
                        })
                        .collect_view()}
                </tbody>
            </table>
        </TableWrap>
        <nav class="pager" aria-label="Pages">
            {paged.then(|| view! { <A href=link(None)>"First page"</A> })}
            {next.map(|href| view! { <A href=href>"Next page"</A> })}
        </nav>
    }
    .into_any()
}

/// The list's filters as the screen's URL and the API both take them.
fn filters(q: &SagaQuery) -> [(&'static str, Option<&str>); 7] {
    [
        ("status", q.status.as_deref()),
        ("type", q.saga_type.as_deref()),
        ("step", q.step.as_deref()),
        ("error", q.error.as_deref()),
        ("older_than", q.older_than.as_deref()),
        ("newer_than", q.newer_than.as_deref()),
        ("sort", q.sort.as_deref()),
    ]
}
