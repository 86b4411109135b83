use leptos::prelude::*;

/// The wrap a table scrolls in when it is wider than the screen. It takes the keyboard's
/// focus so that it scrolls without a mouse too (axe's scrollable-region-focusable): one
/// place for the rule, rather than a `tabindex` each table must remember.
#[component]
pub fn TableWrap(children: Children) -> impl IntoView {
    view! { <div class="table-wrap" tabindex="0">{children()}</div> }
}
