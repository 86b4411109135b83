//! Watches: on every poll of a service, Runboard looks at what it read for the conditions
//! an on-call engineer must hear of (a new error, failures rising, a stalled batch, money
//! held, the service unreachable),
//! keeps an alert in the store while one holds, and tells the service's team once, with a
//! link to the page already filtered to the problem. The replica that polls a service
//! judges it; each alert is opened and each message claimed by one statement, so that
//! several replicas tell a team once.

mod alerts;
mod conditions;
mod message;

use chrono::{DateTime, Utc};
use runboard_model::{Alert, ServiceName, Silence, UnknownWatch, User, Watch};

pub use alerts::AcknowledgeError;

use crate::App;
use crate::config::{WatchTuning, WatchesConfig};
use crate::connector::{Connector, with_reserved_connections};
use crate::snapshots::Reading;
use crate::store::StoreError;

/// A watch's condition holding for a service in one poll.
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    watch: Watch,
    subject: String,
    summary: String,
    link: String,
    ask_link: Option<String>,
    /// Whether the condition opens an alert; `false`: it only keeps open one that fired
    /// before (an error no longer new that failed sagas still carry).
    fires: bool,
}

/// One service's figures: `[watches]` with the service's own tuning over them.
struct Figures<'a> {
    failures_above: u64,
    failures_growth: f64,
    window: std::time::Duration,
    stall_after: std::time::Duration,
    batch_failed_share: f64,
    money_held_above: &'a std::collections::BTreeMap<String, rust_decimal::Decimal>,
    money_held_longer_than: Option<std::time::Duration>,
    unreachable_polls: u32,
    off: Vec<Watch>,
}

impl<'a> Figures<'a> {
    fn new(config: &'a WatchesConfig, tuning: &'a WatchTuning) -> Self {
        Self {
            failures_above: tuning.failures_above.unwrap_or(config.failures_above),
            failures_growth: tuning.failures_growth.unwrap_or(config.failures_growth),
            window: config.window,
            stall_after: tuning.stall_after.unwrap_or(config.stall_after),
            batch_failed_share: tuning
                .batch_failed_share
                .unwrap_or(config.batch_failed_share),
            money_held_above: tuning
                .money_held_above
                .as_ref()
                .unwrap_or(&config.money_held_above),
            money_held_longer_than: tuning
                .money_held_longer_than
                .or(config.money_held_longer_than),
            unreachable_polls: tuning.unreachable_polls.unwrap_or(config.unreachable_polls),
            off: config.off.iter().chain(&tuning.off).copied().collect(),
        }
    }

