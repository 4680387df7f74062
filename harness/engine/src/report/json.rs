//! The JSON report: one document for the whole run, written when the run finishes.
//!
//! The document is `version: 1` and lists scenarios in index order (the order they were
//! given to `harness run`), not the order they finished in. Its shape is the [`Document`]
//! struct; change it only by adding optional fields, and bump `version` otherwise.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Serialize;

use super::Destination;
use crate::run::events::{Event, FailedStep, Failure, Location, Phase, Reporter, Status};

/// The schema version written as `version`.
pub const VERSION: u32 = 1;

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Document {
    pub version: u32,
    pub run_id: String,
    pub seed: u64,
    pub duration_ms: f64,
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub scenarios: Vec<ScenarioDoc>,
}

/// One scenario and the steps it ran.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioDoc {
    pub name: String,
    pub file: String,
    /// `error` when the run ended before the scenario finished.
    pub status: Status,
    pub duration_ms: f64,
    pub setup_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<FailedStep>,
    pub rollback_failures: Vec<FailedStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    pub steps: Vec<StepDoc>,
    /// Every random choice of the scenario's fault proxies, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fault_decisions: Vec<crate::faults::Decision>,
    /// A restore drill's RTO, RPO and phases against its objectives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<Box<crate::drills::DrillReport>>,
    /// Whether `ScenarioFinished` was seen (not written: `status` says `error` otherwise).
    #[serde(skip)]
    pub finished: bool,
}

/// One finished step.
#[derive(Clone, Debug, Serialize)]
pub struct StepDoc {
    pub phase: Phase,
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub location: Location,
    pub status: Status,
    pub duration_ms: f64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

#[derive(Default)]
struct RunTotals {
    passed: usize,
    failed: usize,
    errored: usize,
    duration_ms: f64,
}

/// Folds a run's events into a [`Document`]; shared by the JSON and JUnit reports.
#[derive(Default)]
pub(crate) struct Collector {
    run_id: String,
    seed: u64,
    totals: Option<RunTotals>,
    scenarios: BTreeMap<usize, ScenarioDoc>,
}

impl Collector {
    /// The document as it stands: complete once `RunFinished` has been seen.
    pub(crate) fn document(&self) -> Document {
        let scenarios: Vec<ScenarioDoc> = self.scenarios.values().cloned().collect();
        let totals = self.totals.as_ref();
        let count = |status| scenarios.iter().filter(|s| s.status == status).count();
        Document {
            version: VERSION,
            run_id: self.run_id.clone(),
            seed: self.seed,
            duration_ms: totals.map_or(0.0, |t| t.duration_ms),
            passed: totals.map_or_else(|| count(Status::Passed), |t| t.passed),
            failed: totals.map_or_else(|| count(Status::Failed), |t| t.failed),
            errored: totals.map_or_else(|| count(Status::Error), |t| t.errored),
            scenarios,
        }
    }

    fn scenario(&mut self, index: usize) -> &mut ScenarioDoc {
        self.scenarios.entry(index).or_insert_with(|| ScenarioDoc {
            name: String::new(),
            file: String::new(),
            status: Status::Error,
            duration_ms: 0.0,
            setup_ms: 0.0,
            failed_step: None,
            rollback_failures: Vec::new(),
            kept: None,
            steps: Vec::new(),
            fault_decisions: Vec::new(),
            drill: None,
            finished: false,
        })
    }

    pub(crate) fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { run_id, seed, .. } => {
                self.run_id.clone_from(run_id);
                self.seed = *seed;
            }
            Event::ScenarioStarted {
                scenario,
                name,
                file,
            } => {
                let doc = self.scenario(*scenario);
                doc.name.clone_from(name);
                doc.file.clone_from(file);
            }
            Event::StepFinished {
                scenario,
                phase,
                index,
                name,
                kind,
                location,
                duration_ms,
                status,
                attempts,
                failure,
            } => self.scenario(*scenario).steps.push(StepDoc {
                phase: *phase,
                index: *index,
                name: name.clone(),
                kind: kind.clone(),
                location: location.clone(),
                status: *status,
                duration_ms: *duration_ms,
                attempts: *attempts,
                failure: failure.clone(),
            }),
            Event::ScenarioFinished {
                scenario,
                name,
                file,
                status,
                duration_ms,
                setup_ms,
                failed_step,
                rollback_failures,
                kept,
                fault_decisions,
                drill,
            } => {
                let doc = self.scenario(*scenario);
                doc.name.clone_from(name);
                doc.file.clone_from(file);
                doc.status = *status;
                doc.duration_ms = *duration_ms;
                doc.setup_ms = *setup_ms;
                doc.failed_step.clone_from(failed_step);
                doc.rollback_failures.clone_from(rollback_failures);
                doc.kept.clone_from(kept);
                doc.fault_decisions.clone_from(fault_decisions);
                doc.drill.clone_from(drill);
                doc.finished = true;
            }
            Event::RunFinished {
                passed,
                failed,
                errored,
                duration_ms,
            } => {
                self.totals = Some(RunTotals {
                    passed: *passed,
                    failed: *failed,
                    errored: *errored,
                    duration_ms: *duration_ms,
                });
            }
        }
    }
}

/// Collects a run's events and writes them as one JSON document on [`Reporter::finish`].
pub struct JsonReport {
    destination: Destination,
    collector: Collector,
}

impl JsonReport {
    /// Writes the document to `path` (parent directories are created).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_destination(Destination::Path(path.into()))
    }

    /// Writes the document to `writer`, for example stdout.
    pub fn to_writer(writer: Box<dyn std::io::Write + Send>) -> Self {
        Self::with_destination(Destination::Writer(writer))
    }

    fn with_destination(destination: Destination) -> Self {
        Self {
            destination,
            collector: Collector::default(),
        }
    }

    /// The document as it stands: complete once `RunFinished` has been seen. A drill's
    /// records are for the HTML timeline: its counts are here.
    pub fn report(&self) -> Document {
        let mut doc = self.collector.document();
        for s in &mut doc.scenarios {
            if let Some(d) = &mut s.drill {
                d.records.clear();
            }
        }
        doc
    }

    /// The document as a JSON value.
    pub fn document(&self) -> serde_json::Value {
        serde_json::to_value(self.report()).unwrap_or(serde_json::Value::Null)
    }
}

impl Reporter for JsonReport {
    fn event(&mut self, event: &Event) {
        self.collector.event(event);
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.report()).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        self.destination.write_all(&bytes)
    }
}
