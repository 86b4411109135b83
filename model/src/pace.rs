//! How fast an action goes (SPEC.md, "Pace"): a canary first and chunks that widen, a pace
//! it may not exceed, the brake the engine puts on when the service's answers slow down,
//! and how long it takes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most an action may send a second; `None`: no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Pace {
    /// Entities named in calls per second, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities_per_second: Option<f64>,
    /// Calls per second, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_second: Option<f64>,
}

impl Pace {
    /// What is wrong with it, in words, if anything.
    pub fn problem(&self) -> Option<String> {
        [
            ("entities_per_second", self.entities_per_second),
            ("calls_per_second", self.calls_per_second),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| !(v.is_finite() && v > 0.0)))
        .map(|(name, v)| {
            format!(
                "{name} must be a number above 0, e.g. 500; got {}",
                v.unwrap_or_default()
            )
        })
    }

    /// This pace where it says something, else `default`'s.
    pub fn or(self, default: Pace) -> Pace {
        Pace {
            entities_per_second: self.entities_per_second.or(default.entities_per_second),
            calls_per_second: self.calls_per_second.or(default.calls_per_second),
        }
    }

    /// How long `entities` in `calls` take at most at this pace.
    pub fn time_for(&self, entities: u64, calls: u64) -> std::time::Duration {
        let seconds = |count: u64, per_second: Option<f64>| {
            per_second.map_or(0.0, |rate| count as f64 / rate)
        };
        std::time::Duration::from_secs_f64(
            seconds(entities, self.entities_per_second).max(seconds(calls, self.calls_per_second)),
        )
    }

    /// "500 entities/s, 2 calls/s", or "no limit".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.entities_per_second.map(|r| format!("{r} entities/s")),
            self.calls_per_second.map(|r| format!("{r} calls/s")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "no limit".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The sizes of an action's calls, in order: a canary of `canary` entities, then each call
/// twice the one before, up to `chunk_size`; the last takes what is left. `canary` 0 (or
/// at least `chunk_size`) makes every call `chunk_size`.
pub fn call_sizes(entities: u64, canary: u32, chunk_size: u32) -> impl Iterator<Item = u64> {
    let chunk_size = u64::from(chunk_size.max(1));
    let mut next = match u64::from(canary) {
        0 => chunk_size,
        canary => canary.min(chunk_size),
    };
    let mut left = entities;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = next.min(left);
        left -= size;
        next = (next * 2).min(chunk_size);
        Some(size)
    })
}

/// How an executing action is going, as the engine last measured it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    /// Entities with a result per second, over the last few seconds.
    pub entities_per_second: Option<f64>,
    /// Calls the engine lets be in flight at once now.
    pub in_flight: u32,
    /// The most it lets be in flight: the action's concurrency.
    pub concurrency: u32,
    /// Why fewer calls are in flight than the concurrency allows, when they are: "the
    /// service's answers slowed down (4 of the last 4 took over 2s or failed)".
    pub brake: Option<String>,
    pub measured_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_start_with_the_canary_and_double_up_to_the_chunk_size() {
        let sizes: Vec<u64> = call_sizes(3000, 10, 1000).collect();
        assert_eq!(sizes[..8], [10, 20, 40, 80, 160, 320, 640, 1000]);
        assert_eq!(sizes.iter().sum::<u64>(), 3000);
        assert_eq!(*sizes.last().unwrap(), 730);
        assert_eq!(call_sizes(5, 10, 1000).collect::<Vec<_>>(), [5]);
        assert_eq!(call_sizes(25, 0, 10).collect::<Vec<_>>(), [10, 10, 5]);
        assert_eq!(call_sizes(3, 10, 1).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(call_sizes(0, 10, 10).count(), 0);
    }

    #[test]
    fn a_pace_is_an_upper_bound_on_both_counts() {
        let pace = Pace {
            entities_per_second: Some(1000.0),
            calls_per_second: Some(2.0),
        };
        assert_eq!(pace.time_for(20_000, 10).as_secs(), 20);
        assert_eq!(pace.time_for(100, 10).as_secs(), 5);
        assert!(
            Pace {
                entities_per_second: Some(0.0),
                calls_per_second: None
            }
            .problem()
            .is_some()
        );
        assert_eq!(pace.problem(), None);
    }
}
