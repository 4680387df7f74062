//! Reporters fed a scripted run: no services, no runner. Three scenarios run: `orders`
//! passes, `broken` fails at a step with expected/actual and a failing rollback, and
//! `unreachable` cannot reach its database.

use std::{
    io::Write,
    path::Path,
    sync::{Arc, Mutex},
};

use harness_engine::{
    report::{Console, Fanout, JsonReport, JunitReport, TraceReport},
    run::events::{Event, FailedStep, Failure, Location, Phase, Reporter, Status},
};
use opentelemetry::trace::{SpanId, Status as SpanStatus};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

const BROKEN_YAML: &str = "\
name: broken
stack: [postgres]
steps:
  - name: insert order
    sql:
      execute: insert into orders values (1)
      expect: { affected: 1 }
  - name: count orders
    sql:
      query: select count(*) as n from orders
      expect: { rows: [{ n: 1 }] }
rollbacks:
  - name: drop orders
    sql: { execute: drop table orders }
";

/// A scenario file on disk, so the console can show an excerpt.
struct Files {
    dir: tempfile::TempDir,
    broken: String,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("broken.yaml");
        std::fs::write(&path, BROKEN_YAML).expect("write the scenario file");
        let broken = path.to_str().expect("utf-8 temp path").to_owned();
        Self { dir, broken }
    }

    /// Replaces the temp dir in `text` so snapshots are stable.
    fn redact(&self, text: &str) -> String {
        let dir = self.dir.path().to_str().expect("utf-8 temp path");
        text.replace(dir, "[TMP]")
    }
}

