//! The JUnit XML report, for CI systems that show test results.
//!
//! One `<testsuite>` for the run, one `<testcase>` per scenario: its name is the scenario
//! name, its classname the scenario file. A failed scenario carries a `<failure>` whose
//! message names the failing step, its phase and `file:line:col`; expected and actual
//! values go in the description. A scenario that could not be carried out carries an
//! `<error>` instead. Rollbacks that failed are listed in the description and in
//! `system-err`.

use std::{fmt::Write as _, path::PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{
    Destination,
    json::{Collector, ScenarioDoc},
    millis,
};
use crate::run::events::{Event, FailedStep, Reporter, Status};

/// The name of the report and of its test suite.
pub const SUITE: &str = "harness";

/// Collects scenario results and writes JUnit XML on [`Reporter::finish`].
pub struct JunitReport {
    destination: Destination,
    collector: Collector,
}

impl JunitReport {
    /// Writes the XML to `path` (parent directories are created).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_destination(Destination::Path(path.into()))
    }

    /// Writes the XML to `writer`.
    pub fn to_writer(writer: Box<dyn std::io::Write + Send>) -> Self {
        Self::with_destination(Destination::Writer(writer))
    }

    fn with_destination(destination: Destination) -> Self {
        Self {
            destination,
            collector: Collector::default(),
        }
    }

    /// The report as it stands.
    pub fn report(&self) -> Report {
        let run = self.collector.document();
        let mut suite = TestSuite::new(SUITE);
        if !run.run_id.is_empty() {
            suite.add_property(("run_id", run.run_id.as_str()));
        }
        suite.set_time(millis(run.duration_ms));
        suite.add_test_cases(run.scenarios.iter().map(test_case));
        let mut report = Report::new(SUITE);
        report.set_time(millis(run.duration_ms));
        report.add_test_suite(suite);
        report
    }

    /// The report as XML text.
    pub fn to_xml(&self) -> std::io::Result<String> {
        self.report().to_string().map_err(std::io::Error::other)
    }
}

impl Reporter for JunitReport {
    fn event(&mut self, event: &Event) {
        self.collector.event(event);
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let xml = self.to_xml()?;
        self.destination.write_all(xml.as_bytes())
    }
}

fn test_case(s: &ScenarioDoc) -> TestCase {
    let status = match (s.status, s.finished) {
        (Status::Passed, _) if s.rollback_failures.is_empty() => TestCaseStatus::success(),
        (Status::Skipped, _) => TestCaseStatus::skipped(),
        (Status::Error, _) | (_, false) => non_success(NonSuccessKind::Error, s),
        _ => non_success(NonSuccessKind::Failure, s),
    };
    let mut case = TestCase::new(s.name.as_str(), status);
    case.set_classname(s.file.as_str());
    case.set_time(millis(s.duration_ms));
    if !s.rollback_failures.is_empty() {
        case.set_system_err(rollback_text(&s.rollback_failures));
    }
    if let Some(d) = &s.drill {
        case.set_system_out(d.line());
    }
    case
}

fn non_success(kind: NonSuccessKind, s: &ScenarioDoc) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    let (message, kind_name) = match (&s.failed_step, s.finished) {
        (_, false) => (
            "the run ended before the scenario finished".to_owned(),
            "unfinished",
        ),
        (Some(step), _) => (step_message(step), step.kind.as_str()),
        (None, _) if !s.rollback_failures.is_empty() => (
            format!("{} rollback(s) failed", s.rollback_failures.len()),
            "rollback",
        ),
        (None, _) => ("scenario did not pass".to_owned(), "scenario"),
    };
    status.set_message(message);
    status.set_type(kind_name);
    let mut description = s.failed_step.as_ref().map(step_detail).unwrap_or_default();
    if !s.rollback_failures.is_empty() {
        description.push_str(&rollback_text(&s.rollback_failures));
    }
    if !description.is_empty() {
        status.set_description(description);
    }
    status
}

/// `steps › count orders (sql) failed at orders.yaml:12:7: expected 1 row, got 2`
fn step_message(step: &FailedStep) -> String {
    format!(
        "{} › {} ({}) failed at {}: {}",
        step.phase.label(),
        step.step,
        step.kind,
        step.failure.location,
        step.failure.message
    )
}

fn step_detail(step: &FailedStep) -> String {
    let mut text = step_message(step);
    text.push('\n');
    if let Some(expected) = &step.failure.expected {
        let _ = writeln!(text, "expected: {expected}");
    }
    if let Some(actual) = &step.failure.actual {
        let _ = writeln!(text, "actual: {actual}");
    }
    text
}

fn rollback_text(failures: &[FailedStep]) -> String {
    let mut text = String::new();
    for step in failures {
        let _ = writeln!(text, "rollback failed: {}", step_message(step));
    }
    text
}
