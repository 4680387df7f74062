//! `reset_peer`: the connection is reset (TCP RST, so the peer sees "connection reset by
//! peer") `timeout` ms after the toxic applied, or at once.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPeer {
    /// Milliseconds before the reset.
    #[serde(default)]
    pub timeout: u64,
}