/// The location of the first occurrence of `needle` in the broken scenario.
fn locate(file: &str, needle: &str) -> Location {
    let offset = BROKEN_YAML.find(needle).expect("needle is in the scenario");
    let before = &BROKEN_YAML[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Location {
        file: file.to_owned(),
        line,
        column,
        offset,
        len: needle.len(),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a step event has this many fields"
)]
fn step(
    scenario: usize,
    phase: Phase,
    index: usize,
    name: &str,
    kind: &str,
    location: Location,
    duration_ms: f64,
    failure: Option<(Status, Failure)>,
) -> Event {
    let (status, failure) = match failure {
        Some((status, failure)) => (status, Some(failure)),
        None => (Status::Passed, None),
    };
    Event::StepFinished {
        scenario,
        phase,
        index,
        name: name.to_owned(),
        kind: kind.to_owned(),
        location,
        duration_ms,
        status,
        attempts: 1,
        failure,
    }
}

fn orders_location(line: usize) -> Location {
    Location {
        file: "scenarios/orders.yaml".to_owned(),
        line,
        column: 5,
        offset: 0,
        len: 0,
    }
}

fn count_failure(file: &str) -> Failure {
    Failure {
        message: "rows did not match".to_owned(),
        expected: Some("[{\"n\":1}]".to_owned()),
        actual: Some("[{\"n\":2}]".to_owned()),
        location: locate(file, "expect: { rows: [{ n: 1 }] }"),
    }
}

fn rollback_failure(file: &str) -> FailedStep {
    FailedStep {
        phase: Phase::Rollbacks,
        index: 0,
        step: "drop orders".to_owned(),
        kind: "sql".to_owned(),
        failure: Failure {
            message: "table \"orders\" does not exist".to_owned(),
            expected: None,
            actual: None,
            location: locate(file, "sql: { execute: drop table orders }"),
        },
    }
}

fn unreachable_failure() -> Failure {
    Failure {
        message: "connect to postgres at 127.0.0.1:5432: connection refused".to_owned(),
        expected: None,
        actual: None,
        location: Location {
            file: "scenarios/missing/unreachable.yaml".to_owned(),
            line: 3,
            column: 1,
            offset: 20,
            len: 5,
        },
    }
}

/// The whole scripted run; `jobs` only changes what `RunStarted` says.
fn script(broken: &str, jobs: usize) -> Vec<Event> {
    let count = count_failure(broken);
    let rollback = rollback_failure(broken);
    let unreachable = unreachable_failure();
    vec![
        Event::RunStarted {
            run_id: "run-1".to_owned(),
            scenarios: 3,
            jobs,
            seed: 42,
        },
        Event::ScenarioStarted {
            scenario: 0,
            name: "orders".to_owned(),
            file: "scenarios/orders.yaml".to_owned(),
        },
        Event::ScenarioStarted {
            scenario: 1,
            name: "broken".to_owned(),
            file: broken.to_owned(),
        },
        step(
            0,
            Phase::Setup,
            0,
            "database",
            "setup",
            orders_location(1),
            0.8,
            None,
        ),
        step(
            0,
            Phase::Steps,
            0,
            "insert order",
            "sql",
            orders_location(4),
            12.3,
            None,
        ),
        step(
            1,
            Phase::Steps,
            0,
            "insert order",
            "sql",
            locate(broken, "- name: insert order"),
            4.5,
            None,
        ),
        step(
            1,
            Phase::Steps,
            1,
            "count orders",
            "sql",
            locate(broken, "- name: count orders"),
            3.1,
            Some((Status::Failed, count.clone())),
        ),
        step(
            0,
            Phase::Steps,
            1,
            "check totals",
            "sql",
            orders_location(9),
            1530.0,
            None,
        ),
        step(
            1,
            Phase::Rollbacks,
            0,
            "drop orders",
            "sql",
            rollback.failure.location.clone(),
            2.0,
            Some((Status::Failed, rollback.failure.clone())),
        ),
        Event::ScenarioFinished {
            scenario: 1,
            name: "broken".to_owned(),
            file: broken.to_owned(),
            status: Status::Failed,
            duration_ms: 500.0,
            setup_ms: 40.0,
            failed_step: Some(FailedStep {
                phase: Phase::Steps,
                index: 1,
                step: "count orders".to_owned(),
                kind: "sql".to_owned(),
                failure: count,
            }),
            rollback_failures: vec![rollback],
            kept: None,
            fault_decisions: Vec::new(),
            drill: None,
        },
        Event::ScenarioFinished {
            scenario: 0,
            name: "orders".to_owned(),
            file: "scenarios/orders.yaml".to_owned(),
            status: Status::Passed,
            duration_ms: 1234.0,
            setup_ms: 35.5,
            failed_step: None,
            rollback_failures: Vec::new(),
            kept: Some("postgres database h_orders_1".to_owned()),
            fault_decisions: Vec::new(),
            drill: None,
        },
        Event::ScenarioStarted {
            scenario: 2,
            name: "unreachable".to_owned(),
            file: unreachable.location.file.clone(),
        },
        step(
            2,
            Phase::Setup,
            0,
            "database",
            "setup",
            unreachable.location.clone(),
            100.0,
            Some((Status::Error, unreachable.clone())),
        ),
        Event::ScenarioFinished {
            scenario: 2,
            name: "unreachable".to_owned(),
            file: unreachable.location.file.clone(),
            status: Status::Error,
            duration_ms: 100.0,
            setup_ms: 100.0,
            failed_step: Some(FailedStep {
                phase: Phase::Setup,
                index: 0,
                step: "database".to_owned(),
                kind: "setup".to_owned(),
                failure: unreachable,
            }),
            rollback_failures: Vec::new(),
            kept: None,
            fault_decisions: Vec::new(),
            drill: None,
        },
        Event::RunFinished {
            passed: 1,
            failed: 1,
            errored: 1,
            duration_ms: 3200.0,
        },
    ]
}

fn feed(reporter: &mut dyn Reporter, events: &[Event]) {
    for event in events {
        reporter.event(event);
    }
    reporter.finish().expect("reporter finishes");
}

/// A `Write` the test can read back after the console is done with it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer lock").clone()).expect("utf-8 output")
    }
}

fn console_output(files: &Files, jobs: usize) -> String {
    let buffer = Shared::default();
    let mut console = Console::new(Box::new(buffer.clone()), false);
    feed(&mut console, &script(&files.broken, jobs));
    files.redact(&buffer.text())
}

/// Durations vary between runs of a real harness; the snapshot should not.
fn redact_durations(text: &str) -> String {
    let re = regex::Regex::new(r"\[ *[0-9]+\.[0-9]+(ms|s)\]").expect("valid regex");
    re.replace_all(text, "[DURATION]").into_owned()
}

