//! Leases: a detached stack that lives only as long as another process, such as the
//! nextest run whose setup script started it (`harness up --detach --lease PID`). A
//! watcher process stops the stack as soon as the holder ends; if the watcher itself was
//! killed, the reaper of the next start stops it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::records::{RunRecord, start_ticks};
use crate::error::Error;

/// The process a detached stack is held for, with its start time, so that a recycled pid
/// is not taken for the holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub pid: u32,
    pub start: u64,
}

impl Lease {
    /// A lease held by the live process `pid`.
    pub fn of(pid: u32) -> Result<Self, Error> {
        let start = start_ticks(pid).ok_or_else(|| {
            Error::BadInput(format!(
                "read --lease {pid}: no process {pid} runs on this machine"
            ))
        })?;
        Ok(Lease { pid, start })
    }

    /// Whether the holder still runs.
    pub fn held(&self) -> bool {
        start_ticks(self.pid) == Some(self.start)
    }
}

/// How often the watcher looks at the holder.
const POLL: Duration = Duration::from_millis(200);

/// Waits until the holder of `run_id`'s lease ends, then stops the stack. Returns early,
/// stopping nothing, when the stack is stopped by someone else (its record is gone) or
/// holds no lease.
pub async fn watch(run_id: &str) -> Result<bool, Error> {
    loop {
        let Some(record) = RunRecord::load_all()
            .into_iter()
            .find(|r| r.run_id == run_id)
        else {
            return Ok(false);
        };
        let Some(lease) = record.lease else {
            return Ok(false);
        };
        if !lease.held() {
            record.tear_down().await;
            return Ok(true);
        }
        tokio::time::sleep(POLL).await;
    }
}
