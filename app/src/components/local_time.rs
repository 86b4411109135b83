use chrono::{DateTime, Utc};
use leptos::prelude::*;

use crate::format::{machine_time, utc_text};

/// A UTC instant shown in the reader's local time, with the exact UTC time on hover.
///
/// The server cannot know the reader's time zone, so it renders UTC; once hydrated,
/// the browser rewrites the text in local time.
#[component]
pub fn LocalTime(at: DateTime<Utc>) -> impl IntoView {
    let utc = utc_text(at);
    let text = local_text(at, utc.clone());
    view! {
        <time datetime=machine_time(at) title=utc>
            {move || text.get()}
        </time>
    }
}

/// `utc` as rendered, turned into the reader's local time once the page is hydrated.
pub(super) fn local_text(
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))] at: DateTime<Utc>,
    utc: String,
) -> RwSignal<String> {
    let text = RwSignal::new(utc);
    #[cfg(feature = "hydrate")]
    {
        let millis = at.timestamp_millis() as f64;
        Effect::new(move || {
            let date = js_sys::Date::new(&millis.into());
            text.set(String::from(
                date.to_locale_string("default", &js_sys::Object::new()),
            ));
        });
    }
    text
}
