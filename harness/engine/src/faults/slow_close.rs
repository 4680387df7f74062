//! `slow_close`: when one side closes, the close reaches the other side `delay` ms later.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowClose {
    /// Milliseconds the close is held back.
    #[serde(default)]
    pub delay: u64,
}
