//! Runboard's screens. Compiled twice: with `ssr` into the server, which renders
//! every page, and with `hydrate` into the wasm that makes those pages live.

mod components;
mod format;
mod pages;
mod server_fns;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use components::layout::Layout;
use pages::access::Access;
use pages::account::Account;
use pages::action::ActionView;
use pages::actions::Actions;
use pages::alerts::Alerts;
use pages::api_reference::ApiReferencePage;
use pages::batch::Batch;
use pages::batches::Batches;
use pages::funds::Funds;
use pages::lookup::Lookup;
use pages::new_action::NewAction;
use pages::not_found::NotFound;
use pages::overview::Overview;
use pages::saga::SagaPage;
use pages::service::Service;

/// The URL parameter of a screen's live read ("Read live now"): the server renders such a
/// view for its asker alone.
pub use components::live_read::LIVE as LIVE_READ;

/// Who may call each server function, for the server's gate in front of them.
#[cfg(feature = "ssr")]
pub use server_fns::{ruled_server_fns, server_fn_access};

/// What `cargo xtask build` calls the built wasm, js and css under `pkg/`.
pub const SITE_OUTPUT_NAME: &str = "runboard";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The server's security headers chose this response's script nonce; the hydration
    // scripts must carry it to run under its Content-Security-Policy.
    #[cfg(feature = "ssr")]
    if let Some(nonce) = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<leptos::nonce::Nonce>().cloned())
    {
        provide_context(nonce);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href=format!("/pkg/{SITE_OUTPUT_NAME}.css") />
        <Title formatter=|page: String| {
            if page.is_empty() { "Runboard".to_owned() } else { format!("{page} · Runboard") }
        } />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=path!("") view=Overview />
                    <Route path=path!("/services/:service") view=Service />
                    <Route path=path!("/services/:service/sagas/:saga") view=SagaPage />
                    <Route path=path!("/batches") view=Batches />
                    <Route path=path!("/lookup") view=Lookup />
                    <Route path=path!("/funds") view=Funds />
                    <Route path=path!("/account") view=Account />
                    <Route path=path!("/access") view=Access />
                    <Route path=path!("/actions") view=Actions />
                    <Route path=path!("/alerts") view=Alerts />
                    <Route path=path!("/api") view=ApiReferencePage />
                    <Route path=path!("/actions/new") view=NewAction />
                    <Route path=path!("/actions/:id") view=ActionView />
                    <Route path=path!("/services/:service/batches/:batch") view=Batch />
                </Routes>
            </Layout>
        </Router>
    }
}
