//! The harness's own traces: the run as OpenTelemetry spans.
//!
//! One root span per run (`harness run`), a child span per scenario and a grandchild span
//! per step, with the scenario, step and failure as attributes. Events arrive after the
//! fact, so every span gets explicit timestamps: it ends when its event was received and
//! starts `duration_ms` earlier. The spans are built and exported in
//! [`Reporter::finish`], which flushes and shuts the tracer provider down.
//!
//! Two exporters: [`TraceReport::stdout`] prints the spans, and [`TraceReport::otlp`]
//! sends them to a collector over OTLP/HTTP (protobuf, plain HTTP; the collector runs on
//! 127.0.0.1).

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Context, InstrumentationScope, KeyValue,
    trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanExporter},
};

use super::millis;
use crate::run::events::{Event, Failure, Location, Phase, Reporter, Status};

/// The name of the root span.
pub const RUN_SPAN: &str = "harness run";

/// Room for every span of a large run: the batch processor drops spans beyond its queue.
const QUEUE: usize = 1 << 16;

/// The trace exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("set up the OTLP trace exporter for {endpoint}: {message}")]
pub struct TraceSetupError {
    pub endpoint: String,
    pub message: String,
}

/// Turns a run's events into spans and exports them on [`Reporter::finish`].
pub struct TraceReport {
    provider: SdkTracerProvider,
    run: RunRecord,
    scenarios: BTreeMap<usize, ScenarioRecord>,
    exported: bool,
}

#[derive(Default)]
struct RunRecord {
    run_id: String,
    seed: u64,
    jobs: usize,
    /// When `RunFinished` arrived, with its totals.
    finished: Option<(SystemTime, f64, [usize; 3])>,
}

#[derive(Default)]
struct ScenarioRecord {
    name: String,
    file: String,
    started: Option<SystemTime>,
    finished: Option<ScenarioEnd>,
    steps: Vec<StepRecord>,
}

struct ScenarioEnd {
    at: SystemTime,
    status: Status,
    duration_ms: f64,
    setup_ms: f64,
    failure: Option<Failure>,
    rollback_failures: usize,
}

struct StepRecord {
    at: SystemTime,
    phase: Phase,
    index: usize,
    name: String,
    kind: String,
    location: Location,
    duration_ms: f64,
    status: Status,
    attempts: u32,
    failure: Option<Failure>,
}

impl TraceReport {
    /// Prints the spans to stdout when the run finishes.
    pub fn stdout() -> Self {
        Self::with_exporter(opentelemetry_stdout::SpanExporter::default())
    }

    /// Sends the spans over OTLP/HTTP (protobuf) to a collector at `endpoint_http`, for
    /// example `http://127.0.0.1:4318`. `/v1/traces` is appended unless the endpoint
    /// already has a path.
    pub fn otlp(endpoint_http: &str) -> Result<Self, TraceSetupError> {
        let endpoint = traces_url(endpoint_http);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TraceSetupError {
                endpoint,
                message: e.to_string(),
            })?;
        Ok(Self::with_exporter(exporter))
    }

    /// Exports through any span exporter (tests use the SDK's in-memory one).
    pub fn with_exporter<E: SpanExporter + 'static>(exporter: E) -> Self {
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource())
            .build();
        Self {
            provider,
            run: RunRecord::default(),
            scenarios: BTreeMap::new(),
            exported: false,
        }
    }

    fn scenario(&mut self, index: usize) -> &mut ScenarioRecord {
        self.scenarios.entry(index).or_default()
    }

    /// Builds every span of the run, parents before children, each with its own times.
    fn emit(&self) {
        let scope = InstrumentationScope::builder("harness")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = self.provider.tracer_with_scope(scope);
        let (run_end, run_ms) = match self.run.finished {
            Some((at, ms, _)) => (at, ms),
            None => (SystemTime::now(), 0.0),
        };
        let run_start = self
            .earliest_start()
            .filter(|_| self.run.finished.is_none())
            .unwrap_or_else(|| before(run_end, run_ms));
        let root = tracer.build_with_context(
            tracer
                .span_builder(RUN_SPAN)
                .with_kind(SpanKind::Internal)
                .with_start_time(run_start)
                .with_attributes(self.run_attributes()),
            &Context::new(),
        );
        let run_cx = Context::new().with_span(root);
        for scenario in self.scenarios.values() {
            emit_scenario(&tracer, &run_cx, scenario, run_end);
        }
        run_cx.span().end_with_timestamp(run_end);
    }

    fn earliest_start(&self) -> Option<SystemTime> {
        self.scenarios.values().filter_map(|s| s.started).min()
    }

    fn run_attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("run.id", self.run.run_id.clone()),
            KeyValue::new("run.seed", self.run.seed.to_string()),
            KeyValue::new("run.jobs", count(self.run.jobs)),
        ];
        if let Some((_, _, [passed, failed, errored])) = self.run.finished {
            attributes.extend([
                KeyValue::new("run.passed", count(passed)),
                KeyValue::new("run.failed", count(failed)),
                KeyValue::new("run.errored", count(errored)),
            ]);
        }
        attributes
    }
}

