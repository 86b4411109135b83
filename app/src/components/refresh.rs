use std::time::Duration;

use leptos::prelude::*;

/// How often a screen re-reads its data; the poller refreshes snapshots at about this pace.
pub const REFRESH: Duration = Duration::from_secs(15);

/// Re-reads a screen's data every [`REFRESH`] in the browser and returns the seconds since
/// the last read, ticking; it stays 0 while rendering on the server.
pub fn auto_refresh(refetch: impl Fn() + Clone + Send + Sync + 'static) -> RwSignal<i64> {
    auto_refresh_every(REFRESH, refetch)
}

/// As [`auto_refresh`], every `period`: for a screen that follows something live.
pub fn auto_refresh_every(
    period: Duration,
    refetch: impl Fn() + Clone + Send + Sync + 'static,
) -> RwSignal<i64> {
    let elapsed = RwSignal::new(0i64);
    Effect::new(move || {
        let tick =
            set_interval_with_handle(move || elapsed.update(|s| *s += 1), Duration::from_secs(1));
        let refetch = refetch.clone();
        let refresh = set_interval_with_handle(
            move || {
                refetch();
                elapsed.set(0);
            },
            period,
        );
        on_cleanup(move || {
            for handle in [tick, refresh].into_iter().flatten() {
                handle.clear();
            }
        });
    });
    elapsed
}

/// "Updated 12 s ago", so nobody mistakes a stale screen for a live one.
#[component]
pub fn Freshness(
    elapsed: RwSignal<i64>,
    /// How often the screen refreshes, if not every [`REFRESH`].
    #[prop(default = REFRESH)]
    every: Duration,
) -> impl IntoView {
    view! {
        <p class="freshness">
            {move || match elapsed.get() {
                0 => "Updated just now".to_owned(),
                s => format!("Updated {s} s ago"),
            }}
            {format!(" · refreshes every {} s", every.as_secs())}
        </p>
    }
}
