//! Progress events for long waits (runtime installs, service start-up).
//!
//! The engine never prints: it calls a [`Progress`] sink that the CLI renders.

use std::{sync::Arc, time::Duration};

/// Something worth telling a person who is waiting.
#[derive(Clone, Debug)]
pub enum ProgressEvent {
    /// A runtime install step began.
    InstallStep { runtime: String, step: String },
    /// A runtime finished installing.
    Installed {
        runtime: String,
        version: String,
        elapsed: Duration,
    },
    /// Waiting for another process's install to finish.
    WaitingForLock { path: String },
    /// A service process was spawned.
    ServiceStarting { service: String },
    /// A service passed all its readiness checks.
    ServiceReady { service: String, elapsed: Duration },
    /// Orphans of a killed run were removed.
    Reaped { run_id: String },
    /// A workspace binary a scenario runs (`cargo:`) is being built.
    Building { package: String },
}

/// A sink for progress events.
pub type Progress = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn silent() -> Progress {
    Arc::new(|_| {})
}