#[test]
fn console_shows_steps_failures_and_summary() {
    let files = Files::new();
    let out = console_output(&files, 1);

    assert!(
        out.contains("START orders (scenarios/orders.yaml)\n"),
        "{out}"
    );
    assert!(
        out.contains("    PASS  [  12.3ms] steps › insert order (sql)\n"),
        "{out}"
    );
    assert!(
        out.contains("    PASS  [  1.530s] steps › check totals (sql)\n"),
        "{out}"
    );
    assert!(out.contains("PASS  [ 1.234s] orders\n"), "{out}");
    assert!(out.contains("FAIL  [ 0.500s] broken\n"), "{out}");
    assert!(
        out.contains("failed at steps › count orders (sql) at [TMP]/broken.yaml:11:7"),
        "{out}"
    );
    assert!(out.contains("expected: [{\"n\":1}]"), "{out}");
    assert!(out.contains("actual: [{\"n\":2}]"), "{out}");
    assert!(
        out.contains("Summary [ 3.200s] 3 scenarios: 1 passed, 1 failed, 1 error\n"),
        "{out}"
    );
    // The excerpt shows the failing line of the file, labelled.
    assert!(
        out.contains("11 │       expect: { rows: [{ n: 1 }] }"),
        "{out}"
    );
    assert!(out.contains("failed here"), "{out}");
    // The unreachable scenario's file does not exist: no excerpt, but the message.
    assert!(out.contains("message: connect to postgres"), "{out}");
    // With one job there is nothing to tell apart, so step lines do not name the scenario.
    assert!(!out.contains("orders: steps"), "{out}");
}

#[test]
fn console_names_the_scenario_on_step_lines_when_scenarios_interleave() {
    let files = Files::new();
    let out = console_output(&files, 2);
    assert!(
        out.contains("    PASS  [  12.3ms] orders: steps › insert order (sql)\n"),
        "{out}"
    );
    assert!(
        out.contains("    FAIL  [   3.1ms] broken: steps › count orders (sql)\n"),
        "{out}"
    );
    insta::assert_snapshot!("console", redact_durations(&out));
}

#[test]
fn json_report_is_one_document_in_scenario_order() {
    let files = Files::new();
    let path = files.dir.path().join("out/report.json");
    let mut report = JsonReport::new(&path);
    feed(&mut report, &script(&files.broken, 1));

    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report written"))
            .expect("report is JSON");
    assert_eq!(written, report.document());

    assert_eq!(written["version"], 1);
    assert_eq!(written["run_id"], "run-1");
    assert_eq!(written["seed"], 42);
    assert_eq!(written["duration_ms"], 3200.0);
    assert_eq!(
        (
            written["passed"].clone(),
            written["failed"].clone(),
            written["errored"].clone()
        ),
        (1.into(), 1.into(), 1.into())
    );

    let scenarios = written["scenarios"].as_array().expect("scenarios array");
    let names: Vec<&str> = scenarios
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["orders", "broken", "unreachable"]);

    let orders = &scenarios[0];
    assert_eq!(orders["status"], "passed");
    assert_eq!(orders["setup_ms"], 35.5);
    assert_eq!(orders["kept"], "postgres database h_orders_1");
    assert!(orders.get("failed_step").is_none());
    assert_eq!(orders["rollback_failures"], serde_json::json!([]));
    assert_eq!(orders["steps"].as_array().map(Vec::len), Some(3));
    assert_eq!(orders["steps"][1]["name"], "insert order");
    assert_eq!(orders["steps"][1]["phase"], "steps");
    assert_eq!(orders["steps"][1]["attempts"], 1);
    assert!(orders["steps"][1].get("failure").is_none());

    let broken = &scenarios[1];
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["file"], files.broken);
    assert_eq!(broken["failed_step"]["step"], "count orders");
    assert_eq!(broken["failed_step"]["failure"]["expected"], "[{\"n\":1}]");
    assert_eq!(broken["failed_step"]["failure"]["actual"], "[{\"n\":2}]");
    assert_eq!(broken["failed_step"]["failure"]["location"]["line"], 11);
    assert_eq!(broken["rollback_failures"][0]["step"], "drop orders");
    assert_eq!(broken["steps"][1]["status"], "failed");
    assert_eq!(
        broken["steps"][1]["failure"]["message"],
        "rows did not match"
    );
    assert!(broken.get("kept").is_none());

    assert_eq!(scenarios[2]["status"], "error");
}

