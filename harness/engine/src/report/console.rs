//! The console reporter: what a person watching `harness run` sees, on stderr.
//!
//! Modelled on nextest's output:
//!
//! ```text
//! Starting 2 scenarios with 1 job (run 01J…, seed 42)
//! START orders (scenarios/orders.yaml)
//!     PASS  [   0.8ms] setup › database (setup)
//!     PASS  [  12.3ms] steps › insert order (sql)
//! PASS  [ 1.234s] orders
//! ```
//!
//! A scenario that did not pass is followed by its failing step, the step's location
//! (`file:line:col`), the message, expected and actual values, and an excerpt of the
//! scenario file around the location rendered by miette. The run ends with a summary that
//! lists every scenario that did not pass. When scenarios run concurrently (more than one
//! job), each step line names its scenario, so interleaved lines stay readable.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{self, Write},
};

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};

use crate::run::events::{Event, FailedStep, Failure, Location, Reporter, Status};

/// Writes progress lines, failure details and a summary to a stream.
pub struct Console {
    out: Box<dyn Write + Send>,
    color: bool,
    jobs: usize,
    scenarios: Option<usize>,
    names: HashMap<usize, String>,
    not_passed: Vec<Summary>,
    error: Option<io::Error>,
}

/// A scenario that did not pass, remembered for the summary.
struct Summary {
    status: Status,
    duration_ms: f64,
    name: String,
    failed_step: Option<FailedStep>,
    rollback_failures: usize,
}

impl Console {
    /// Writes to `out`; `color` turns on ANSI colours in status words and excerpts.
    pub fn new(out: Box<dyn Write + Send>, color: bool) -> Self {
        Self {
            out,
            color,
            jobs: 1,
            scenarios: None,
            names: HashMap::new(),
            not_passed: Vec::new(),
            error: None,
        }
    }

    /// Writes to stderr.
    pub fn stderr(color: bool) -> Self {
        Self::new(Box::new(io::stderr()), color)
    }

