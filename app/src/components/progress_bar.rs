use leptos::prelude::*;
use runboard_model::BatchProgress;

use crate::format::percent;

/// Done, failed and waiting items as one bar, with the same numbers in words for
/// screen readers: the bar is never the only place the numbers are. Drawn in SVG, whose
/// widths are attributes, because the Content-Security-Policy allows no inline styles.
#[component]
pub fn ProgressBar(batch: BatchProgress) -> impl IntoView {
    let total = batch.done + batch.failed + batch.pending;
    let share = |part: u64| {
        if total == 0 {
            0.0
        } else {
            part as f64 * 100.0 / total as f64
        }
    };
    let (done, failed) = (share(batch.done), share(batch.failed));
    let label = format!(
        "{} done, {} failed, {} waiting",
        percent(batch.done, total),
        percent(batch.failed, total),
        percent(batch.pending, total)
    );
    let title = label.clone();
    view! {
        <svg
            class="bar"
            viewBox="0 0 100 1"
            preserveAspectRatio="none"
            role="img"
            aria-label=label
        >
            <title>{title}</title>
            <rect class="bar-done" x="0" y="0" height="1" width=format!("{done:.2}") />
            <rect
                class="bar-failed"
                x=format!("{done:.2}")
                y="0"
                height="1"
                width=format!("{failed:.2}")
            />
        </svg>
    }
}
