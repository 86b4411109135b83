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

/// The most text Slack takes in a section block; a longer post is refused and the alert
/// never heard.
const SECTION_LIMIT: usize = 3_000;

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
    let render = |summary: &str| {
        let message = Message {
            told,
            title: alert.watch.title(),
            service: alert.service.as_str(),
            summary,
            fired_at: alert.fired_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            link: absolute(public_url, &alert.link),
            ask: ask.clone(),
        };
        message.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "alert template failed");
            format!("{} on {}: {summary}", alert.watch.title(), alert.service)
        })
    };
    // A service's long error message is cut, never the link that leads to the whole of it.
    // Escaping lengthens the text by a share no one knows beforehand: the longest cut that
    // fits is searched for.
    let fits = |text: &String| text.chars().count() <= SECTION_LIMIT;
    let mut text = render(&alert.summary);
    if !fits(&text) {
        let cut = |kept: usize| {
            let start: String = alert.summary.chars().take(kept).collect();
            render(&format!("{start}…"))
        };
        let (mut fitting, mut too_long) = (0, alert.summary.chars().count());
        while too_long - fitting > 1 {
            let middle = fitting + (too_long - fitting) / 2;
            if fits(&cut(middle)) {
                fitting = middle;
            } else {
                too_long = middle;
            }
        }
        text = cut(fitting);
    }
    let button = ask.map(|url| Button {
        label: "Ask for the corrective action",
        url,
    });
    (text, button)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use runboard_model::{Alert, AlertState, Watch};

    use super::{SECTION_LIMIT, Told, text};

    #[test]
    fn a_long_error_message_is_cut_to_what_slack_takes_and_the_link_is_kept() {
        let now = Utc::now();
        let alert = Alert {
            id: 7,
            service: "payments".parse().unwrap(),
            watch: Watch::NewError,
            subject: String::new(),
            // Escaped for mrkdwn, each `<` grows to four characters.
            summary: "<timeout> ".repeat(1_000),
            link: "/services/payments?error=abc".into(),
            ask_link: Some("/services/payments/actions/new".into()),
            state: AlertState::Firing,
            fired_at: now,
            last_seen_at: now,
            acknowledged: None,
            resolved_at: None,
        };
        let public_url = "https://runboard.example/".parse().unwrap();
        for told in [Told::Fired, Told::Reminder, Told::Resolved] {
            let (text, _) = text(&alert, told, &public_url);
            assert!(
                text.chars().count() <= SECTION_LIMIT,
                "{} characters",
                text.chars().count()
            );
            assert!(text.contains("&lt;timeout&gt;"), "{text}");
            assert!(text.contains('…'), "{text}");
            assert!(
                text.contains(
                    "Open in Runboard: https://runboard.example/services/payments?error=abc"
                ),
                "{text}"
            );
        }
    }
}
