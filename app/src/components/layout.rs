use leptos::prelude::*;
use leptos_router::components::A;

/// A screen of SPEC.md's list; `built` is false until its issue lands, and the
/// navigation then shows it as not yet available rather than a link into a 404.
struct Screen {
    label: &'static str,
    href: &'static str,
    built: bool,
}

const SCREENS: &[Screen] = &[
    Screen {
        label: "Overview",
        href: "/",
        built: true,
    },
    Screen {
        label: "Lookup",
        href: "/lookup",
        built: true,
    },
    Screen {
        label: "Batches",
        href: "/batches",
        built: true,
    },
    Screen {
        label: "Funds",
        href: "/funds",
        built: true,
    },
    Screen {
        label: "Actions",
        href: "/actions",
        built: false,
    },
];

/// Page frame: skip link, navigation, and the main region with an error boundary,
/// so a failing screen says so in place instead of blanking the app.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Effects run only in the browser: this flips once the page is hydrated, which
    // browser tests wait for before they click.
    let hydrated = RwSignal::new(false);
    Effect::new(move || hydrated.set(true));

    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="top-bar">
            <a class="brand" href="/">"Runboard"</a>
            <nav aria-label="Screens">
                <ul>
                    {SCREENS
                        .iter()
                        .map(|screen| {
                            if screen.built {
                                view! {
                                    <li>
                                        <A href=screen.href exact=screen.href == "/">{screen.label}</A>
                                    </li>
                                }
                                    .into_any()
                            } else {
                                view! {
                                    <li>
                                        <span class="nav-unbuilt" aria-disabled="true" title="Not built yet">
                                            {screen.label}
                                        </span>
                                    </li>
                                }
                                    .into_any()
                            }
                        })
                        .collect_view()}
                </ul>
            </nav>
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
