//! The message a team gets about an alert, from its askama template (`alert.mrkdwn`,
//! escaped for Slack like every `mrkdwn` template).

use askama::Template;
use runboard_model::Alert;
use url::Url;

use super::Told;

#[derive(Template)]
#[template(path = "alert.mrkdwn")]
struct Message<'a> {
    told: Told,
    title: &'static str,
    service: &'a str,
    summary: &'a str,
    fired_at: String,
    link: String,
}

/// The message's text, with the link to the filtered page at `public_url`.
pub(super) fn text(alert: &Alert, told: Told, public_url: &Url) -> String {
    let message = Message {
        told,
        title: alert.watch.title(),
        service: alert.service.as_str(),
        summary: &alert.summary,
        fired_at: alert.fired_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        link: public_url
            .join(alert.link.trim_start_matches('/'))
            .map_or_else(|_| alert.link.clone(), |u| u.to_string()),
    };
    message.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "alert template failed");
        format!(
            "{} on {}: {}",
            alert.watch.title(),
            alert.service,
            alert.summary
        )
    })
}
