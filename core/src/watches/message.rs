//! The message a team gets about an alert, from its askama template (`alert.mrkdwn`,
//! escaped for Slack like every `mrkdwn` template).

use askama::Template;
use runboard_model::Alert;
use url::Url;

use super::Told;
use crate::notify::Button;

#[derive(Template)]
#[template(path = "alert.mrkdwn")]
struct Message<'a> {
    told: Told,
    title: &'static str,
    service: &'a str,
    summary: &'a str,
    fired_at: String,
    link: String,
    /// Where to ask for the corrective action, while the alert fires.
    ask: Option<String>,
}

fn absolute(public_url: &Url, path: &str) -> String {
    public_url
        .join(path.trim_start_matches('/'))
        .map_or_else(|_| path.to_owned(), |u| u.to_string())
}

/// The message's text, with the link to the filtered page at `public_url`, and, for an
/// alert firing that has one, the button to ask for the corrective action.
pub(super) fn text(alert: &Alert, told: Told, public_url: &Url) -> (String, Option<Button>) {
    let ask = alert
        .ask_link
        .as_deref()
        .filter(|_| told != Told::Resolved)
        .map(|path| absolute(public_url, path));
    let message = Message {
        told,
        title: alert.watch.title(),
        service: alert.service.as_str(),
        summary: &alert.summary,
        fired_at: alert.fired_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        link: absolute(public_url, &alert.link),
        ask: ask.clone(),
    };
    let text = message.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "alert template failed");
        format!(
            "{} on {}: {}",
            alert.watch.title(),
            alert.service,
            alert.summary
        )
    });
    let button = ask.map(|url| Button {
        label: "Ask for the corrective action",
        url,
    });
    (text, button)
}
