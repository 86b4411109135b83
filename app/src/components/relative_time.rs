use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::format::ago;

/// "5 min ago", measured from `now` (the server's clock when the data was read), with
/// the exact time on hover: UTC as rendered, the reader's local time once hydrated.
#[component]
pub fn RelativeTime(at: DateTime<Utc>, now: DateTime<Utc>) -> impl IntoView {
    let exact = RwSignal::new(at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    #[cfg(feature = "hydrate")]
    {
        let millis = at.timestamp_millis() as f64;
        Effect::new(move || {
            let date = js_sys::Date::new(&millis.into());
            exact.set(String::from(
                date.to_locale_string("default", &js_sys::Object::new()),
            ));
        });
    }
    view! {
        <time datetime=at.to_rfc3339() title=move || exact.get()>
            {ago(at, now)}
        </time>
    }
}
