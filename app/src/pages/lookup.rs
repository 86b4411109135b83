use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use runboard_model::{LookupMatches, LookupResult, Role};

use crate::components::layout::MyRoles;
use crate::components::status::StatusBadge;
use crate::components::table_wrap::TableWrap;
use crate::format::{query_string, thousands, url_encode};
use crate::server_fns::lookup_ids::LookupIds;

/// Paste anything that holds IDs; see every saga and batch item they name, in every service.
#[component]
pub fn Lookup() -> impl IntoView {
    let lookup = ServerAction::<LookupIds>::new();
    let result = lookup.value();
    view! {
        <Title text="Lookup" />
        <h1>"Lookup"</h1>
        <ActionForm action=lookup>
            <label class="paste">
                <span>"Paste log lines, CSV, JSON or a spreadsheet column: every UUID (and each service's own ID shape) is looked up in every service."</span>
                <textarea name="text" rows="8" spellcheck="false" required></textarea>
            </label>
            <button type="submit" disabled=move || lookup.pending().get()>
                {move || if lookup.pending().get() { "Looking up…" } else { "Look up" }}
            </button>
        </ActionForm>
        {move || match result.get() {
            None => None,
            Some(Err(e)) => Some(view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> }.into_any()),
            Some(Ok(found)) => Some(view! { <LookupResults found /> }.into_any()),
        }}
    }
}

#[component]
fn LookupResults(found: LookupResult) -> impl IntoView {
    let LookupResult {
        ids,
        services,
        not_found,
    } = found;
    if ids == 0 {
        return view! { <p class="panel empty" role="status">"No ID found in the text. IDs are UUIDs like 7f1c3b2a-0d4e-4b5f-8a6b-1c2d3e4f5a6b."</p> }.into_any();
    }
    let matched = ids - not_found.len();
    view! {
        <p class="count" role="status">
            {format!("{} of {} IDs found", thousands(matched as u64), thousands(ids as u64))}
        </p>
        {services
            .into_iter()
            .filter(|s| s.error.is_some() || !s.sagas.is_empty() || !s.batch_items.is_empty())
            .map(|matches| view! { <ServiceMatches matches /> })
            .collect_view()}
        {(!not_found.is_empty()).then(|| view! {
            <section class="not-found">
                <h2>{format!("Not found in any service ({})", thousands(not_found.len() as u64))}</h2>
                <ul class="id-list">{not_found.into_iter().map(|id| view! { <li class="mono">{id}</li> }).collect_view()}</ul>
            </section>
        })}
    }
    .into_any()
}

#[component]
fn ServiceMatches(matches: LookupMatches) -> impl IntoView {
    let LookupMatches {
        service,
        sagas,
        batch_items,
        error,
    } = matches;
    let service_href = format!("/services/{}", url_encode(&service));
    let heading = service.clone();
    let me = expect_context::<MyRoles>();
    // A link carries up to this many IDs; more are pasted on the new-action page.
    const LINKED: usize = 100;
    let found: Vec<String> = sagas
        .iter()
        .map(|s| s.saga_id.clone())
        .chain(batch_items.iter().map(|(_, item)| item.item_id.clone()))
        .collect();
    let linked_ids = (found.len() <= LINKED).then(|| found.join(","));
    let act_href = format!(
        "/actions/new{}",
        query_string([
            ("service", Some(service.as_str())),
            ("ids", linked_ids.as_deref()),
        ])
    );
    let act_label = if found.len() <= LINKED {
        format!("Ask for an action on these {}…", found.len())
    } else {
        format!(
            "Ask for an action on {service}… (paste the {} IDs there)",
            found.len()
        )
    };
    view! {
        <section class="lookup-service">
            <h2><A href=service_href>{heading}</A></h2>
            <Suspense fallback=|| ()>
                {move || {
                    let (href, label) = (act_href.clone(), act_label.clone());
                    Suspend::new(async move {
                        me.holds(Role::Operator).await.then(|| view! { <p><a class="button" href=href>{label}</a></p> })
                    })
                }}
            </Suspense>
            {error.map(|e| view! { <p class="panel panel-error" role="alert">"⚠ Could not search it: "{e}</p> })}
            {(!sagas.is_empty()).then(|| {
                let service = service.clone();
                view! {
                <TableWrap>
                    <table class="lookup-sagas">
                        <caption>{format!("Sagas ({})", sagas.len())}</caption>
                        <thead><tr>
                            <th scope="col">"Saga"</th><th scope="col">"Type"</th><th scope="col">"Step"</th>
                            <th scope="col">"Status"</th><th scope="col">"Error"</th>
                        </tr></thead>
                        <tbody>
                            {sagas.into_iter().map(|saga| view! {
                                <tr>
                                    <th scope="row" class="mono">
                                        <a href=format!("/services/{}/sagas/{}", url_encode(&service), url_encode(&saga.saga_id))>{saga.saga_id.clone()}</a>
                                    </th>
                                    <td>{saga.saga_type}</td>
                                    <td>{saga.current_step}</td>
                                    <td><StatusBadge status=saga.status /></td>
                                    <td class="error-message">{saga.error_message.unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </TableWrap>
            }})}
            {(!batch_items.is_empty()).then(|| {
                let service = service.clone();
                view! {
                    <TableWrap>
                        <table class="lookup-items">
                            <caption>{format!("Batch items ({})", batch_items.len())}</caption>
                            <thead><tr>
                                <th scope="col">"Item"</th><th scope="col">"Batch"</th>
                                <th scope="col">"Status"</th><th scope="col">"Error"</th>
                            </tr></thead>
                            <tbody>
                                {batch_items.into_iter().map(|(batch, item)| {
                                    let href = format!("/services/{}/batches/{}", url_encode(&service), url_encode(&batch));
                                    view! {
                                        <tr>
                                            <th scope="row" class="mono">{item.item_id}</th>
                                            <td><a href=href>{batch}</a></td>
                                            <td>{item.status.as_str()}</td>
                                            <td class="error-message">{item.error.unwrap_or_default()}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </TableWrap>
                }
            })}
        </section>
    }
}
