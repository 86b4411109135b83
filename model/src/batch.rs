use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A batch run with how far its items got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchProgress {
    pub batch_id: String,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    /// When an item last finished (done or failed); `None` while none has.
    pub last_finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BatchItemStatus {
    Pending,
    Done,
    Failed,
}

impl BatchItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for BatchItemStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "done" => Ok(Self::Done),
            "failed" => Ok(Self::Failed),
            _ => Err(format!(
                "unknown batch item status {s:?}: use pending, done or failed"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem {
    pub item_id: String,
    pub status: BatchItemStatus,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItemPage {
    pub items: Vec<BatchItem>,
    pub next: Option<String>,
}

/// How fast a batch moves and when it will be through, from when its items finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchPace {
    /// Items finished (done or failed) per minute over the last [`PACE_WINDOW_MINUTES`].
    pub items_per_minute: f64,
    /// When the pending items will be through at that rate; `None` when nothing is moving or nothing is left.
    pub eta: Option<DateTime<Utc>>,
}

/// The window the rate is measured over: long enough to smooth bursts, short enough to follow changes.
pub const PACE_WINDOW_MINUTES: i64 = 10;

impl BatchPace {
    /// From the times items finished (any order), how many are still pending, and now.
    pub fn measure(finished: &[DateTime<Utc>], pending: u64, now: DateTime<Utc>) -> Self {
        let since = now - chrono::Duration::minutes(PACE_WINDOW_MINUTES);
        let recent = finished
            .iter()
            .filter(|at| **at > since && **at <= now)
            .count();
        let items_per_minute = recent as f64 / PACE_WINDOW_MINUTES as f64;
        let eta = (pending > 0 && recent > 0).then(|| {
            let seconds = (pending as f64 / items_per_minute * 60.0).ceil() as i64;
            now + chrono::Duration::seconds(seconds)
        });
        Self {
            items_per_minute,
            eta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes_ago: i64) -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
            - chrono::Duration::minutes(minutes_ago)
    }

    #[test]
    fn the_rate_counts_the_last_ten_minutes_and_the_eta_follows() {
        // 20 items in the last 10 minutes (2 a minute), 5 older ones that no longer count.
        let finished: Vec<_> = (0..20)
            .map(|i| at(i / 2))
            .chain((0..5).map(|_| at(30)))
            .collect();
        let pace = BatchPace::measure(&finished, 100, at(0));
        assert_eq!(pace.items_per_minute, 2.0);
        assert_eq!(
            pace.eta,
            Some(at(-50)),
            "100 pending at 2 a minute: 50 minutes"
        );
    }

    #[test]
    fn no_eta_when_nothing_moves_or_nothing_is_left() {
        assert_eq!(BatchPace::measure(&[at(30)], 100, at(0)).eta, None);
        assert_eq!(BatchPace::measure(&[at(1)], 0, at(0)).eta, None);
    }
}
