//! "Download CSV": the list on screen as the API exports it, whole and with the screen's
//! filters, for business users' spreadsheets and engineers' notebooks.

use leptos::prelude::*;

use crate::format::query_string;

/// The API's CSV export of `path` with `filters`: the whole filtered set, not the page shown.
pub fn csv_href<'a>(
    path: &str,
    filters: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let pairs = filters.into_iter().chain([("format", Some("csv"))]);
    format!("{path}{}", query_string(pairs))
}

/// A download link; `what` names the list for screen readers ("failed items", "funds").
#[component]
pub fn DownloadCsv(href: String, what: &'static str) -> impl IntoView {
    view! {
        <a class="download-csv" href=href download="" aria-label=format!("Download {what} as CSV")>
            "Download CSV"
        </a>
    }
}