fn junit_xml(files: &Files) -> String {
    let mut report = JunitReport::new(files.dir.path().join("junit.xml"));
    feed(&mut report, &script(&files.broken, 1));
    std::fs::read_to_string(files.dir.path().join("junit.xml")).expect("junit written")
}

#[test]
fn junit_has_one_testcase_per_scenario_and_one_failure() {
    let files = Files::new();
    let xml = junit_xml(&files);

    let report = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit XML");
    assert_eq!(report.test_suites.len(), 1);
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), "harness");
    let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["orders", "broken", "unreachable"]);
    assert_eq!(
        suite.test_cases[1].classname.as_ref().map(|c| c.as_str()),
        Some(files.broken.as_str())
    );

    // The failing scenario is the only <failure>; the unreachable one is an <error>.
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert_eq!(xml.matches("<error").count(), 1, "{xml}");
    assert_eq!(suite.failures, 1);
    assert_eq!(suite.errors, 1);

    let quick_junit::TestCaseStatus::NonSuccess {
        message,
        description,
        ..
    } = &suite.test_cases[1].status
    else {
        panic!("broken should not pass: {xml}");
    };
    let message = message.as_ref().map(|m| m.as_str()).unwrap_or_default();
    let location = format!("{}:11:7", files.broken);
    assert!(message.contains("steps › count orders (sql)"), "{message}");
    assert!(message.contains(&location), "{message}");
    let description = description.as_ref().map(|d| d.as_str()).unwrap_or_default();
    assert!(
        description.contains("expected: [{\"n\":1}]"),
        "{description}"
    );
    assert!(description.contains("actual: [{\"n\":2}]"), "{description}");
    assert!(
        description.contains("rollback failed: rollbacks › drop orders"),
        "{description}"
    );
}

#[test]
fn junit_of_a_passing_run_has_no_failure() {
    let files = Files::new();
    let events: Vec<Event> = script(&files.broken, 1)
        .into_iter()
        .filter(|e| match e {
            Event::ScenarioStarted { scenario, .. }
            | Event::StepFinished { scenario, .. }
            | Event::ScenarioFinished { scenario, .. } => *scenario == 0,
            _ => true,
        })
        .collect();
    let mut report = JunitReport::new(files.dir.path().join("junit.xml"));
    feed(&mut report, &events);
    let xml = report.to_xml().expect("serialise");
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(!xml.contains("<error"), "{xml}");
    assert_eq!(xml.matches("<testcase").count(), 1, "{xml}");
}

/// Keeps exported spans past the provider's shutdown (the SDK's in-memory exporter clears
/// them on shutdown).
#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().expect("span lock").extend(batch);
        Ok(())
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[test]
fn traces_nest_steps_under_scenarios_under_the_run() {
    let files = Files::new();
    let exporter = Collect::default();
    let mut report = TraceReport::with_exporter(exporter.clone());
    feed(&mut report, &script(&files.broken, 1));

    let spans = exporter.0.lock().expect("span lock").clone();
    assert_eq!(spans.len(), 1 + 3 + 7, "{spans:#?}");
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let run = by_name("harness run");
    assert_eq!(run.parent_span_id, SpanId::INVALID);
    assert_eq!(
        run.end_time.duration_since(run.start_time).ok(),
        Some(std::time::Duration::from_millis(3200))
    );

    let broken = by_name("broken");
    assert_eq!(broken.parent_span_id, run.span_context.span_id());
    assert_eq!(broken.span_context.trace_id(), run.span_context.trace_id());
    assert_eq!(
        attribute(broken, "scenario.file").as_deref(),
        Some(files.broken.as_str())
    );
    assert!(matches!(broken.status, SpanStatus::Error { .. }));

    let count = by_name("count orders");
    assert_eq!(count.parent_span_id, broken.span_context.span_id());
    assert_eq!(attribute(count, "step.kind").as_deref(), Some("sql"));
    assert_eq!(attribute(count, "step.phase").as_deref(), Some("steps"));
    assert_eq!(attribute(count, "step.status").as_deref(), Some("failed"));
    assert_eq!(
        attribute(count, "failure.message").as_deref(),
        Some("rows did not match")
    );
    assert_eq!(
        count.end_time.duration_since(count.start_time).ok(),
        Some(std::time::Duration::from_micros(3100))
    );

    let orders = by_name("orders");
    assert_eq!(
        attribute(orders, "scenario.name").as_deref(),
        Some("orders")
    );
    assert_eq!(orders.status, SpanStatus::Ok);
    let steps_of_orders = spans
        .iter()
        .filter(|s| s.parent_span_id == orders.span_context.span_id())
        .count();
    assert_eq!(steps_of_orders, 3);
}

