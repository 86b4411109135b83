use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use runboard_model::RegisteredService;

use crate::components::local_time::LocalTime;
use crate::server_fns::registered_services::registered_services;

/// One row per registered service. The filter lives in the URL (`?q=`) so that a
/// filtered view can be pasted into an incident channel.
#[component]
pub fn Overview() -> impl IntoView {
    let services = Resource::new(|| (), |_| registered_services());
    let query = use_query_map();
    let filter = Memo::new(move |_| query.read().get("q").unwrap_or_default());
    let navigate = use_navigate();
    let set_filter = move |value: String| {
        let href = if value.is_empty() {
            "/".to_owned()
        } else {
            format!("/?q={}", encode_query_value(&value))
        };
        navigate(
            &href,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };

    view! {
        <Title text="Overview" />
        <div class="page-head">
            <h1>"Services"</h1>
            <label class="filter">
                <span>"Filter by service or team"</span>
                <input
                    type="search"
                    name="q"
                    autocomplete="off"
                    prop:value=move || filter.get()
                    on:input=move |ev| set_filter(event_target_value(&ev))
                />
            </label>
        </div>
        <Suspense fallback=|| view! { <p class="loading" role="status">"Loading services…"</p> }>
            {move || Suspend::new(async move {
                let services = services.await?;
                Ok::<_, ServerFnError>(view! { <ServiceTable services filter /> })
            })}
        </Suspense>
    }
}

#[component]
fn ServiceTable(services: Vec<RegisteredService>, filter: Memo<String>) -> impl IntoView {
    if services.is_empty() {
        return view! {
            <section class="panel empty">
                <h2>"No services registered"</h2>
                <p>"Add a " <code>"[[services]]"</code> " entry to the config file and restart Runboard."</p>
            </section>
        }
            .into_any();
    }
    let total = services.len();
    let visible = Memo::new(move |_| {
        let needle = filter.get().to_lowercase();
        services
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || s.name.as_str().contains(&needle)
                    || s.team.to_lowercase().contains(&needle)
            })
            .cloned()
            .collect::<Vec<_>>()
    });
    view! {
        <p class="count" role="status" aria-live="polite">
            {move || {
                let shown = visible.read().len();
                if shown == total {
                    format!("{total} services")
                } else {
                    format!("{shown} of {total} services match")
                }
            }}
        </p>
        <div class="table-wrap">
            <table class="services">
                <thead>
                    <tr>
                        <th scope="col">"Service"</th>
                        <th scope="col">"Team"</th>
                        <th scope="col">"Mission control"</th>
                        <th scope="col" class="num">"Stuck after"</th>
                        <th scope="col">"Registered"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || visible.get() key=|s| s.name.clone() let:service>
                        <tr>
                            <th scope="row">{service.name.to_string()}</th>
                            <td>{service.team.clone()}</td>
                            <td class="mono">{service.graphql_url.clone()}</td>
                            <td class="num">{format_minutes(service.stuck_after_seconds)}</td>
                            <td><LocalTime at=service.registered_at /></td>
                        </tr>
                    </For>
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

fn format_minutes(seconds: i64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_in_the_largest_whole_unit() {
        assert_eq!(format_minutes(1800), "30 min");
        assert_eq!(format_minutes(7200), "2 h");
        assert_eq!(format_minutes(90), "90 s");
    }

    #[test]
    fn filter_values_survive_the_url() {
        assert_eq!(encode_query_value("pay ments&x=1"), "pay%20ments%26x%3D1");
        assert_eq!(encode_query_value("café"), "caf%C3%A9");
    }
}
