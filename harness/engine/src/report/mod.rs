//! Reporters: the consumers of the runner's [`Event`]s.
//!
//! The runner never prints; it emits typed events (see [`crate::run::events`]) and every
//! output format is a [`Reporter`] that turns them into something for a person or a
//! machine:
//!
//! - [`console::Console`]: nextest-style progress lines, failure excerpts and a summary,
//!   written to stderr by the CLI.
//! - [`json::JsonReport`]: one JSON document for the whole run (`version: 1`).
//! - [`junit::JunitReport`]: JUnit XML for CI systems, one test case per scenario.
//! - [`trace::TraceReport`]: the run as OpenTelemetry spans (run → scenario → step),
//!   printed to stdout or sent to an OTLP/HTTP collector.
//!
//! [`Fanout`] forwards every event to several reporters, so the runner only ever talks to
//! one. Adding a format means adding a reporter here; the runner does not change.
//!
//! Events from scenarios that run in parallel interleave. Each carries its scenario's
//! index, and reporters that need per-scenario state key it on that index.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;
pub mod trace;

pub use console::Console;
pub use html::HtmlReport;
pub use json::JsonReport;
pub use junit::JunitReport;
pub use trace::TraceReport;

use crate::run::events::{Event, Reporter};

/// Forwards every event to each of its reporters, in the order they were added.
#[derive(Default)]
pub struct Fanout {
    reporters: Vec<Box<dyn Reporter>>,
}

impl Fanout {
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Self {
        Self { reporters }
    }

    pub fn push(&mut self, reporter: Box<dyn Reporter>) {
        self.reporters.push(reporter);
    }

    pub fn len(&self) -> usize {
        self.reporters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reporters.is_empty()
    }
}

impl Reporter for Fanout {
    fn event(&mut self, event: &Event) {
        for reporter in &mut self.reporters {
            reporter.event(event);
        }
    }

    /// Finishes every reporter, even after one fails, and returns the first error.
    fn finish(&mut self) -> std::io::Result<()> {
        let mut first = Ok(());
        for reporter in &mut self.reporters {
            let result = reporter.finish();
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

/// Where a file-writing reporter puts its output.
pub(crate) enum Destination {
    Path(std::path::PathBuf),
    Writer(Box<dyn std::io::Write + Send>),
}

impl Destination {
    /// Writes `bytes` in one go, creating the file's parent directories first.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Destination::Path(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
                }
                std::fs::write(&*path, bytes).map_err(|e| with_path(e, path))
            }
            Destination::Writer(writer) => {
                writer.write_all(bytes)?;
                writer.flush()
            }
        }
    }
}

fn with_path(error: std::io::Error, path: &std::path::Path) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("write report {}: {error}", path.display()),
    )
}

/// Milliseconds as a `Duration`; negative or non-finite values become zero.
pub(crate) fn millis(ms: f64) -> std::time::Duration {
    if ms.is_finite() && ms > 0.0 {
        std::time::Duration::from_secs_f64(ms / 1000.0)
    } else {
        std::time::Duration::ZERO
    }
}