/// Runs in a child process started by `trace_stdout_prints_spans`, whose stdout it owns.
#[test]
fn trace_stdout_child() {
    if std::env::var_os("HARNESS_REPORTS_TRACE_CHILD").is_none() {
        return;
    }
    let files = Files::new();
    let mut report = TraceReport::stdout();
    feed(&mut report, &script(&files.broken, 1));
}

#[test]
fn trace_stdout_prints_spans() {
    let exe = std::env::current_exe().expect("test binary path");
    let output = std::process::Command::new(exe)
        .args([
            "trace_stdout_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HARNESS_REPORTS_TRACE_CHILD", "1")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["harness run", "broken", "count orders", "service.name"] {
        assert!(stdout.contains(name), "no {name} in:\n{stdout}");
    }
}

#[test]
fn fanout_forwards_to_every_reporter() {
    let files = Files::new();
    let buffer = Shared::default();
    let json = files.dir.path().join("fanout.json");
    let junit = files.dir.path().join("fanout.xml");
    let mut fanout = Fanout::new(vec![
        Box::new(Console::new(Box::new(buffer.clone()), false)),
        Box::new(JsonReport::new(&json)),
        Box::new(JunitReport::new(&junit)),
    ]);
    feed(&mut fanout, &script(&files.broken, 1));
    assert!(buffer.text().contains("Summary"));
    assert!(json.exists() && junit.exists());
}

#[test]
fn report_to_an_unwritable_path_is_an_error() {
    let files = Files::new();
    let mut report = JsonReport::new(Path::new(&files.broken).join("not-a-dir/report.json"));
    for event in script(&files.broken, 1) {
        report.event(&event);
    }
    assert!(report.finish().is_err());
}

/// Accepts one HTTP request on 127.0.0.1, answers 200, and hands back the request.
fn one_request_server() -> (String, std::thread::JoinHandle<Vec<u8>>) {
    use std::io::{BufRead, BufReader, Read};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept the exporter");
        let mut reader = BufReader::new(stream);
        let mut request = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a header line");
            request.extend_from_slice(line.as_bytes());
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("numeric content-length");
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("read the body");
        request.extend_from_slice(&body);
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .expect("answer");
        request
    });
    (url, handle)
}

#[test]
fn trace_otlp_posts_protobuf_spans_to_the_collector() {
    let files = Files::new();
    let (url, server) = one_request_server();
    let mut report = TraceReport::otlp(&url).expect("build the OTLP exporter");
    feed(&mut report, &script(&files.broken, 1));

    let request = server.join().expect("server thread");
    let text = String::from_utf8_lossy(&request);
    assert!(text.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{text}"
    );
    // Protobuf keeps strings as they are.
    for needle in [
        "harness run",
        "count orders",
        "service.name",
        "scenario.file",
    ] {
        assert!(text.contains(needle), "no {needle} in the export");
    }
}

#[test]
fn trace_otlp_to_a_closed_port_fails_on_finish() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port();
    let files = Files::new();
    let mut report = TraceReport::otlp(&format!("http://127.0.0.1:{port}")).expect("build");
    for event in script(&files.broken, 1) {
        report.event(&event);
    }
    assert!(report.finish().is_err());
}

/// The runner finishes its reporters inside the tokio runtime; the blocking HTTP client
/// must not mind.
#[tokio::test]
async fn trace_otlp_exports_from_inside_a_runtime() {
    let files = Files::new();
    let (url, server) = one_request_server();
    let mut report = TraceReport::otlp(&url).expect("build the OTLP exporter");
    feed(&mut report, &script(&files.broken, 1));
    drop(report);
    let request = server.join().expect("server thread");
    assert!(String::from_utf8_lossy(&request).contains("harness run"));
}
