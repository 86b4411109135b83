use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use runboard_model::{ActionSpec, ArgumentSpec, SavedRunbook};
use serde_json::{Map, Value};

use crate::format::thousands;
use crate::server_fns::ScreenError;
use crate::server_fns::ask_for_action::ask_for_action;
use crate::server_fns::read_action_form::{ActionForm, read_action_form};
use crate::server_fns::start_runbook::start_runbook;

/// Asks for a new action on a service: pick the mutation, fill its arguments (the entities
/// come from the screen the operator came from, or are pasted), then preview it.
#[component]
pub fn NewAction() -> impl IntoView {
    let query = use_query_map();
    let key = Memo::new(move |_| {
        let q = query.read();
        (
            q.get("service").unwrap_or_default(),
            q.get("error"),
            q.get("batch"),
            q.get("ids"),
        )
    });
    let form = Resource::new(
        move || key.get(),
        |(service, error, batch, ids)| read_action_form(service, error, batch, ids),
    );
    let runbook = Memo::new(move |_| query.read().get("runbook"));
    view! {
        <Title text="New action" />
        <p class="crumbs"><A href="/actions">"Actions"</A>" / new"</p>
        <h1>"New action"</h1>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Reading the service's actions…"</p> }>
            {move || Suspend::new(async move {
                let form = form.await?;
                let runbook_start = (!form.runbooks.is_empty() && form.picked.is_some()).then(|| view! {
                    <RunbookStart
                        service=form.service.clone()
                        runbooks=form.runbooks.clone()
                        preselected=runbook.get_untracked()
                        selection=form.selection.clone().unwrap_or_default()
                        ids=form.ids.clone()
                    />
                });
                Ok::<_, ScreenError>(view! { {runbook_start} <ActionFormView form /> })
            })}
        </Suspense>
    }
}

/// The value a form field's text stands for, as the argument's GraphQL type wants it.
fn typed(argument: &ArgumentSpec, text: &str) -> Result<Option<Value>, String> {
    let text = text.trim();
    if argument.list {
        let items: Vec<Value> = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect();
        return Ok((!items.is_empty()).then_some(Value::Array(items)));
    }
    if text.is_empty() {
        return Ok(None);
    }
    match argument.type_name.as_str() {
        "Boolean" => Ok(Some(Value::Bool(text == "true"))),
        "Int" => text
            .parse::<i64>()
            .map(|n| Some(Value::from(n)))
            .map_err(|_| format!("{} must be a whole number", argument.name)),
        "Float" => text
            .parse::<f64>()
            .map(|n| Some(Value::from(n)))
            .map_err(|_| format!("{} must be a number", argument.name)),
        _ => Ok(Some(Value::String(text.to_owned()))),
    }
}

