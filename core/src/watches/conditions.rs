//! Each watch's condition, judged from what one poll of a service read.

use chrono::{DateTime, Utc};
use runboard_model::{
    BatchProgress, ErrorGroup, Money, ServiceName, Watch, query_string, url_encode,
};

use super::{Condition, Figures, to_chrono};
use crate::App;
use crate::connector::{Connector, with_reserved_connections};
use crate::store::StoreError;

/// Rises of fewer sagas than this never count as *failures rising*, whatever the share:
/// 2 failed sagas becoming 4 is no incident.
const GROWTH_FLOOR: u64 = 10;

/// A batch's failed share counts once this many of its items finished: 1 failed of the
/// first 3 is no incident.
const FINISHED_FLOOR: u64 = 10;

/// How much of an error message names its alert and its memory: enough to tell messages
/// apart, short enough for an index.
const ERROR_KEY_CHARS: usize = 500;

/// The service's page, with `rest` (a sub-page, a query string) after its name.
pub(super) fn service_page(service: &ServiceName, rest: &str) -> String {
    format!("/services/{}{rest}", url_encode(service.as_str()))
}

/// The page where an operator asks for an action, filled in with `selection`.
fn ask_page(service: &ServiceName, selection: (&str, &str)) -> String {
    format!(
        "/actions/new{}",
        query_string([
            ("service", Some(service.as_str())),
            (selection.0, Some(selection.1))
        ])
    )
}

/// An error message's first [`ERROR_KEY_CHARS`] characters.
pub(super) fn error_key(message: &str) -> &str {
    message
        .char_indices()
        .nth(ERROR_KEY_CHARS)
        .map_or(message, |(end, _)| &message[..end])
}

/// *failures rising*: above the threshold, or grown by more than the share since the
/// window began (`before`: failed and stuck then, where a snapshot says).
pub(super) fn failures_rising(
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
        ask_link: None,
        fires: true,
    })
}

/// *money held*: one condition per currency whose withheld funds pass its figure, or
/// that a saga has held longer than `money_held_longer_than` (`oldest`: since when, per
/// currency).
pub(super) fn money_held(
    service: &ServiceName,
    withheld: &[Money],
    oldest: &[(String, DateTime<Utc>)],
    figures: &Figures,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    withheld
        .iter()
        .filter_map(|money| {
            let mut why = Vec::new();
            if let Some(limit) = figures.money_held_above.get(&money.currency)
                && money.amount > *limit
            {
                why.push(format!(
                    "above the {limit} {} the watch allows",
                    money.currency
                ));
            }
            if let Some(age) = figures.money_held_longer_than
                && let Some((_, since)) = oldest.iter().find(|(c, _)| *c == money.currency)
                && let Ok(held) = (now - *since).to_std()
                && held > age
            {
                why.push(format!(
                    "the oldest held for {}, longer than the {} the watch allows",
                    in_minutes(held),
                    humantime::format_duration(age)
                ));
            }
            (!why.is_empty()).then(|| Condition {
                watch: Watch::MoneyHeld,
                subject: money.currency.clone(),
                summary: format!(
                    "{money} withheld by failed and stuck sagas, {}",
                    why.join("; ")
                ),
                link: format!("/funds#{}", service.as_str()),
                ask_link: None,
                fires: true,
            })
        })
        .collect()
}

/// A time as people say it: to the minute.
fn in_minutes(time: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(std::time::Duration::from_secs(time.as_secs() / 60 * 60))
}

/// *new error*: an error message on failed sagas that no poll saw there within the
/// window, and that the service itself first gave within it (so that neither Runboard's
/// first poll nor its return after a while calls old errors new). An alert that fired
/// stays open while failed sagas carry its message. Remembers every message this poll saw.
pub(super) async fn new_errors(
    app: &App,
    connector: &Connector,
    groups: &[ErrorGroup],
    figures: &Figures<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Condition>, StoreError> {
    let service = connector.name();
    let since = now - to_chrono(figures.window);
    let seen = app.store.errors_seen(service, since).await?;
    let mut conditions = Vec::with_capacity(groups.len());
    for group in groups {
        let message = &group.error_message;
        let key = error_key(message);
        let fires = !seen.contains(key) && group.first_seen > since;
        let first = if fires {
            // Only for an error seen for the first time: a poll asks this rarely.
            with_reserved_connections(connector.first_failed_with(message))
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "the first saga of a new error could not be read");
                    None
                })
        } else {
            None
        };
        conditions.push(new_error(service, group, first.as_deref(), fires));
    }
    app.store
        .saw_errors(
            service,
            groups.iter().map(|g| error_key(&g.error_message)),
            now,
        )
        .await?;
    Ok(conditions)
}

