use chrono::{DateTime, Utc};
use leptos::prelude::*;

/// A UTC instant shown in the reader's local time, with the exact UTC time on hover.
///
/// The server cannot know the reader's time zone, so it renders UTC; once hydrated,
/// the browser rewrites the text in local time.
#[component]
pub fn LocalTime(at: DateTime<Utc>) -> impl IntoView {
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let text = RwSignal::new(utc.clone());
    #[cfg(feature = "hydrate")]
    {
        let millis = at.timestamp_millis() as f64;
        Effect::new(move || {
            let date = js_sys::Date::new(&millis.into());
            let local = date.to_locale_string("default", &js_sys::Object::new());
            text.set(String::from(local));
        });
    }
    view! {
        <time datetime=at.to_rfc3339() title=utc>
            {move || text.get()}
        </time>
    }
}
