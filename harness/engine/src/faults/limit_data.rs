//! `limit_data`: the connection is closed once `bytes` bytes went through this direction;
//! the peer gets exactly that many.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitData {
    /// Bytes let through before the close.
    #[serde(default)]
    pub bytes: u64,
}

impl LimitData {
    /// How much of a chunk of `len` may still go after `sent` bytes, and whether the
    /// connection closes after it.
    pub(super) fn allow(&self, sent: u64, len: usize) -> (usize, bool) {
        let left = self.bytes.saturating_sub(sent);
        if (len as u64) < left {
            (len, false)
        } else {
            (left as usize, true)
        }
    }
}
