use leptos::prelude::*;
use leptos_meta::Title;
use runboard_model::IssuedApiToken;

use crate::components::layout::SignOut;
use crate::components::local_time::LocalTime;
use crate::components::table_wrap::TableWrap;
use crate::server_fns::ScreenError;
use crate::server_fns::create_api_token::CreateApiToken;
use crate::server_fns::current_user::current_user;
use crate::server_fns::my_api_tokens::{ApiTokens, my_api_tokens};
use crate::server_fns::revoke_api_token::RevokeApiToken;

/// Lifetimes offered for a new token: (days, label).
const LIFETIMES: &[(u32, &str)] = &[(7, "7 days"), (30, "30 days"), (90, "90 days")];

/// Who the signed-in person is, how to sign out (here too, so it works before the page is
/// live), and their personal API tokens for scripts and CLIs.
#[component]
pub fn Account() -> impl IntoView {
    let me = Resource::new(|| (), |()| current_user());
    let create = ServerAction::<CreateApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| my_api_tokens(),
    );
    view! {
        <Title text="Account" />
        <h1>"Account"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                me.await.ok().flatten().map(|signed_in| view! {
                    <p>
                        "Signed in as "<strong>{signed_in.user.name.clone()}</strong>
                        " ("{signed_in.user.roles_text()}")."
                    </p>
                    <SignOut csrf_token=signed_in.csrf_token />
                })
            })}
        </Suspense>

        <section aria-labelledby="tokens-heading">
            <h2 id="tokens-heading">"Personal API tokens"</h2>
            <p class="muted">
                "Scripts send a token as "<code>"Authorization: Bearer rbt_…"</code>
                ". It acts as you, with the roles you hold now, until it expires or you revoke it. The "
                <a href="/api">"API reference"</a>" lists every route it may call."
            </p>
            <ActionForm action=create attr:class="filters">
                <label class="filter">
                    <span>"What it is for"</span>
                    <input type="text" name="label" required maxlength="100" placeholder="nightly report" />
                </label>
                <label class="filter">
                    <span>"Expires after"</span>
                    <select name="days">
                        {LIFETIMES
                            .iter()
                            .map(|(days, label)| view! { <option value=days.to_string() selected=*days == 30>{*label}</option> })
                            .collect_view()}
                    </select>
                </label>
                <button type="submit" disabled=move || create.pending().get()>"Create token"</button>
            </ActionForm>
            {move || create.value().get().map(|outcome| match outcome {
                Ok(issued) => view! { <NewToken issued /> }.into_any(),
                Err(e) => view! { <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p> }.into_any(),
            })}
            {move || revoke.value().get().and_then(|outcome| outcome.err()).map(|e| view! {
                <p class="panel panel-error" role="alert">"⚠ "{e.to_string()}</p>
            })}
            <Transition fallback=|| view! { <p class="loading" role="status">"Loading your tokens…"</p> }>
                {move || Suspend::new(async move {
                    let tokens = tokens.await?;
                    Ok::<_, ScreenError>(view! { <TokenTable tokens revoke /> })
                })}
            </Transition>
        </section>
    }
}

/// The secret of a token just created: shown here once, never again.
#[component]
fn NewToken(issued: IssuedApiToken) -> impl IntoView {
    view! {
        <div class="panel new-token" role="status">
            <p>
                <strong>{format!("Token “{}” created.", issued.token.label)}</strong>
                " Copy it now: Runboard keeps only a hash and cannot show it again."
            </p>
            <code class="mono secret" data-testid="new-token-secret">{issued.secret}</code>
        </div>
    }
}

#[component]
fn TokenTable(tokens: ApiTokens, revoke: ServerAction<RevokeApiToken>) -> impl IntoView {
    let ApiTokens {
        read_at: now,
        tokens,
    } = tokens;
    if tokens.is_empty() {
        return view! { <p class="panel empty">"You have no API tokens."</p> }.into_any();
    }
    view! {
        <TableWrap>
            <table class="tokens">
                <thead>
                    <tr>
                        <th scope="col">"Label"</th>
                        <th scope="col">"Roles"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"State"</th>
                    </tr>
                </thead>
                <tbody>
                    {tokens
                        .into_iter()
                        .map(|token| {
                            let live = token.is_live(now);
                            let state = token.state_at(now);
                            let roles = token.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
                            let id = token.id.clone();
                            view! {
                                <tr>
                                    <th scope="row">{token.label.clone()}</th>
                                    <td>{roles}</td>
                                    <td><LocalTime at=token.created_at /></td>
                                    <td><LocalTime at=token.expires_at /></td>
                                    <td>{token.last_used_at.map_or_else(|| view! { <span class="muted">"never"</span> }.into_any(), |at| view! { <LocalTime at /> }.into_any())}</td>
                                    <td class="row-actions">
                                        <span>{state}</span>
                                        {live.then(|| view! {
                                            <ActionForm action=revoke>
                                                <input type="hidden" name="id" value=id />
                                                <button type="submit">"Revoke"</button>
                                            </ActionForm>
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
