//! Runboard's "now". Watches, silences and alert boards judge time by it, so that a test
//! moves time forward rather than waiting for it to pass on a machine of unknown speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The system's clock, moved forward by whatever a test added.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system's time; only tests add any.
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::Relaxed))
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
}