impl Reporter for TraceReport {
    fn event(&mut self, event: &Event) {
        let now = SystemTime::now();
        match event {
            Event::RunStarted {
                run_id, seed, jobs, ..
            } => {
                self.run.run_id.clone_from(run_id);
                self.run.seed = *seed;
                self.run.jobs = *jobs;
            }
            Event::ScenarioStarted {
                scenario,
                name,
                file,
            } => {
                let record = self.scenario(*scenario);
                record.name.clone_from(name);
                record.file.clone_from(file);
                record.started = Some(now);
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
            } => self.scenario(*scenario).steps.push(StepRecord {
                at: now,
                phase: *phase,
                index: *index,
                name: name.clone(),
                kind: kind.clone(),
                location: location.clone(),
                duration_ms: *duration_ms,
                status: *status,
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
                ..
            } => {
                let record = self.scenario(*scenario);
                record.name.clone_from(name);
                record.file.clone_from(file);
                record.finished = Some(ScenarioEnd {
                    at: now,
                    status: *status,
                    duration_ms: *duration_ms,
                    setup_ms: *setup_ms,
                    failure: failed_step.as_ref().map(|s| s.failure.clone()),
                    rollback_failures: rollback_failures.len(),
                });
            }
            Event::RunFinished {
                passed,
                failed,
                errored,
                duration_ms,
            } => self.run.finished = Some((now, *duration_ms, [*passed, *failed, *errored])),
        }
    }

    /// Builds the spans, then flushes and shuts the provider down.
    fn finish(&mut self) -> std::io::Result<()> {
        if self.exported {
            return Ok(());
        }
        self.exported = true;
        self.emit();
        let flushed = self.provider.force_flush();
        let shut = self.provider.shutdown();
        flushed
            .and(shut)
            .map_err(|e| std::io::Error::other(format!("export traces: {e}")))
    }
}

fn emit_scenario(
    tracer: &SdkTracer,
    run_cx: &Context,
    scenario: &ScenarioRecord,
    run_end: SystemTime,
) {
    let (end, start) = match &scenario.finished {
        Some(f) => (f.at, before(f.at, f.duration_ms)),
        None => {
            let end = scenario.steps.iter().map(|s| s.at).max().unwrap_or(run_end);
            (end, scenario.started.unwrap_or(end))
        }
    };
    let mut attributes = vec![
        KeyValue::new("scenario.name", scenario.name.clone()),
        KeyValue::new("scenario.file", scenario.file.clone()),
    ];
    let status = match &scenario.finished {
        Some(f) => {
            attributes.push(KeyValue::new("scenario.status", status_name(f.status)));
            attributes.push(KeyValue::new("scenario.setup_ms", f.setup_ms));
            if f.rollback_failures > 0 {
                attributes.push(KeyValue::new(
                    "scenario.rollback_failures",
                    count(f.rollback_failures),
                ));
            }
            if let Some(failure) = &f.failure {
                attributes.extend(failure_attributes(failure));
            }
            span_status(f.status, f.failure.as_ref(), f.rollback_failures)
        }
        None => opentelemetry::trace::Status::error("the run ended before the scenario finished"),
    };
    let mut span = tracer.build_with_context(
        tracer
            .span_builder(scenario.name.clone())
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes),
        run_cx,
    );
    span.set_status(status);
    let cx = run_cx.with_span(span);
    for step in &scenario.steps {
        emit_step(tracer, &cx, scenario, step);
    }
    cx.span().end_with_timestamp(end);
}

fn emit_step(tracer: &SdkTracer, cx: &Context, scenario: &ScenarioRecord, step: &StepRecord) {
    let mut attributes = vec![
        KeyValue::new("scenario.name", scenario.name.clone()),
        KeyValue::new("scenario.file", scenario.file.clone()),
        KeyValue::new("step.name", step.name.clone()),
        KeyValue::new("step.kind", step.kind.clone()),
        KeyValue::new("step.phase", phase_name(step.phase)),
        KeyValue::new("step.index", count(step.index)),
        KeyValue::new("step.status", status_name(step.status)),
        KeyValue::new("step.attempts", i64::from(step.attempts)),
        KeyValue::new("step.location", step.location.to_string()),
    ];
    if let Some(failure) = &step.failure {
        attributes.extend(failure_attributes(failure));
    }
    let mut span = tracer.build_with_context(
        tracer
            .span_builder(step.name.clone())
            .with_kind(SpanKind::Internal)
            .with_start_time(before(step.at, step.duration_ms))
            .with_attributes(attributes),
        cx,
    );
    span.set_status(span_status(step.status, step.failure.as_ref(), 0));
    span.end_with_timestamp(step.at);
}

fn failure_attributes(failure: &Failure) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("failure.message", failure.message.clone()),
        KeyValue::new("failure.location", failure.location.to_string()),
    ];
    if let Some(expected) = &failure.expected {
        attributes.push(KeyValue::new("failure.expected", expected.clone()));
    }
    if let Some(actual) = &failure.actual {
        attributes.push(KeyValue::new("failure.actual", actual.clone()));
    }
    attributes
}

fn span_status(
    status: Status,
    failure: Option<&Failure>,
    rollback_failures: usize,
) -> opentelemetry::trace::Status {
    match (status, failure) {
        (Status::Failed | Status::Error, Some(failure)) => {
            opentelemetry::trace::Status::error(failure.message.clone())
        }
        (Status::Failed | Status::Error, None) => {
            opentelemetry::trace::Status::error(status_name(status))
        }
        _ if rollback_failures > 0 => opentelemetry::trace::Status::error("rollback failed"),
        (Status::Passed, _) => opentelemetry::trace::Status::Ok,
        (Status::Skipped, _) => opentelemetry::trace::Status::Unset,
    }
}

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("harness")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `http://127.0.0.1:4318` → `http://127.0.0.1:4318/v1/traces`; a URL with a path is kept.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .contains('/');
    if has_path {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

fn before(end: SystemTime, ms: f64) -> SystemTime {
    end.checked_sub(millis(ms)).unwrap_or(end)
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Setup => "setup",
        Phase::SteadyStateBefore => "steady_state_before",
        Phase::Steps => "steps",
        Phase::Rollbacks => "rollbacks",
        Phase::SteadyStateAfter => "steady_state_after",
        Phase::Verify => "verify",
        Phase::Cleanup => "cleanup",
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn otlp_endpoint_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
    }
}
