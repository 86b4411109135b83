//! What Runboard watches in every poll, and whom it tells.

use std::time::Duration;

use serde::Deserialize;

use super::SecretUrl;

/// What Runboard watches in every poll, the figures every service starts from, and whom
/// it tells (SPEC.md has no word on watches; issue #15 asks for them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchesConfig {
    /// *failures rising* fires above this many failed and stuck sagas together.
    pub failures_above: u64,
    /// ... or when they grew by more than this share over `window` (0.5: by half).
    pub failures_growth: f64,
    /// How far back *failures rising* looks for growth, and how long an error message must
    /// have been absent from failed sagas to be *new* when it appears.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// *stalled batch* fires for a batch with items pending and none finished for this long...
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
    /// ... or whose failed items pass this share of those finished (0.1: one in ten), once
    /// at least 10 have finished. Batches that finished more than `window` ago are let be.
    pub batch_failed_share: f64,
    /// *money held* fires when withheld funds of a currency pass its figure here:
    /// `{ EUR = "50000" }`. A currency not named is not watched.
    pub money_held_above: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    /// ... or when a saga has held money of a currency for longer than this; none: money is
    /// not watched by age.
    #[serde(with = "humantime_serde")]
    pub money_held_longer_than: Option<Duration>,
    /// *service unreachable* fires after this many failed polls in a row.
    pub unreachable_polls: u32,
    /// Watches turned off for every service: `["money_held"]`.
    pub off: Vec<runboard_model::Watch>,
    /// A firing alert nobody acknowledged is told once more after this long.
    #[serde(with = "humantime_serde")]
    pub repeat_after: Duration,
    /// Where each team hears of its services' alerts: `{ payments = { webhook_url = "…" } }`.
    /// A team not named here hears through `actions.webhook_url`.
    pub teams: std::collections::BTreeMap<String, TeamRoute>,
}

impl Default for WatchesConfig {
    fn default() -> Self {
        Self {
            failures_above: 1000,
            failures_growth: 0.5,
            window: Duration::from_secs(3600),
            stall_after: Duration::from_secs(15 * 60),
            batch_failed_share: 0.1,
            money_held_above: Default::default(),
            money_held_longer_than: None,
            unreachable_polls: 3,
            off: Vec::new(),
            repeat_after: Duration::from_secs(4 * 3600),
            teams: Default::default(),
        }
    }
}

/// Where one team hears of alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRoute {
    /// A Slack-compatible incoming webhook; a secret.
    pub webhook_url: SecretUrl,
}

/// One service's figures for the watches, each over `[watches]`'s where given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchTuning {
    pub failures_above: Option<u64>,
    pub failures_growth: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub stall_after: Option<Duration>,
    pub batch_failed_share: Option<f64>,
    pub money_held_above: Option<std::collections::BTreeMap<String, rust_decimal::Decimal>>,
    #[serde(default, with = "humantime_serde")]
    pub money_held_longer_than: Option<Duration>,
    pub unreachable_polls: Option<u32>,
    /// Watches turned off for this service, beside those `[watches]` turns off.
    #[serde(default)]
    pub off: Vec<runboard_model::Watch>,
}

impl WatchTuning {
    /// The figures given that no watch can work with, as `(field, what is wrong)`: the one
    /// check of `[watches]` and of every `[services.watches]`.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(growth) = self.failures_growth
            && (growth.is_nan() || growth <= 0.0)
        {
            return Some((
                "failures_growth",
                format!(
                    "expected a share above 0 (0.5 fires when failures grew by half), got {growth}"
                ),
            ));
        }
        if let Some(share) = self.batch_failed_share
            && !(share > 0.0 && share <= 1.0)
        {
            return Some((
                "batch_failed_share",
                format!(
                    "expected a share above 0 and at most 1 (0.1 fires when one finished item in ten failed), got {share}"
                ),
            ));
        }
        if self.stall_after.is_some_and(|d| d.is_zero()) {
            return Some((
                "stall_after",
                "must be longer than 0s (to turn the watch off, put \"stalled_batch\" in off)"
                    .into(),
            ));
        }
        if self.money_held_longer_than.is_some_and(|d| d.is_zero()) {
            return Some((
                "money_held_longer_than",
                "must be longer than 0s (leave it out not to watch money by age)".into(),
            ));
        }
        if self.unreachable_polls == Some(0) {
            return Some((
                "unreachable_polls",
                "expected 1 or more failed polls in a row (to turn the watch off, put \"service_unreachable\" in off)".into(),
            ));
        }
        None
    }
}

impl WatchesConfig {
    /// `[watches]`'s figures as a tuning that gives every one.
    pub(super) fn as_tuning(&self) -> WatchTuning {
        WatchTuning {
            failures_above: Some(self.failures_above),
            failures_growth: Some(self.failures_growth),
            stall_after: Some(self.stall_after),
            batch_failed_share: Some(self.batch_failed_share),
            money_held_above: Some(self.money_held_above.clone()),
            money_held_longer_than: self.money_held_longer_than,
            unreachable_polls: Some(self.unreachable_polls),
            off: self.off.clone(),
        }
    }
}
