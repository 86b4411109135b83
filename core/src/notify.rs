//! Notifications to a Slack-compatible incoming webhook when an action awaits approval, is
//! approved, finishes, fails or pauses, and of the watches' alerts. Sent on the side: a
//! webhook that is slow or down is logged and never holds up an action or a poll.

use std::time::Duration;

use askama::Template;
use runboard_model::{Action, ActionState};
use secrecy::ExposeSecret;
use url::Url;

use crate::config::SecretUrl;

/// How long a webhook may take before Runboard gives up on that message.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to an action that people should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    AwaitingApproval,
    Approved,
    Succeeded,
    /// Ended failed or partially failed.
    Failed,
    Paused,
}

/// Askama's escaper for every Slack `mrkdwn` template (see `askama.toml`): the three
/// characters Slack asks to be escaped, so that no value can mention `<!channel>` or dress
/// a link as `<https://…|Approve>`, and line breaks as spaces, so that no value can forge a
/// line of its own.
#[derive(Clone, Copy)]
pub(crate) struct Mrkdwn;

impl askama::filters::Escaper for Mrkdwn {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        for c in text.chars() {
            match c {
                '&' => dest.write_str("&amp;")?,
                '<' => dest.write_str("&lt;")?,
                '>' => dest.write_str("&gt;")?,
                '\n' | '\r' => dest.write_char(' ')?,
                c => dest.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Template)]
#[template(path = "notification.mrkdwn")]
struct Message<'a> {
    event: Event,
    service: &'a str,
    mutation: &'a str,
    requester: &'a str,
    reason: &'a str,
    entities: u64,
    money: String,
    approvers: String,
    succeeded: u64,
    failed: u64,
    state: &'a str,
    detail: &'a str,
    link: String,
}

/// A link button under a message, as Slack's blocks draw it.
pub(crate) struct Button {
    pub(crate) label: &'static str,
    pub(crate) url: String,
}

/// The webhook, if one is configured, and where Runboard's pages are.
pub struct Notifier {
    webhook: Option<SecretUrl>,
    public_url: Url,
    http: reqwest::Client,
    /// How many messages are posted and not yet answered.
    in_flight: std::sync::Arc<tokio::sync::watch::Sender<usize>>,
}

impl Notifier {
    pub fn new(webhook: Option<SecretUrl>, public_url: Url) -> Self {
        Self {
            webhook,
            public_url,
            http: reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .build()
                .expect("a TLS backend is compiled in"),
            in_flight: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Returns once every message posted so far has been answered or given up on (within
    /// the webhook's timeout): a stopping Runboard lets its last alerts reach the team, and
    /// a test hears every message a poll sent without guessing how long they take.
    pub async fn settled(&self) {
        let mut in_flight = self.in_flight.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = in_flight.wait_for(|n| *n == 0).await;
    }

    /// The message's text, as the template renders it.
    pub fn text(&self, event: Event, action: &Action) -> String {
        let money = if action.preview.money.is_empty() {
            String::new()
        } else {
            format!(
                ", moving {}",
                action
                    .preview
                    .money
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let message = Message {
            event,
            service: action.service.as_str(),
            mutation: &action.mutation,
            requester: &action.requester_name,
            reason: action.reason.as_deref().unwrap_or(""),
            entities: action.preview.entities.max(1),
            money,
            approvers: action
                .approvals
                .iter()
                .map(|a| a.approver_name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            succeeded: action.progress.succeeded,
            failed: action.progress.failed,
            state: action.state.as_str(),
            detail: action.state_detail.as_deref().unwrap_or(""),
            link: self
                .public_url
                .join(&format!("actions/{}", action.id))
                .map_or_else(|_| action.id.to_string(), |u| u.to_string()),
        };
        message.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "notification template failed");
            format!("Runboard action {} is {}", action.id, action.state.as_str())
        })
    }

    /// Sends the message in the background; returns at once.
    pub fn send(&self, event: Event, action: &Action) {
        if let Some(webhook) = self.webhook.clone() {
            self.post(webhook, self.text(event, action), None);
        }
    }

    /// Posts `text` to `webhook` in the background, with `button` under it where given;
    /// returns at once. A webhook that is slow or down is logged: it never holds up an
    /// action or a poll.
    pub(crate) fn post(&self, webhook: SecretUrl, text: String, button: Option<Button>) {
        let http = self.http.clone();
        let payload = match button {
            None => serde_json::json!({ "text": text }),
            // Slack shows the blocks; a receiver that knows none shows the text, whose
            // last line carries the same link.
            Some(button) => serde_json::json!({
                "text": text,
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": text } },
                    { "type": "actions", "elements": [{
                        "type": "button",
                        "text": { "type": "plain_text", "text": button.label },
                        "url": button.url,
                    }] },
                ],
            }),
        };
        self.in_flight.send_modify(|n| *n += 1);
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            let sent = http
                .post(webhook.expose_secret().clone())
                .json(&payload)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(e) = sent {
                // The webhook's URL is its secret: never in the log.
                let e = e.without_url();
                let first_line = text.lines().next().unwrap_or_default();
                tracing::warn!(message = first_line, error = %e, "the webhook did not take a message");
            }
            in_flight.send_modify(|n| *n -= 1);
        });
    }
}

/// The event a state change is worth telling, if any.
pub fn event_for(state: ActionState) -> Option<Event> {
    match state {
        ActionState::AwaitingApproval => Some(Event::AwaitingApproval),
        ActionState::Approved => Some(Event::Approved),
        ActionState::Succeeded => Some(Event::Succeeded),
        ActionState::Failed | ActionState::PartiallyFailed => Some(Event::Failed),
        ActionState::Paused => Some(Event::Paused),
        _ => None,
    }
}
