//! `timeout`: no data gets through (it is dropped, as with Toxiproxy); the connection is
//! closed `timeout` ms after the toxic applied, or held open until the toxic is removed when
//! `timeout` is 0.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeout {
    /// Milliseconds before the connection is closed; 0 holds it open.
    #[serde(default)]
    pub timeout: u64,
}
