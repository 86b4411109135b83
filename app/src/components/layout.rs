use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_router::components::A;
use runboard_model::{AlertBoard, AlertState, Role, SignedIn};

use crate::components::service_alerts::AlertsOnPage;
use crate::server_fns::ScreenError;
use crate::server_fns::alerts_on_page::alerts_on_page;
use crate::server_fns::current_user::current_user;
use crate::server_fns::my_roles::my_roles;

/// The signed-in person's roles, read once per page and shared with every screen through
/// context, so that screens show a control only to those the server would let use it.
#[derive(Clone, Copy)]
pub struct MyRoles(Resource<Result<BTreeSet<Role>, ScreenError>>);

impl MyRoles {
    /// Whether the signed-in person holds `role`.
    pub async fn holds(self, role: Role) -> bool {
        self.0.await.is_ok_and(|roles| roles.contains(&role))
    }
}

/// SPEC.md's screens that have a place in the navigation: (label, address).
const SCREENS: &[(&str, &str)] = &[
    ("Overview", "/"),
    ("Lookup", "/lookup"),
    ("Batches", "/batches"),
    ("Funds", "/funds"),
    ("Actions", "/actions"),
    ("Alerts", "/alerts"),
];

/// Page frame: skip link, navigation, and the main region with an error boundary,
/// so a failing screen says so in place instead of blanking the app.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Effects run only in the browser: this flips once the page is hydrated, which
    // browser tests wait for before they click.
    let hydrated = RwSignal::new(false);
    Effect::new(move || hydrated.set(true));
    provide_context(MyRoles(Resource::new(|| (), |()| my_roles())));
    // Who is signed in is read by the browser once the page is live, never rendered on the
    // server: the rest of a screen is then the same for everyone holding the same roles, and
    // the server renders it once for all of them (the server's shared pages).
    let me = LocalResource::new(current_user);
    // The navigation says how many alerts fire on every page, so nobody must go looking.
    let alerts = Resource::new(|| (), |()| alerts_on_page());
    provide_context(AlertsOnPage(alerts));

    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="top-bar">
            <a class="brand" href="/">"Runboard"</a>
            <nav aria-label="Screens">
                <ul>
                    {SCREENS
                        .iter()
                        .map(|(label, href)| view! {
                            <li>
                                <A href=*href exact=*href == "/">
                                    {*label}
                                    {(*href == "/alerts").then(|| view! { <FiringCount alerts /> })}
                                </A>
                            </li>
                        })
                        .collect_view()}
                </ul>
            </nav>
            {move || match me.get() {
                Some(Ok(Some(signed_in))) => view! { <SignedInAs signed_in /> }.into_any(),
                Some(Ok(None)) => view! { <a class="sign-in-link" href="/login">"Sign in"</a> }.into_any(),
                // Until the browser knows (or without scripts): the account page names them.
                _ => view! { <a class="who" href="/account">"Account"</a> }.into_any(),
            }}
        </header>
        <main id="main" data-hydrated=move || hydrated.get().to_string()>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <section class="panel panel-error" role="alert">
                        <h1>"This screen failed"</h1>
                        <ul>
                            {move || {
                                errors
                                    .get()
                                    .into_iter()
                                    .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                                    .collect_view()
                            }}
                        </ul>
                        <p>"Reload the page to try again. The rest of Runboard still works."</p>
                    </section>
                }
            }>{children()}</ErrorBoundary>
        </main>
    }
}

/// How many alerts fire, beside "Alerts" in the navigation; nothing while none does.
#[component]
fn FiringCount(alerts: Resource<Result<AlertBoard, ScreenError>>) -> impl IntoView {
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let firing = alerts
                    .await
                    .map(|board| board.alerts.iter().filter(|a| a.state == AlertState::Firing).count())
                    .unwrap_or_default();
                (firing > 0).then(|| view! {
                    <span class="count firing" data-testid="nav-alerts-firing">
                        " "{firing}<span class="visually-hidden">" firing"</span>
                    </span>
                })
            })}
        </Suspense>
    }
}

/// The top bar's name, roles and sign-out button.
#[component]
fn SignedInAs(signed_in: SignedIn) -> impl IntoView {
    let SignedIn { user, csrf_token } = signed_in;
    view! {
        <div class="signed-in">
            <a class="who" href="/account" data-testid="signed-in-as">{user.name.clone()}</a>
            <span class="muted roles">{user.roles_text()}</span>
            {user.has(Role::Admin).then(|| view! { <a href="/access">"Access"</a> })}
            <SignOut csrf_token />
        </div>
    }
}

/// The sign-out button: a form, so it works without scripts.
#[component]
pub fn SignOut(csrf_token: String) -> impl IntoView {
    view! {
        <form method="post" action="/auth/logout">
            <input type="hidden" name="csrf_token" value=csrf_token />
            <button type="submit">"Sign out"</button>
        </form>
    }
}