#[component]
fn ActionFormView(form: ActionForm) -> impl IntoView {
    let ActionForm {
        service,
        actions,
        ids,
        selection,
        picked,
        runbooks: _,
    } = form;
    let actions = match actions {
        Ok(actions) => actions,
        Err(why) => {
            return view! {
                <p class="panel panel-error" role="alert">
                    {format!("⚠ The actions of {service} cannot be read: {why}")}
                </p>
            }
            .into_any();
        }
    };
    // Retrying is what a selection is usually for.
    let preferred = ["retrySagas", "retryBatchItems"];
    let first = actions
        .iter()
        .find(|a| {
            preferred.contains(&a.mutation.as_str())
                && a.entity_argument().is_some()
                && (!ids.is_empty() || selection.is_some())
        })
        .or_else(|| actions.iter().find(|a| a.dry_run))
        .or(actions.first())
        .map(|a| a.mutation.clone())
        .unwrap_or_default();
    let chosen = RwSignal::new(first);
    let values = RwSignal::new(BTreeMap::<String, String>::new());
    let ids_text = ids.join("\n");
    let actions = StoredValue::new(actions);
    let spec = Memo::new(move |_| {
        actions.with_value(|all| all.iter().find(|a| a.mutation == chosen.get()).cloned())
    });
    let problem = RwSignal::new(None::<String>);
    let (error, batch) = selection.clone().unwrap_or_default();
    let batch_for_fields = batch.clone();
    let ask = Action::new(
        move |(service, mutation, arguments): &(String, String, String)| {
            ask_for_action(
                service.clone(),
                mutation.clone(),
                arguments.clone(),
                error.clone(),
                batch.clone(),
            )
        },
    );
    let selected = selection
        .is_some()
        .then(|| picked.clone().unwrap_or_default());
    let navigate = use_navigate();
    Effect::new(move || {
        if let Some(Ok(id)) = ask.value().get() {
            navigate(&format!("/actions/{id}"), Default::default());
        }
    });
    let service_for_submit = service.clone();
    let has_selection = selected.is_some();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(spec) = spec.get_untracked() else {
            return;
        };
        let entered = values.get_untracked();
        let mut arguments = Map::new();
        let entity_argument = spec.entity_argument().map(|a| a.name.clone());
        for argument in &spec.arguments {
            // A selection is resolved on the server: its IDs never travel in the request.
            if has_selection && Some(&argument.name) == entity_argument.as_ref() {
                continue;
            }
            let text = entered.get(&argument.name).cloned().unwrap_or_default();
            match typed(argument, &text) {
                Ok(Some(value)) => {
                    arguments.insert(argument.name.clone(), value);
                }
                Ok(None) => {}
                Err(why) => {
                    problem.set(Some(why));
                    return;
                }
            }
        }
        problem.set(None);
        ask.dispatch((
            service_for_submit.clone(),
            spec.mutation.clone(),
            Value::Object(arguments).to_string(),
        ));
    };
    let picked_note = picked.map(|p| view! { <p class="panel" role="status">"Picked: "{p}"."</p> });
    view! {
        <p>"On service "<strong>{service.clone()}</strong>". Nothing is sent for real until the action is submitted, approved by someone else, and its dry run still holds."</p>
        {picked_note}
        <form class="action-form" on:submit=submit>
            <label class="filter">
                <span>"Action"</span>
                <select name="mutation" on:change=move |ev| chosen.set(event_target_value(&ev)) prop:value=move || chosen.get()>
                    {actions.with_value(|all| all.iter().map(|a| {
                        let label = if a.dry_run { a.mutation.clone() } else { format!("{} (no dry run)", a.mutation) };
                        view! { <option value=a.mutation.clone()>{label}</option> }
                    }).collect_view())}
                </select>
            </label>
            {move || spec.get().map(|spec| view! { <ArgumentFields spec values ids_text=ids_text.clone() selected=selected.clone() batch=batch_for_fields.clone() /> })}
            {move || problem.get().map(|p| view! { <p class="panel panel-error" role="alert">"⚠ "{p}</p> })}
            {move || ask.value().get().and_then(|r| r.err()).map(|e| view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> })}
            <button type="submit" disabled=move || ask.pending().get()>
                {move || if ask.pending().get() { "Asking the service for a dry run…" } else { "Preview" }}
            </button>
        </form>
    }
    .into_any()
}

/// One field per argument of the chosen mutation, built from its GraphQL type.
#[component]
fn ArgumentFields(
    spec: ActionSpec,
    values: RwSignal<BTreeMap<String, String>>,
    ids_text: String,
    /// The selection that stands in for the list of IDs, in words.
    selected: Option<String>,
    /// The batch whose failed items are selected: the mutation's first single ID (its
    /// batch argument) starts with it.
    batch: Option<String>,
) -> impl IntoView {
    let entity_argument = spec.entity_argument().map(|a| a.name.clone());
    if let Some(name) = &entity_argument {
        let name = name.clone();
        values.update(|v| {
            v.entry(name).or_insert_with(|| ids_text.clone());
        });
    }
    let batch_argument = spec
        .arguments
        .iter()
        .find(|a| !a.list && a.type_name == "ID")
        .map(|a| a.name.clone());
    if let (Some(name), Some(batch)) = (batch_argument, batch) {
        values.update(|v| {
            v.entry(name).or_insert(batch);
        });
    }
    let description = spec.description.clone();
    view! {
        {description.map(|d| view! { <p class="muted">{d}</p> })}
        {spec
            .arguments
            .into_iter()
            .map(|argument| {
                let name = argument.name.clone();
                let label = format!("{} ({})", argument.name, argument.graphql_type());
                let current = {
                    let name = name.clone();
                    move || values.with(|v| v.get(&name).cloned().unwrap_or_default())
                };
                let set = {
                    let name = name.clone();
                    move |text: String| values.update(|v| { v.insert(name.clone(), text); })
                };
                let help = argument.description.clone();
                let field = if let Some(selected) = selected.clone().filter(|_| Some(&name) == entity_argument.as_ref()) {
                    view! {
                        <output name=name.clone() data-testid="selection">{selected}</output>
                        <span class="muted">"The server reads the selection again when you preview; its IDs are not sent from here."</span>
                    }
                    .into_any()
                } else if argument.list {
                    let count = {
                        let current = current.clone();
                        move || current().split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|s| !s.is_empty()).count()
                    };
                    view! {
                        <textarea name=name.clone() rows="8" spellcheck="false" required=argument.required
                            prop:value=current on:input=move |ev| set(event_target_value(&ev))></textarea>
                        <span class="muted">{move || format!("{} IDs", thousands(count() as u64))}</span>
                    }
                    .into_any()
                } else if argument.type_name == "Boolean" {
                    view! {
                        <input type="checkbox" name=name.clone()
                            on:change=move |ev| set(event_target_checked(&ev).to_string()) />
                    }
                    .into_any()
                } else {
                    view! {
                        <input type="text" name=name.clone() required=argument.required
                            prop:value=current on:input=move |ev| set(event_target_value(&ev)) />
                    }
                    .into_any()
                };
                view! {
                    <label class="argument">
                        <span>{label}</span>
                        {field}
                        {help.map(|h| view! { <span class="muted">{h}</span> })}
                    </label>
                }
            })
            .collect_view()}
    }
}

