//! Watches: on every poll of a service, Runboard looks at what it read for the conditions
//! an on-call engineer must hear of (failures rising, money held, the service unreachable),
//! keeps an alert in the store while one holds, and tells the service's team once, with a
//! link to the page already filtered to the problem. The replica that polls a service
//! judges it; each alert is opened and each message claimed by one statement, so that
//! several replicas tell a team once.

mod alerts;
mod message;

use chrono::{DateTime, Utc};
use runboard_model::{ServiceName, Silence, UnknownWatch, User, Watch};

pub use alerts::AcknowledgeError;

use crate::App;
use crate::config::{WatchTuning, WatchesConfig};
use crate::connector::Connector;
use crate::snapshots::Reading;
use crate::store::StoreError;

/// Rises of fewer sagas than this never count as *failures rising*, whatever the share:
/// 2 failed sagas becoming 4 is no incident.
const GROWTH_FLOOR: u64 = 10;

/// A watch's condition holding for a service in one poll.
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    watch: Watch,
    subject: String,
    summary: String,
    link: String,
}

/// One service's figures: `[watches]` with the service's own tuning over them.
struct Figures<'a> {
    failures_above: u64,
    failures_growth: f64,
    window: std::time::Duration,
    money_held_above: &'a std::collections::BTreeMap<String, rust_decimal::Decimal>,
    unreachable_polls: u32,
    off: Vec<Watch>,
}

impl<'a> Figures<'a> {
    fn new(config: &'a WatchesConfig, tuning: &'a WatchTuning) -> Self {
        Self {
            failures_above: tuning.failures_above.unwrap_or(config.failures_above),
            failures_growth: tuning.failures_growth.unwrap_or(config.failures_growth),
            window: config.window,
            money_held_above: tuning
                .money_held_above
                .as_ref()
                .unwrap_or(&config.money_held_above),
            unreachable_polls: tuning
                .unreachable_polls
                .unwrap_or(config.unreachable_polls)
                .max(1),
            off: config.off.iter().chain(&tuning.off).copied().collect(),
        }
    }

    fn on(&self, watch: Watch) -> bool {
        !self.off.contains(&watch)
    }
}

fn service_page(service: &ServiceName, query: &str) -> String {
    format!(
        "/services/{}{query}",
        url::form_urlencoded::byte_serialize(service.as_str().as_bytes()).collect::<String>()
    )
}

/// *failures rising*: above the threshold, or grown by more than the share since the
/// window began (`before`: failed and stuck then, where a snapshot says).
fn failures_rising(
    service: &ServiceName,
    now: u64,
    before: Option<u64>,
    figures: &Figures,
) -> Option<Condition> {
    let window = humantime::format_duration(figures.window);
    let summary = if now > figures.failures_above {
        format!(
            "{now} failed or stuck sagas, above the {} the watch allows",
            figures.failures_above
        )
    } else {
        let before = before?;
        let grown = now.saturating_sub(before);
        let share = grown as f64 / before.max(1) as f64;
        if grown < GROWTH_FLOOR || share <= figures.failures_growth {
            return None;
        }
        format!("{now} failed or stuck sagas, up from {before} {window} ago")
    };
    Some(Condition {
        watch: Watch::FailuresRising,
        subject: String::new(),
        summary,
        link: service_page(service, "?status=failed"),
    })
}

/// Judges one poll of a service, keeps its alerts in the store, and tells its team what
/// is new, still unacknowledged after `repeat_after`, or resolved. Called by the poller
/// after the poll's snapshot is stored.
pub(crate) async fn judge_poll(
    app: &App,
    connector: &Connector,
    reading: &Result<Reading, String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let config = &app.config.watches;
    let figures = Figures::new(config, connector.watch_tuning());
    let service = connector.name();
    let mut conditions = Vec::new();
    // What this poll can judge: with no reading, only whether the service answers; the
    // alerts of the others stay as they were until it does.
    let judged: Vec<Watch> = match reading {
        Ok(reading) => {
            if figures.on(Watch::FailuresRising) {
                let before = app
                    .store
                    .failures_before(service.as_str(), now - to_chrono(figures.window))
                    .await?;
                conditions.extend(failures_rising(
                    service,
                    reading.sagas.failed + reading.sagas.stuck,
                    before,
                    &figures,
                ));
            }
            if figures.on(Watch::MoneyHeld) {
                conditions.extend(reading.withheld_funds.iter().filter_map(|money| {
                    let limit = figures.money_held_above.get(&money.currency)?;
                    (money.amount > *limit).then(|| Condition {
                        watch: Watch::MoneyHeld,
                        subject: money.currency.clone(),
                        summary: format!(
                            "{money} withheld by failed and stuck sagas, above the {limit} {} the watch allows",
                            money.currency
                        ),
                        link: format!("/funds#{}", service.as_str()),
                    })
                }));
            }
            Watch::ALL.to_vec()
        }
        Err(error) => {
            if figures.on(Watch::ServiceUnreachable) {
                let streak = app.store.unreachable_streak(service.as_str()).await?;
                if streak >= figures.unreachable_polls {
                    conditions.push(Condition {
                        watch: Watch::ServiceUnreachable,
                        subject: String::new(),
                        summary: format!("could not be read for {streak} polls in a row: {error}"),
                        link: service_page(service, ""),
                    });
                }
            }
            // A watch turned off is judged too: its alerts resolve.
            let mut judged = vec![Watch::ServiceUnreachable];
            judged.extend(figures.off.iter().copied());
            judged
        }
    };
    let to_tell = app
        .store
        .keep_alerts(
            service.as_str(),
            &judged,
            &conditions,
            to_chrono(config.repeat_after),
            now,
        )
        .await?;
    let webhook = config
        .teams
        .get(connector.team())
        .map(|route| route.webhook_url.clone())
        .or_else(|| app.config.actions.webhook_url.clone());
    if let Some(webhook) = webhook {
        let public_url = app.config.public_url();
        for (alert, told) in to_tell {
            app.notifier
                .post(webhook.clone(), message::text(&alert, told, &public_url));
        }
    }
    Ok(())
}

