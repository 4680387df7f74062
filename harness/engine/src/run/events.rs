//! What the runner tells the world. The runner never prints: it emits these events, and
//! reporters (console, JSON, JUnit, traces) turn them into output. Every string in an
//! event has already been through the run's redactor, so no reporter can leak a secret.
//!
//! The JSON form of these types is the stable schema of `harness run --json` (see
//! `docs/scenarios.md#json-report`); change it only by adding optional fields.

use serde::{Deserialize, Serialize};

/// Where something is in a scenario file (1-based line and column, byte span).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// When in a scenario a step ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Database, bucket, graph label, fixtures and mocks.
    Setup,
    /// The steady state, checked before the steps.
    SteadyStateBefore,
    Steps,
    /// Always run, even after a failure.
    Rollbacks,
    /// The steady state, checked again after the rollbacks.
    SteadyStateAfter,
    /// Mock call counts checked after the rollbacks.
    Verify,
    Cleanup,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::SteadyStateBefore => "steady state (before)",
            Phase::Steps => "steps",
            Phase::Rollbacks => "rollbacks",
            Phase::SteadyStateAfter => "steady state (after)",
            Phase::Verify => "verify",
            Phase::Cleanup => "cleanup",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    /// An expectation did not hold.
    Failed,
    /// The step could not be carried out (a service was unreachable, a file was missing).
    Error,
    /// Not run because an earlier step failed.
    Skipped,
}

/// Why a step did not pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// The expectation (or the step) in the file.
    pub location: Location,
}

/// The first step that did not pass, named for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStep {
    pub phase: Phase,
    pub index: usize,
    pub step: String,
    pub kind: String,
    pub failure: Failure,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        scenarios: usize,
        jobs: usize,
        seed: u64,
    },
    ScenarioStarted {
        scenario: usize,
        name: String,
        file: String,
    },
    StepFinished {
        scenario: usize,
        phase: Phase,
        index: usize,
        name: String,
        kind: String,
        location: Location,
        duration_ms: f64,
        status: Status,
        /// Tries made by `eventually` (1 for other steps).
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
    ScenarioFinished {
        scenario: usize,
        name: String,
        file: String,
        status: Status,
        duration_ms: f64,
        /// Time spent creating the scenario's database, bucket and graph label.
        setup_ms: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_step: Option<FailedStep>,
        /// Rollbacks that did not pass (they run even after a failure).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rollback_failures: Vec<FailedStep>,
        /// Where the scenario's data was kept (`--keep`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
        /// Every random choice its fault proxies made (`fault` steps), in order: the same
        /// seed and traffic make the same ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fault_decisions: Vec<crate::faults::Decision>,
        /// A restore drill's RTO, RPO and phases against its objectives.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drill: Option<Box<crate::drills::DrillReport>>,
    },
    RunFinished {
        passed: usize,
        failed: usize,
        errored: usize,
        duration_ms: f64,
    },
}

/// Receives every event of a run, in order per scenario.
pub trait Reporter: Send {
    fn event(&mut self, event: &Event);
    /// Called once after `RunFinished`; writes files.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
