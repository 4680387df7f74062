//! `latency`: every chunk is delivered `latency` ms after it arrived, plus or minus up to
//! `jitter` ms (drawn from the seed). Delivery is pipelined: a stream of chunks is shifted
//! in time, not slowed down.

use std::time::Duration;

use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Added delay, in milliseconds.
    #[serde(default)]
    pub latency: u64,
    /// Up to this many milliseconds more or less, per chunk.
    #[serde(default)]
    pub jitter: u64,
}

impl Latency {
    /// The delay of one chunk.
    pub(super) fn delay(&self, rng: &mut StdRng) -> Duration {
        let base = self.latency as i64;
        let jitter = self.jitter as i64;
        let shift = if jitter > 0 {
            rng.random_range(-jitter..=jitter)
        } else {
            0
        };
        Duration::from_millis((base + shift).max(0) as u64)
    }
}