fn new_error(
    service: &ServiceName,
    group: &ErrorGroup,
    first_saga: Option<&str>,
    fires: bool,
) -> Condition {
    let message = &group.error_message;
    let sagas = if group.count == 1 { "saga" } else { "sagas" };
    let first = first_saga.map_or_else(String::new, |id| format!(", the first {id}"));
    Condition {
        watch: Watch::NewError,
        subject: error_key(message).to_owned(),
        summary: format!("\"{message}\" on {} failed {sagas}{first}", group.count),
        link: service_page(
            service,
            &query_string([("status", Some("failed")), ("error", Some(message))]),
        ),
        ask_link: Some(ask_page(service, ("error", message))),
        fires,
    }
}

/// *stalled batch*: a running batch with items pending and none finished for
/// `stall_after`, or one whose failed items pass the share of those finished.
pub(super) fn stalled_batch(
    service: &ServiceName,
    batch: &BatchProgress,
    figures: &Figures,
    now: DateTime<Utc>,
) -> Option<Condition> {
    let mut seen = Vec::new();
    if batch.finished_at.is_none() && batch.pending > 0 {
        let since = batch.last_finished_at.unwrap_or(batch.started_at);
        let idle = (now - since).to_std().unwrap_or_default();
        if idle >= figures.stall_after {
            let idle = humantime::format_duration(std::time::Duration::from_secs(idle.as_secs()));
            seen.push(format!(
                "no item finished for {idle}, {} pending",
                batch.pending
            ));
        }
    }
    let finished = batch.done + batch.failed;
    if finished >= FINISHED_FLOOR
        && batch.failed as f64 / finished as f64 > figures.batch_failed_share
    {
        seen.push(format!(
            "{} of its {finished} finished items failed, more than the {}% the watch allows",
            batch.failed,
            figures.batch_failed_share * 100.0
        ));
    }
    if seen.is_empty() {
        return None;
    }
    let batch_page = format!("/batches/{}", url_encode(&batch.batch_id));
    Some(Condition {
        watch: Watch::StalledBatch,
        subject: batch.batch_id.clone(),
        summary: format!("batch \"{}\": {}", batch.name, seen.join("; ")),
        link: service_page(service, &batch_page),
        ask_link: (batch.failed > 0).then(|| ask_page(service, ("batch", &batch.batch_id))),
        fires: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WatchesConfig;
    use crate::watches::tests::figures;

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

    fn batch(now: DateTime<Utc>) -> BatchProgress {
        BatchProgress {
            batch_id: "b 1".into(),
            name: "Friday payout".into(),
            started_at: now - chrono::Duration::hours(1),
            finished_at: None,
            done: 2000,
            failed: 30,
            pending: 2970,
            last_finished_at: Some(now - chrono::Duration::minutes(20)),
        }
    }

    #[test]
    fn a_batch_stalls_when_nothing_finished_for_stall_after_and_fails_past_its_share() {
        let now: DateTime<Utc> = "2026-12-04T17:00:00Z".parse().unwrap();
        let config = WatchesConfig {
            stall_after: std::time::Duration::from_secs(15 * 60),
            batch_failed_share: 0.1,
            ..WatchesConfig::default()
        };
        let figures = figures(&config);
        let payouts: ServiceName = "payouts".parse().unwrap();
        let judge = |batch: &BatchProgress| stalled_batch(&payouts, batch, &figures, now);

        let stalled = judge(&batch(now)).expect("20 minutes without an item finished");
        assert_eq!(
            stalled.summary,
            "batch \"Friday payout\": no item finished for 20m, 2970 pending"
        );
        assert_eq!(stalled.subject, "b 1");
        assert_eq!(stalled.link, "/services/payouts/batches/b%201");
        assert_eq!(
            stalled.ask_link.as_deref(),
            Some("/actions/new?service=payouts&batch=b%201")
        );

        let moving = BatchProgress {
            last_finished_at: Some(now - chrono::Duration::minutes(14)),
            ..batch(now)
        };
        assert_eq!(judge(&moving), None, "an item finished 14 minutes ago");
        let not_started = BatchProgress {
            started_at: now - chrono::Duration::minutes(16),
            done: 0,
            failed: 0,
            last_finished_at: None,
            ..batch(now)
        };
        assert!(
            judge(&not_started).is_some(),
            "started 16 minutes ago, none finished"
        );
        let finished = BatchProgress {
            finished_at: Some(now),
            pending: 0,
            ..batch(now)
        };
        assert_eq!(judge(&finished), None, "nothing pending is not stalled");

        let failing = BatchProgress {
            done: 80,
            failed: 20,
            ..moving.clone()
        };
        let failing = judge(&failing).expect("a fifth failed");
        assert_eq!(
            failing.summary,
            "batch \"Friday payout\": 20 of its 100 finished items failed, more than the 10% the watch allows"
        );
        let few = BatchProgress {
            done: 5,
            failed: 4,
            ..moving
        };
        assert_eq!(judge(&few), None, "fewer than 10 finished");
    }

    #[test]
    fn money_is_held_above_a_currencys_figure_or_longer_than_the_age() {
        let now: DateTime<Utc> = "2026-12-04T17:00:00Z".parse().unwrap();
        let config = WatchesConfig {
            money_held_above: [("EUR".to_owned(), "1000".parse().unwrap())].into(),
            money_held_longer_than: Some(std::time::Duration::from_secs(2 * 86_400)),
            ..WatchesConfig::default()
        };
        let figures = figures(&config);
        let payments: ServiceName = "payments".parse().unwrap();
        let money = |amount: &str, currency: &str| Money {
            amount: amount.parse().unwrap(),
            currency: currency.to_owned(),
        };
        let withheld = [
            money("1500.00", "EUR"),
            money("99.50", "USD"),
            money("5", "GBP"),
        ];
        let oldest = [
            ("EUR".to_owned(), now - chrono::Duration::hours(1)),
            (
                "USD".to_owned(),
                now - chrono::Duration::minutes(3 * 24 * 60 + 5),
            ),
            ("GBP".to_owned(), now - chrono::Duration::hours(47)),
        ];
        let held = money_held(&payments, &withheld, &oldest, &figures, now);
        let summaries: Vec<_> = held
            .iter()
            .map(|c| (c.subject.as_str(), c.summary.as_str()))
            .collect();
        assert_eq!(
            summaries,
            [
                (
                    "EUR",
                    "1500.00 EUR withheld by failed and stuck sagas, above the 1000 EUR the watch allows"
                ),
                (
                    "USD",
                    "99.50 USD withheld by failed and stuck sagas, the oldest held for 3days 5m, longer than the 2days the watch allows"
                ),
            ],
            "GBP is neither above a figure (it has none) nor held two days"
        );
        assert_eq!(held[0].link, "/funds#payments");
    }

    #[test]
    fn a_new_error_says_its_count_and_first_saga_and_links_to_its_group_and_its_fix() {
        let payments: ServiceName = "payments".parse().unwrap();
        let group = ErrorGroup {
            error_message: "ledger: timeout & retry".into(),
            count: 3,
            first_seen: "2026-12-04T17:00:00Z".parse().unwrap(),
            last_seen: "2026-12-04T17:01:00Z".parse().unwrap(),
        };
        let condition = new_error(&payments, &group, Some("s-1"), true);
        assert_eq!(
            condition.summary,
            "\"ledger: timeout & retry\" on 3 failed sagas, the first s-1"
        );
        assert_eq!(
            condition.link,
            "/services/payments?status=failed&error=ledger%3A%20timeout%20%26%20retry"
        );
        assert_eq!(
            condition.ask_link.as_deref(),
            Some("/actions/new?service=payments&error=ledger%3A%20timeout%20%26%20retry")
        );
        let long = "é".repeat(600);
        assert_eq!(error_key(&long).chars().count(), 500);
        assert_eq!(error_key("short"), "short");
    }
}