fn to_chrono(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The longest a silence may last: a watch nobody wants for longer is turned off in the
/// config, where a review sees it.
const LONGEST_SILENCE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A silence as someone asked for it, from the API or the Alerts screen; an empty service
/// or watch means all.
pub struct SilenceRequest<'a> {
    pub service: Option<&'a str>,
    pub watch: Option<&'a str>,
    /// How long, as `2h` or `30m`.
    pub lasting: &'a str,
    pub reason: &'a str,
}

/// Why a silence was refused: each says what to send instead.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("there is no service {0:?} to silence")]
    UnknownService(String),
    #[error(transparent)]
    UnknownWatch(#[from] UnknownWatch),
    #[error("\"for\" is not a duration ({0}): give one such as \"30m\" or \"2h\"")]
    NotADuration(humantime::DurationError),
    #[error(
        "a silence lasts more than nothing and at most 7 days; to stop a watch for longer, turn it off in the config (watches.off)"
    )]
    Length,
    #[error("say why in \"reason\": the others see it on the Alerts screen")]
    NoReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl App {
    /// Silences the alerts `request` names for as long as it says, on behalf of `by`.
    pub async fn silence_alerts(
        &self,
        by: &User,
        request: SilenceRequest<'_>,
    ) -> Result<Silence, SilenceError> {
        let service = match all_if_empty(request.service) {
            None => None,
            Some(name) => Some(
                self.fleet
                    .service(name)
                    .map(|connector| connector.name().clone())
                    .ok_or_else(|| SilenceError::UnknownService(name.to_owned()))?,
            ),
        };
        let watch = all_if_empty(request.watch)
            .map(str::parse::<Watch>)
            .transpose()?;
        let lasting = humantime::parse_duration(request.lasting.trim())
            .map_err(SilenceError::NotADuration)?;
        if lasting.is_zero() || lasting > LONGEST_SILENCE {
            return Err(SilenceError::Length);
        }
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(SilenceError::NoReason);
        }
        let now = Utc::now();
        Ok(self
            .store
            .silence_alerts(
                service.as_ref(),
                watch,
                now + to_chrono(lasting),
                reason,
                &by.name,
                now,
            )
            .await?)
    }
}

/// What was typed, trimmed; nothing typed means all.
fn all_if_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// Why a message about an alert is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Fired,
    /// Once, `repeat_after` after it fired, while nobody acknowledged it.
    Reminder,
    Resolved,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(config: &WatchesConfig) -> Figures<'_> {
        static NONE: std::sync::LazyLock<WatchTuning> = std::sync::LazyLock::new(Default::default);
        Figures::new(config, &NONE)
    }

    #[test]
    fn failures_rise_above_the_threshold_or_by_more_than_the_share() {
        let config = WatchesConfig {
            failures_above: 500,
            failures_growth: 0.5,
            ..WatchesConfig::default()
        };
        let figures = figures(&config);
        let payments: ServiceName = "payments".parse().unwrap();
        let fires = |now, before| failures_rising(&payments, now, before, &figures);
        assert!(fires(501, None).is_some(), "above the threshold");
        assert!(fires(500, None).is_none(), "at it");
        assert!(fires(151, Some(100)).is_some(), "grown by more than half");
        assert!(fires(150, Some(100)).is_none(), "by exactly half");
        assert!(fires(9, Some(0)).is_none(), "fewer than ten more");
        assert!(fires(10, Some(0)).is_some(), "ten from none");
        assert!(fires(40, Some(100)).is_none(), "falling");
        let rising = fires(300, Some(100)).unwrap();
        assert_eq!(
            rising.summary,
            "300 failed or stuck sagas, up from 100 1h ago"
        );
        assert_eq!(rising.link, "/services/payments?status=failed");
    }

    #[test]
    fn a_services_tuning_wins_and_adds_to_what_is_off() {
        let config = WatchesConfig {
            failures_above: 500,
            off: vec![Watch::MoneyHeld],
            ..WatchesConfig::default()
        };
        let tuning = WatchTuning {
            failures_above: Some(20),
            off: vec![Watch::ServiceUnreachable],
            ..WatchTuning::default()
        };
        let figures = Figures::new(&config, &tuning);
        assert_eq!(figures.failures_above, 20);
        assert!(!figures.on(Watch::MoneyHeld) && !figures.on(Watch::ServiceUnreachable));
        assert!(figures.on(Watch::FailuresRising));
    }
}
