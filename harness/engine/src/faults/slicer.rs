//! `slicer`: each chunk is written in pieces of `average_size` ± `size_variation` bytes
//! (drawn from the seed), `delay` microseconds apart. The bytes are the same; the peer reads
//! them in more, smaller reads.

use rand::{Rng, rngs::StdRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// Average size of a piece, in bytes.
    #[serde(default)]
    pub average_size: u64,
    /// A piece is up to this many bytes larger or smaller.
    #[serde(default)]
    pub size_variation: u64,
    /// Microseconds between pieces.
    #[serde(default)]
    pub delay: u64,
}

impl Slicer {
    /// The sizes of the pieces of a chunk of `len` bytes.
    pub(super) fn pieces(&self, len: usize, rng: &mut StdRng) -> Vec<usize> {
        let avg = self.average_size.max(1) as i64;
        let var = self.size_variation.min(self.average_size.saturating_sub(1)) as i64;
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let size = if var > 0 {
                avg + rng.random_range(-var..=var)
            } else {
                avg
            };
            let size = (size.max(1) as usize).min(left);
            out.push(size);
            left -= size;
        }
        out
    }
}
