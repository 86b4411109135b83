use leptos::prelude::*;
use runboard_model::BatchProgress;

use crate::format::percent;

/// Done, failed and waiting items as one bar, with the same numbers in words for
/// screen readers: the bar is never the only place the numbers are.
#[component]
pub fn ProgressBar(batch: BatchProgress) -> impl IntoView {
    let total = batch.done + batch.failed + batch.pending;
    let width = |part: u64| {
        if total == 0 {
            "0%".to_owned()
        } else {
            format!("{:.2}%", part as f64 * 100.0 / total as f64)
        }
    };
    let label = format!(
        "{} done, {} failed, {} waiting",
        percent(batch.done, total),
        percent(batch.failed, total),
        percent(batch.pending, total)
    );
    view! {
        <div class="bar" role="img" aria-label=label.clone() title=label>
            <span class="bar-done" style:width=width(batch.done)></span>
            <span class="bar-failed" style:width=width(batch.failed)></span>
        </div>
    }
}
