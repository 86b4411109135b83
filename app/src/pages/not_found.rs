use leptos::prelude::*;
use leptos_meta::Title;

/// Unknown paths. On the server, the fallback handler answers these with status 404.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <Title text="Page not found" />
        <section class="panel">
            <h1>"Page not found"</h1>
            <p>"There is no screen at this address. It may have been mistyped, or the link is from an older Runboard."</p>
            <p><a href="/">"Go to the overview"</a></p>
        </section>
    }
}
