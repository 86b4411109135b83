use leptos::prelude::*;
use leptos_meta::Title;
use runboard_model::{ApiOperation, ApiReference};

use crate::components::table_wrap::TableWrap;
use crate::server_fns::ScreenError;
use crate::server_fns::read_api_reference::read_api_reference;

/// The JSON API for people who script Runboard: every route, who may call it, what it takes
/// and answers, from the same OpenAPI document `/api/v1/openapi.json` serves.
#[component]
pub fn ApiReferencePage() -> impl IntoView {
    let reference = Resource::new(|| (), |()| read_api_reference());
    view! {
        <Title text="API reference" />
        <h1>"API reference"</h1>
        <p class="muted">
            "Scripts call these with a personal token from "<a href="/account">"Account"</a>
            " ("<code>"Authorization: Bearer …"</code>"). The machine-readable document is "
            <a href="/api/v1/openapi.json" rel="external">"/api/v1/openapi.json"</a>
            " (OpenAPI 3.1; "<code>"runboard openapi"</code>" prints it too)."
        </p>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the reference…"</p> }>
            {move || Suspend::new(async move {
                let reference = reference.await?;
                Ok::<_, ScreenError>(view! { <Reference reference /> })
            })}
        </Suspense>
    }
}

#[component]
fn Reference(reference: ApiReference) -> impl IntoView {
    let mut tags: Vec<String> = Vec::new();
    for operation in &reference.operations {
        if !tags.contains(&operation.tag) {
            tags.push(operation.tag.clone());
        }
    }
    let ApiReference {
        description,
        version,
        operations,
        schemas,
        ..
    } = reference;
    view! {
        <p>{description}" Version "{version}"."</p>
        <nav aria-label="Parts of the API">
            <ul class="inline-list">
                {tags.iter().map(|tag| view! { <li><a href=format!("#part-{tag}")>{tag.clone()}</a></li> }).collect_view()}
                <li><a href="#schemas">"schemas"</a></li>
            </ul>
        </nav>
        {tags
            .into_iter()
            .map(|tag| {
                let part: Vec<ApiOperation> = operations.iter().filter(|o| o.tag == tag).cloned().collect();
                view! {
                    <section aria-labelledby=format!("part-{tag}")>
                        <h2 id=format!("part-{tag}")>{tag.clone()}</h2>
                        <TableWrap>
                            <table class="api-reference" data-testid="api-operations">
                                <thead><tr>
                                    <th scope="col">"Route"</th>
                                    <th scope="col">"What it does"</th>
                                    <th scope="col">"Who may call it"</th>
                                    <th scope="col">"Takes"</th>
                                    <th scope="col">"Answers"</th>
                                </tr></thead>
                                <tbody>{part.into_iter().map(|operation| view! { <OperationRow operation /> }).collect_view()}</tbody>
                            </table>
                        </TableWrap>
                    </section>
                }
            })
            .collect_view()}
        <section aria-labelledby="schemas">
            <h2 id="schemas">"Schemas"</h2>
            <p class="muted">"JSON Schema (2020-12) of every body and answer; errors are always an "<a href="#schema-ErrorBody">"ErrorBody"</a>"."</p>
            {schemas
                .into_iter()
                .map(|schema| view! {
                    <details id=format!("schema-{}", schema.name)>
                        <summary>{schema.name.clone()}</summary>
                        <pre class="schema">{schema.json}</pre>
                    </details>
                })
                .collect_view()}
        </section>
    }
}

/// A schema's name as a link to it; a media type as it is.
fn named(name: String) -> AnyView {
    if name.contains('/') {
        view! { <code>{name}</code> }.into_any()
    } else {
        let href = format!("#schema-{name}");
        view! { <a href=href>{name}</a> }.into_any()
    }
}

#[component]
fn OperationRow(operation: ApiOperation) -> impl IntoView {
    let ApiOperation {
        method,
        path,
        summary,
        who,
        parameters,
        body,
        body_example,
        status,
        answer,
        ..
    } = operation;
    view! {
        <tr>
            <th scope="row" class="mono">{method}" "{path}</th>
            <td>{summary}</td>
            <td>{who}</td>
            <td>
                <ul class="plain">
                    {parameters
                        .into_iter()
                        .map(|p| view! {
                            <li>
                                <code>{p.name}</code>" ("{p.place}{(!p.required).then_some(", optional")}")"
                                {(!p.description.is_empty()).then(|| format!(": {}", p.description))}
                            </li>
                        })
                        .collect_view()}
                    {body.map(|body| view! {
                        <li>
                            "body: "{named(body)}
                            {body_example.map(|example| view! { <br /><span class="muted">"e.g. "</span><code>{example}</code> })}
                        </li>
                    })}
                </ul>
            </td>
            <td>{status}" "{answer.map(named)}</td>
        </tr>
    }
}