/// Starts one of the service's saved runbooks on what was picked: its steps as they will
/// run for each entity, and one field per parameter.
#[component]
fn RunbookStart(
    service: String,
    runbooks: Vec<SavedRunbook>,
    /// The runbook a screen's link named, if any.
    preselected: Option<String>,
    /// `(error group, batch)` picked, resolved again on the server.
    selection: (Option<String>, Option<String>),
    /// The IDs picked (from a saga or a lookup).
    ids: Vec<String>,
) -> impl IntoView {
    let first = preselected
        .filter(|id| runbooks.iter().any(|r| r.id == *id))
        .or_else(|| runbooks.first().map(|r| r.id.clone()))
        .unwrap_or_default();
    let chosen = RwSignal::new(first);
    let runbooks = StoredValue::new(runbooks);
    let current = Memo::new(move |_| {
        runbooks.with_value(|all| all.iter().find(|r| r.id == chosen.get()).cloned())
    });
    let params = RwSignal::new(BTreeMap::<String, String>::new());
    let (error, batch) = selection;
    let ids = (!ids.is_empty()).then(|| ids.join(","));
    let start = Action::new(move |(runbook, params): &(String, String)| {
        start_runbook(
            service.clone(),
            runbook.clone(),
            params.clone(),
            error.clone(),
            batch.clone(),
            ids.clone(),
        )
    });
    let navigate = use_navigate();
    Effect::new(move || {
        if let Some(Ok(id)) = start.value().get() {
            navigate(&format!("/actions/{id}"), Default::default());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let given = serde_json::to_string(&params.get_untracked()).unwrap_or_default();
        start.dispatch((chosen.get_untracked(), given));
    };
    view! {
        <section class="panel runbook-start" aria-labelledby="runbook-heading">
            <h2 id="runbook-heading">"Run a saved runbook on them"</h2>
            <form on:submit=submit>
                <label class="filter">
                    <span>"Runbook"</span>
                    <select name="runbook" on:change=move |ev| { chosen.set(event_target_value(&ev)); params.set(BTreeMap::new()); } prop:value=move || chosen.get()>
                        {runbooks.with_value(|all| all.iter().map(|r| view! {
                            <option value=r.id.clone()>{r.name.clone()}</option>
                        }).collect_view())}
                    </select>
                </label>
                {move || current.get().map(|runbook| view! {
                    {(!runbook.description.is_empty()).then(|| view! { <p class="muted">{runbook.description.clone()}</p> })}
                    <p>"Each entity goes through these steps in order; a step that fails for an entity stops that entity there."</p>
                    <ol class="runbook-steps" data-testid="runbook-steps">
                        {runbook.steps.iter().map(|step| view! {
                            <li>
                                <strong>{step.title.clone()}</strong>" — "<code class="mono">{step.mutation.clone()}</code>
                                <pre class="mono">{serde_json::to_string_pretty(&step.arguments).unwrap_or_default()}</pre>
                            </li>
                        }).collect_view()}
                    </ol>
                    {runbook.params.iter().map(|param| {
                        let name = param.clone();
                        view! {
                            <label class="argument">
                                <span>{format!("{param} (the runbook's parameter)")}</span>
                                <input type="text" name=format!("param-{param}") required
                                    on:input=move |ev| params.update(|p| { p.insert(name.clone(), event_target_value(&ev)); }) />
                            </label>
                        }
                    }).collect_view()}
                })}
                {move || start.value().get().and_then(|r| r.err()).map(|e| view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> })}
                <button type="submit" disabled=move || start.pending().get()>
                    {move || if start.pending().get() { "Asking the service for every step's dry run…" } else { "Preview the runbook" }}
                </button>
            </form>
        </section>
    }
}
