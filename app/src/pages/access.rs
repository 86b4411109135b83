use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use runboard_model::{PersonAccess, PersonWithAccess};

use crate::components::local_time::LocalTime;
use crate::components::table_wrap::TableWrap;
use crate::format::query_string;
use crate::server_fns::ScreenError;
use crate::server_fns::end_person_access::EndPersonAccess;
use crate::server_fns::people_with_access::people_with_access;
use crate::server_fns::read_person_access::{PersonAccessRead, read_person_access};

/// For admins: everyone who can use Runboard now, and ending one person's access at once
/// (someone who left, a laptop lost at 3 a.m.).
#[component]
pub fn Access() -> impl IntoView {
    let query = use_query_map();
    let end = ServerAction::<EndPersonAccess>::new();
    let people = Resource::new(move || end.version().get(), |_| people_with_access());
    let person = Resource::new(
        move || (query.with(|q| q.get("person")), end.version().get()),
        |(subject, _)| async move {
            match subject {
                Some(subject) => read_person_access(subject).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <Title text="Access" />
        <h1>"Access"</h1>
        <p class="muted">
            "Everyone who can use Runboard now: a browser session that has not ended, or a live API token. "
            "Ending a person's access signs them out everywhere and revokes their tokens at once; the audit log keeps who did it and why."
        </p>
        {move || end.value().get().map(|outcome| match outcome {
            Ok(ended) => view! {
                <p class="panel" role="status" data-testid="access-ended">
                    {format!(
                        "Ended {} session(s) and revoked {} token(s) of {}.",
                        ended.sessions_ended, ended.tokens_revoked, ended.subject
                    )}
                </p>
            }
            .into_any(),
            Err(e) => view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> }.into_any(),
        })}
        <Transition fallback=|| view! { <p class="loading" role="status">"Loading who has access…"</p> }>
            {move || Suspend::new(async move {
                let people = people.await?;
                Ok::<_, ScreenError>(view! { <PeopleTable people /> })
            })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let person = person.await?;
                Ok::<_, ScreenError>(person.map(|read| view! { <PersonDetail read end /> }))
            })}
        </Transition>
    }
}

#[component]
fn PeopleTable(people: Vec<PersonWithAccess>) -> impl IntoView {
    if people.is_empty() {
        return view! { <p class="panel empty">"Nobody is signed in and no token is live."</p> }
            .into_any();
    }
    view! {
        <TableWrap>
            <table class="people">
                <thead>
                    <tr>
                        <th scope="col">"Person"</th>
                        <th scope="col">"Person key"</th>
                        <th scope="col" class="num">"Sessions"</th>
                        <th scope="col" class="num">"Live tokens"</th>
                    </tr>
                </thead>
                <tbody>
                    {people
                        .into_iter()
                        .map(|person| {
                            let href = format!(
                                "/access{}",
                                query_string([("person", Some(person.subject.as_str()))])
                            );
                            view! {
                                <tr>
                                    <th scope="row"><A href=href>{person.name}</A></th>
                                    <td class="mono">{person.subject.to_string()}</td>
                                    <td class="num">{person.sessions}</td>
                                    <td class="num">{person.live_tokens}</td>
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

/// One person's sessions and tokens, and the form that ends all of them.
#[component]
fn PersonDetail(read: PersonAccessRead, end: ServerAction<EndPersonAccess>) -> impl IntoView {
    let PersonAccessRead {
        read_at: now,
        access:
            PersonAccess {
                subject,
                sessions,
                tokens,
            },
    } = read;
    view! {
        <section aria-labelledby="person-heading" class="panel">
            <h2 id="person-heading">{subject.to_string()}</h2>
            <h3>"Browser sessions"</h3>
            {if sessions.is_empty() {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {sessions
                            .into_iter()
                            .map(|s| view! { <li>{s.name}" since "<LocalTime at=s.signed_in_at /></li> })
                            .collect_view()}
                    </ul>
                }
                .into_any()
            }}
            <h3>"API tokens"</h3>
            {if tokens.is_empty() {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {tokens
                            .into_iter()
                            .map(|t| {
                                let state = t.state_at(now);
                                view! { <li>{format!("“{}”, {state}, expires ", t.label)}<LocalTime at=t.expires_at /></li> }
                            })
                            .collect_view()}
                    </ul>
                }
                .into_any()
            }}
            <ActionForm action=end attr:class="filters">
                <input type="hidden" name="subject" value=subject.to_string() />
                <label class="filter">
                    <span>"Why (kept in the audit log)"</span>
                    <input type="text" name="reason" required maxlength="500" placeholder="left the company" />
                </label>
                <button type="submit" disabled=move || end.pending().get()>
                    "End all access"
                </button>
            </ActionForm>
        </section>
    }
}