    fn on(&self, watch: Watch) -> bool {
        !self.off.contains(&watch)
    }
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
            // Discovery judges its own watch, at each sync.
            let mut judged: Vec<Watch> = Watch::ALL
                .into_iter()
                .filter(|w| *w != Watch::DiscoveryRefused)
                .collect();
            if figures.on(Watch::FailuresRising) {
                let before = app
                    .store
                    .failures_before(service, now - to_chrono(figures.window))
                    .await?;
                conditions.extend(conditions::failures_rising(
                    service,
                    reading.sagas.failed + reading.sagas.stuck,
                    before,
                    &figures,
                ));
            }
            if figures.on(Watch::NewError) {
                match with_reserved_connections(connector.error_groups()).await {
                    Ok(groups) => conditions.extend(
                        conditions::new_errors(app, connector, &groups, &figures, now).await?,
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "new errors could not be judged this poll");
                        judged.retain(|w| *w != Watch::NewError);
                    }
                }
            }
            if figures.on(Watch::StalledBatch) {
                let finished_since = now - to_chrono(figures.window);
                match with_reserved_connections(connector.batches_to_watch(finished_since)).await {
                    Ok(batches) => conditions.extend(batches.iter().filter_map(|batch| {
                        conditions::stalled_batch(service, batch, &figures, now)
                    })),
                    Err(error) => {
                        tracing::warn!(%error, "batches could not be judged this poll");
                        judged.retain(|w| *w != Watch::StalledBatch);
                    }
                }
            }
            if figures.on(Watch::MoneyHeld) {
                // Read only where money is watched by age, and only if some is held.
                let oldest = match figures.money_held_longer_than {
                    Some(_) if !reading.withheld_funds.is_empty() => {
                        with_reserved_connections(connector.oldest_holding()).await
                    }
                    _ => Ok(Vec::new()),
                };
                match oldest {
                    Ok(oldest) => conditions.extend(conditions::money_held(
                        service,
                        &reading.withheld_funds,
                        &oldest,
                        &figures,
                        now,
                    )),
                    Err(error) => {
                        tracing::warn!(%error, "money held could not be judged this poll");
                        judged.retain(|w| *w != Watch::MoneyHeld);
                    }
                }
            }
            judged
        }
        Err(error) => {
            if figures.on(Watch::ServiceUnreachable) {
                let streak = app.store.unreachable_streak(service).await?;
                if streak >= figures.unreachable_polls {
                    conditions.push(Condition {
                        watch: Watch::ServiceUnreachable,
                        subject: String::new(),
                        summary: format!("could not be read for {streak} polls in a row: {error}"),
                        link: conditions::service_page(service, ""),
                        ask_link: None,
                        fires: true,
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
            service,
            &judged,
            &conditions,
            to_chrono(config.repeat_after),
            now,
        )
        .await?;
    tell(app, Some(connector.team()), to_tell);
    Ok(())
}

/// Posts the alerts due to the team's webhook (`actions.webhook_url` for a team without one).
fn tell(app: &App, team: Option<&str>, to_tell: Vec<(Alert, Told)>) {
    let webhook = team
        .and_then(|team| app.config.watches.teams.get(team))
        .map(|route| route.webhook_url.clone())
        .or_else(|| app.config.actions.webhook_url.clone());
    if let Some(webhook) = webhook {
        let public_url = app.config.public_url();
        for (alert, told) in to_tell {
            let (text, button) = message::text(&alert, told, &public_url);
            app.notifier.post(webhook.clone(), text, button);
        }
    }
}

/// A Service that discovery left out for asking for a name, token audience or team its
/// namespace may not have.
pub struct Refusal {
    /// The name it asked to register as.
    pub service: ServiceName,
    /// `<namespace>/<name>` of the Service.
    pub origin: String,
    pub message: String,
}

/// Keeps a *discovery refused* alert open per refused Service while it asks, under the
/// name it asked for, and resolves those that no longer do. The alert goes to the team
/// that holds that name (a squatter's annotations choose nothing), else to
/// `actions.webhook_url`.
pub async fn judge_discovery(
    app: &App,
    refusals: &[Refusal],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let on = !app.config.watches.off.contains(&Watch::DiscoveryRefused);
    let mut by_service: std::collections::BTreeMap<ServiceName, Vec<Condition>> = app
        .store
        .services_alerted(Watch::DiscoveryRefused)
        .await?
        .into_iter()
        .map(|service| (service, Vec::new()))
        .collect();
    for refusal in refusals.iter().filter(|_| on) {
        by_service
            .entry(refusal.service.clone())
            .or_default()
            .push(Condition {
                watch: Watch::DiscoveryRefused,
                subject: refusal.origin.clone(),
                summary: format!("{} {}", refusal.origin, refusal.message),
                link: "/".into(),
                ask_link: None,
                fires: true,
            });
    }
    for (service, conditions) in by_service {
        let to_tell = app
            .store
            .keep_alerts(
                &service,
                &[Watch::DiscoveryRefused],
                &conditions,
                to_chrono(app.config.watches.repeat_after),
                now,
            )
            .await?;
        let holder = app.fleet.service(&service);
        tell(app, holder.as_ref().map(|c| c.team()), to_tell);
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
                name.parse()
                    .ok()
                    .and_then(|name| self.fleet.service(&name))
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
        let now = self.clock.now();
        let silence = self
            .store
            .silence_alerts(
                service.as_ref(),
                watch,
                now + to_chrono(lasting),
                reason,
                &by.name,
                now,
            )
            .await?;
        self.screens.alerts_changed();
        Ok(silence)
    }

    /// Records that `by` is on alert `id`, with a note for the others: no reminder follows.
    pub async fn acknowledge_alert(
        &self,
        id: i64,
        by: &User,
        note: &str,
    ) -> Result<Alert, AcknowledgeError> {
        let alert = self
            .store
            .acknowledge_alert(id, &by.name, note.trim(), self.clock.now())
            .await?;
        self.screens.alerts_changed();
        Ok(alert)
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

    /// `config`'s figures for a service that tunes none.
    pub(super) fn figures(config: &WatchesConfig) -> Figures<'_> {
        static NONE: std::sync::LazyLock<WatchTuning> = std::sync::LazyLock::new(Default::default);
        Figures::new(config, &NONE)
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
