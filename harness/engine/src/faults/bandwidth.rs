//! `bandwidth`: at most `rate` KB (1000 bytes) per second through this direction.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bandwidth {
    /// KB per second.
    #[serde(default)]
    pub rate: u64,
}

impl Bandwidth {
    fn bytes_per_sec(&self) -> f64 {
        (self.rate.max(1) * 1000) as f64
    }

    /// The largest piece written at once: 20 ms worth, so throughput stays smooth.
    pub(super) fn piece(&self) -> usize {
        ((self.bytes_per_sec() / 50.0) as usize).max(1)
    }
}

/// Paces writes to a rate: the n-th byte is not sent before `start + n / rate`.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    start: Option<Instant>,
    sent: u64,
    rate: u64,
}

impl Pacer {
    /// When `len` more bytes may go, given the toxic now in force.
    pub(super) fn after(&mut self, b: &Bandwidth, len: usize) -> Instant {
        let now = Instant::now();
        // A new rate, or a pause longer than a second, starts a new budget.
        let due = self
            .start
            .map(|s| s + secs(self.sent as f64 / b.bytes_per_sec()));
        if self.rate != b.rate
            || self.start.is_none()
            || due.is_some_and(|d| d + Duration::from_secs(1) < now)
        {
            self.start = Some(now);
            self.sent = 0;
            self.rate = b.rate;
        }
        self.sent += len as u64;
        self.start.unwrap_or(now) + secs(self.sent as f64 / b.bytes_per_sec())
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