    fn write(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            self.error = Some(e);
        }
    }

    fn status(&self, status: Status) -> String {
        let (word, colour) = match status {
            Status::Passed => ("PASS", "\x1b[32;1m"),
            Status::Failed => ("FAIL", "\x1b[31;1m"),
            Status::Error => ("ERROR", "\x1b[31;1m"),
            Status::Skipped => ("SKIP", "\x1b[33;1m"),
        };
        self.paint(&format!("{word:<5}"), colour)
    }

    fn paint(&self, text: &str, colour: &str) -> String {
        if self.color {
            format!("{colour}{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn run_started(&mut self, run_id: &str, scenarios: usize, jobs: usize, seed: u64) {
        self.jobs = jobs;
        self.scenarios = Some(scenarios);
        let line = format!(
            "{} {} with {} (run {run_id}, seed {seed})\n",
            self.paint("Starting", "\x1b[32;1m"),
            plural(scenarios, "scenario", "scenarios"),
            plural(jobs, "job", "jobs"),
        );
        self.write(&line);
    }

    fn scenario_started(&mut self, scenario: usize, name: &str, file: &str) {
        self.names.insert(scenario, name.to_owned());
        let line = format!("{} {name} ({file})\n", self.paint("START", "\x1b[32;1m"));
        self.write(&line);
    }

    #[expect(clippy::too_many_arguments, reason = "mirrors Event::StepFinished")]
    fn step_finished(
        &mut self,
        scenario: usize,
        phase: &str,
        name: &str,
        kind: &str,
        duration_ms: f64,
        status: Status,
        attempts: u32,
    ) {
        let concurrent = self.jobs > 1 && self.scenarios.is_none_or(|n| n > 1);
        let prefix = match self.names.get(&scenario) {
            Some(scenario) if concurrent => format!("{scenario}: "),
            _ => String::new(),
        };
        let tries = if attempts > 1 {
            format!(" after {attempts} attempts")
        } else {
            String::new()
        };
        let line = format!(
            "    {} [{}] {prefix}{phase} › {name} ({kind}){tries}\n",
            self.status(status),
            step_duration(duration_ms),
        );
        self.write(&line);
    }

    fn scenario_finished(
        &mut self,
        summary: Summary,
        kept: Option<&str>,
        rollbacks: &[FailedStep],
    ) {
        let mut text = format!(
            "{} [{}] {}\n",
            self.status(summary.status),
            seconds(summary.duration_ms),
            summary.name
        );
        if let Some(step) = &summary.failed_step {
            text.push_str(&self.step_detail(summary.status, step));
        }
        for step in rollbacks {
            let _ = writeln!(
                text,
                "    rollback failed: {} at {}: {}",
                step_label(step),
                step.failure.location,
                step.failure.message
            );
        }
        if let Some(kept) = kept {
            let _ = writeln!(text, "    kept: {kept}");
        }
        self.write(&text);
        if summary.status != Status::Passed || summary.rollback_failures > 0 {
            self.not_passed.push(summary);
        }
    }

    fn step_detail(&self, status: Status, step: &FailedStep) -> String {
        let failure = &step.failure;
        let verb = if status == Status::Error {
            "error in"
        } else {
            "failed at"
        };
        let mut text = format!("    {verb} {} at {}\n", step_label(step), failure.location);
        match self.excerpt(failure) {
            Some(excerpt) => text.push_str(&excerpt),
            None => text.push_str(&field("message", &failure.message)),
        }
        if let Some(expected) = &failure.expected {
            text.push_str(&field("expected", expected));
        }
        if let Some(actual) = &failure.actual {
            text.push_str(&field("actual", actual));
        }
        text
    }

    /// The scenario file around the failure, or `None` when the file cannot be read or
    /// the location does not fit in it.
    fn excerpt(&self, failure: &Failure) -> Option<String> {
        let location = &failure.location;
        let source = std::fs::read_to_string(&location.file).ok()?;
        let span = span_in(&source, location)?;
        let diagnostic = Excerpt {
            message: failure.message.clone(),
            code: NamedSource::new(&location.file, source),
            span,
        };
        let theme = if self.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_context_lines(2)
            .with_links(false);
        let mut rendered = String::new();
        handler.render_report(&mut rendered, &diagnostic).ok()?;
        let mut text = String::new();
        for line in rendered.trim_end().lines() {
            let _ = writeln!(text, "    {}", line.trim_end());
        }
        Some(text)
    }

    fn run_finished(&mut self, passed: usize, failed: usize, errored: usize, duration_ms: f64) {
        let total = self.scenarios.unwrap_or(passed + failed + errored);
        let mut text = format!(
            "{}\n{} [{}] {}: {} passed, {} failed, {}\n",
            "─".repeat(12),
            self.paint("Summary", "\x1b[1m"),
            seconds(duration_ms),
            plural(total, "scenario", "scenarios"),
            passed,
            failed,
            plural(errored, "error", "errors"),
        );
        for summary in &self.not_passed {
            let step = summary.failed_step.as_ref().map_or_else(String::new, |s| {
                format!(": {} at {}", step_label(s), s.failure.location)
            });
            let rollbacks = match summary.rollback_failures {
                0 => String::new(),
                n => format!(" ({})", plural(n, "rollback failed", "rollbacks failed")),
            };
            let _ = writeln!(
                text,
                "    {} [{}] {}{step}{rollbacks}",
                self.status(summary.status),
                seconds(summary.duration_ms),
                summary.name,
            );
        }
        self.write(&text);
    }
}

impl Reporter for Console {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                scenarios,
                jobs,
                seed,
            } => self.run_started(run_id, *scenarios, *jobs, *seed),
            Event::ScenarioStarted {
                scenario,
                name,
                file,
            } => self.scenario_started(*scenario, name, file),
            Event::StepFinished {
                scenario,
                phase,
                name,
                kind,
                duration_ms,
                status,
                attempts,
                failure,
                ..
            } => {
                self.step_finished(
                    *scenario,
                    phase.label(),
                    name,
                    kind,
                    *duration_ms,
                    *status,
                    *attempts,
                );
                // A skipped step says why, when there is a reason beyond "an earlier one
                // failed".
                if let (Status::Skipped, Some(f)) = (status, failure) {
                    let line = format!("          {}\n", f.message);
                    self.write(&line);
                }
            }
            Event::ScenarioFinished {
                name,
                status,
                duration_ms,
                failed_step,
                rollback_failures,
                kept,
                drill,
                ..
            } => {
                if let Some(d) = drill {
                    self.write(&format!("    {}\n", d.line()));
                }
                let summary = Summary {
                    status: *status,
                    duration_ms: *duration_ms,
                    name: name.clone(),
                    failed_step: failed_step.clone(),
                    rollback_failures: rollback_failures.len(),
                };
                self.scenario_finished(summary, kept.as_deref(), rollback_failures);
            }
            Event::RunFinished {
                passed,
                failed,
                errored,
                duration_ms,
            } => self.run_finished(*passed, *failed, *errored, *duration_ms),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

/// The failure as miette sees it: a message and one labelled span in the scenario file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct Excerpt {
    message: String,
    #[source_code]
    code: NamedSource<String>,
    #[label("failed here")]
    span: SourceSpan,
}

/// The location's byte span, clamped to the text; `None` when it does not fit.
fn span_in(text: &str, location: &Location) -> Option<SourceSpan> {
    let start = location.offset;
    if start > text.len() || !text.is_char_boundary(start) {
        return None;
    }
    let mut end = start.saturating_add(location.len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(SourceSpan::new(start.into(), end - start))
}

/// `steps › insert order (sql)`
fn step_label(step: &FailedStep) -> String {
    format!("{} › {} ({})", step.phase.label(), step.step, step.kind)
}

/// `    expected: 1`, with later lines of a multi-line value indented under the first.
fn field(label: &str, value: &str) -> String {
    let head = format!("    {label}: ");
    let pad = " ".repeat(head.chars().count());
    let mut text = String::new();
    for (i, line) in value.lines().enumerate() {
        let lead = if i == 0 { head.as_str() } else { pad.as_str() };
        let _ = writeln!(text, "{lead}{line}");
    }
    if text.is_empty() {
        let _ = writeln!(text, "{}", head.trim_end());
    }
    text
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A step's duration, 8 characters wide: `  12.3ms` or ` 12.345s`.
fn step_duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:>6.1}ms")
    } else {
        format!("{:>7.3}s", ms / 1000.0)
    }
}

/// A scenario's or run's duration: ` 1.234s`.
fn seconds(ms: f64) -> String {
    format!("{:>6.3}s", ms / 1000.0)
}
