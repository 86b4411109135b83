//! Runboard's "now". Watches, silences, alert boards, sessions and the request limits judge
//! time by it, so that a test moves time forward rather than waiting for it to pass on a
//! machine of unknown speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The system's clock, moved forward by whatever a test added; or, once a test stopped it,
/// the time it stopped at plus what the test added since.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system's time; only tests add any.
    ahead_ms: Arc<AtomicI64>,
    /// When a test stopped the clock, in milliseconds since 1970; 0 while it runs.
    stopped_at_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let stopped_at = self.stopped_at_ms.load(Ordering::Relaxed);
        let base = match stopped_at {
            0 => Utc::now(),
            ms => DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now),
        };
        base + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// How long ago `at` was by this clock; zero for a time it has not reached.
    pub fn since(&self, at: DateTime<Utc>) -> Duration {
        (self.now() - at).to_std().unwrap_or_default()
    }

    /// Stops this clock where it is (tests only): from now on it moves only by
    /// [`Clock::advance`], so a test that counts requests in a second has the whole second,
    /// however slow the machine.
    pub fn stop(&self) {
        let _ = self.stopped_at_ms.compare_exchange(
            0,
            Utc::now().timestamp_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Moves this clock forward (tests only: time never runs backwards).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis())
            .expect("a test moves time by less than 292 million years");
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_moved_forward_stays_ahead_of_the_system_by_that_much() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(3600));
        let ahead = clock.now() - Utc::now();
        assert!(
            ahead > chrono::Duration::minutes(59) && ahead <= chrono::Duration::minutes(60),
            "{ahead}"
        );
    }

    #[test]
    fn a_stopped_clock_moves_only_when_moved() {
        let clock = Clock::default();
        clock.stop();
        let stopped = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), stopped);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now() - stopped, chrono::Duration::seconds(2));
    }
}
