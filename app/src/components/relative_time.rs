use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::format::{ago, machine_time, utc_text};

/// "5 min ago", measured from `now` (the server's clock when the data was read), with
/// the exact time on hover: UTC as rendered, the reader's local time once hydrated.
#[component]
pub fn RelativeTime(at: DateTime<Utc>, now: DateTime<Utc>) -> impl IntoView {
    view! {
        <time datetime=machine_time(at) title=exact_time(at)>
            {ago(at, now)}
        </time>
    }
}

/// The hover text: a plain string on the server, where a page renders a hundred of these
/// and none changes; in the browser it turns into the reader's local time.
#[cfg(not(feature = "hydrate"))]
fn exact_time(at: DateTime<Utc>) -> String {
    utc_text(at)
}

#[cfg(feature = "hydrate")]
fn exact_time(at: DateTime<Utc>) -> impl Fn() -> String + Send + Sync + 'static {
    let exact = super::local_time::local_text(at, utc_text(at));
    move || exact.get()
}
