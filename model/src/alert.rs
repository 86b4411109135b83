use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ServiceName;

/// What Runboard watches in every poll of a service, to speak before anyone asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Watch {
    /// An error message not seen in the window appears on failed sagas.
    NewError,
    /// Failed or stuck sagas above a threshold, or grown by more than a share over the window.
    FailuresRising,
    /// A batch with items pending and none finished for a while, or failing a large share
    /// of its items.
    StalledBatch,
    /// Withheld funds of one currency above a threshold.
    MoneyHeld,
    /// The service could not be read for several polls in a row.
    ServiceUnreachable,
    /// A Service in the cluster asked for a name, token audience or team its namespace may
    /// not have, and was left out. Judged at each sync of discovery, not at polls.
    DiscoveryRefused,
}

impl Watch {
    pub const ALL: [Self; 6] = [
        Self::NewError,
        Self::FailuresRising,
        Self::StalledBatch,
        Self::MoneyHeld,
        Self::ServiceUnreachable,
        Self::DiscoveryRefused,
    ];

    /// The word in the config, the store, the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewError => "new_error",
            Self::FailuresRising => "failures_rising",
            Self::StalledBatch => "stalled_batch",
            Self::MoneyHeld => "money_held",
            Self::ServiceUnreachable => "service_unreachable",
            Self::DiscoveryRefused => "discovery_refused",
        }
    }

    /// What the watch is called on the screens and in messages.
    pub fn title(self) -> &'static str {
        match self {
            Self::NewError => "New error",
            Self::FailuresRising => "Failures rising",
            Self::StalledBatch => "Stalled batch",
            Self::MoneyHeld => "Money held",
            Self::ServiceUnreachable => "Service unreachable",
            Self::DiscoveryRefused => "Discovery refused",
        }
    }
}

impl fmt::Display for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWatch(pub String);

impl fmt::Display for UnknownWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a watch; the watches are {}",
            self.0,
            Watch::ALL.map(Watch::as_str).join(", ")
        )
    }
}

impl std::error::Error for UnknownWatch {}

impl FromStr for Watch {
    type Err = UnknownWatch;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Watch::ALL
            .into_iter()
            .find(|watch| watch.as_str() == text)
            .ok_or_else(|| UnknownWatch(text.to_owned()))
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds and nobody has said they are on it.
    Firing,
    /// Someone is on it: no reminder is sent.
    Acknowledged,
    /// The condition holds, but a silence covers it until its end.
    Silenced,
    /// The condition cleared by itself.
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Acknowledged => "acknowledged",
            Self::Silenced => "silenced",
            Self::Resolved => "resolved",
        }
    }
}

/// One time a watch's condition held for a service, from when it began until it cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: i64,
    pub service: ServiceName,
    pub watch: Watch,
    /// What in the service the alert is about where a watch can fire for several things at
    /// once (the error message, the batch, the currency of money held); empty otherwise.
    pub subject: String,
    /// What was seen, in words, as of the latest poll that saw it.
    pub summary: String,
    /// Runboard's page already filtered to the problem, as a path.
    pub link: String,
    /// Where to ask for the corrective action, as a path, for the watches that have one (a
    /// new error: retry its sagas; a stalled batch: re-run its failed items).
    pub ask_link: Option<String>,
    pub state: AlertState,
    pub fired_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub acknowledged: Option<Acknowledgement>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// The watch's title, with the subject where the summary does not name it in words:
    /// "Money held (EUR)"; a new error's message and a stalled batch's name are in theirs.
    pub fn headline(&self) -> String {
        match self.watch {
            Watch::NewError | Watch::StalledBatch => self.watch.title().to_owned(),
            _ if self.subject.is_empty() => self.watch.title().to_owned(),
            _ => format!("{} ({})", self.watch.title(), self.subject),
        }
    }
}

/// Who said they are on an alert, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Acknowledgement {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// A time during which alerts of a service (or of every service), of one watch or all,
/// notify nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Silence {
    pub id: i64,
    /// `None`: every service.
    pub service: Option<ServiceName>,
    /// `None`: every watch.
    pub watch: Option<Watch>,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    /// Whether this silence covers an alert of `watch` on `service` at `at`.
    pub fn covers(&self, service: &ServiceName, watch: Watch, at: DateTime<Utc>) -> bool {
        at < self.until
            && self.service.as_ref().is_none_or(|s| s == service)
            && self.watch.is_none_or(|w| w == watch)
    }
}

/// What the Alerts screen and `GET /api/v1/alerts` show: every open alert (firing,
/// acknowledged or silenced), those resolved lately, and the silences in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertBoard {
    /// Open ones first, newest first; then the resolved, latest resolved first.
    pub alerts: Vec<Alert>,
    pub silences: Vec<Silence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headline_names_the_subject_only_where_the_summary_does_not() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let alert = |watch, subject: &str| Alert {
            id: 1,
            service: "payments".parse().unwrap(),
            watch,
            subject: subject.into(),
            summary: String::new(),
            link: String::new(),
            ask_link: None,
            state: AlertState::Firing,
            fired_at: at,
            last_seen_at: at,
            acknowledged: None,
            resolved_at: None,
        };
        assert_eq!(
            alert(Watch::MoneyHeld, "EUR").headline(),
            "Money held (EUR)"
        );
        assert_eq!(
            alert(Watch::FailuresRising, "").headline(),
            "Failures rising"
        );
        assert_eq!(
            alert(Watch::NewError, "ledger: timeout").headline(),
            "New error"
        );
        assert_eq!(
            alert(Watch::StalledBatch, "9f1c…").headline(),
            "Stalled batch"
        );
    }
}
