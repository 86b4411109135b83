//! Shared reads and live ones: a screen's figures of a service are read once a poll
//! interval for everyone watching; `?live=…` in the URL asks for a read now, once.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_location, use_navigate, use_query_map};

use crate::components::relative_time::RelativeTime;

/// The URL parameter that asks for a live read; its value only makes each link new.
pub const LIVE: &str = "live";

/// Whether the URL asks for a live read.
pub fn asked_live() -> Memo<bool> {
    let query = use_query_map();
    Memo::new(move |_| query.read().get(LIVE).is_some())
}

/// What a screen's refresh does: after a live read, takes `live` out of the URL (so the
/// screen goes back to the shared figures, and one click makes one live read); else `refetch`.
pub fn refresh_shared(
    refetch: impl Fn() + Clone + Send + Sync + 'static,
) -> impl Fn() + Clone + Send + Sync + 'static {
    let location = use_location();
    let navigate = use_navigate();
    move || {
        let mut query = location.query.get_untracked();
        if query.remove(LIVE).is_some() {
            let path = format!(
                "{}{}",
                location.pathname.get_untracked(),
                query.to_query_string()
            );
            navigate(
                &path,
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..NavigateOptions::default()
                },
            );
        } else {
            refetch();
        }
    }
}

/// "Read 12 s ago for everyone watching · Read live now": how old a service's figures are,
/// and a link that reads them again now.
#[component]
pub fn ReadAt(
    /// When the service was read.
    read_at: DateTime<Utc>,
    /// The server's clock when it answered.
    now: DateTime<Utc>,
) -> impl IntoView {
    let location = use_location();
    let live = asked_live();
    let href = move || {
        let mut query = location.query.get();
        query.replace(LIVE, read_at.timestamp_millis().to_string());
        format!("{}{}", location.pathname.get(), query.to_query_string())
    };
    view! {
        <p class="read-at muted">
            {move || if live.get() { "Read live " } else { "Read for everyone watching " }}
            <RelativeTime at=read_at now=now />
            " · "
            <a href=href rel="nofollow">"Read live now"</a>
        </p>
    }
}
