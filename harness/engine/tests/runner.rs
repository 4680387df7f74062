//! Runner guarantees: parallel scenarios are isolated, rollbacks run after a failure and
//! the steady state is re-checked, and no generated secret reaches any output.

mod support;

use std::path::PathBuf;

use harness_engine::run::events::{Event, Phase, Status};

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from("tests/corpus").join(rel)
}

#[test]
fn parallel_scenarios_writing_the_same_table_and_key_do_not_see_each_other() {
    let out = support::run_files(&[corpus("isolation")], 2).expect("run");
    assert_eq!(out.summary.passed, 2, "{}", out.console);
    // Both really ran at the same time: the second started before the first finished.
    let starts: Vec<usize> = out
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::ScenarioStarted { .. }))
        .map(|(i, _)| i)
        .collect();
    let first_end = out
        .events
        .iter()
        .position(|e| matches!(e, Event::ScenarioFinished { .. }))
        .expect("a scenario finished");
    assert_eq!(starts.len(), 2);
    assert!(starts[1] < first_end, "scenarios did not overlap");
}

#[test]
fn rollbacks_run_after_a_failing_step_and_the_steady_state_is_rechecked() {
    let out = support::run_files(&[corpus("fail/sql_rows_differ.yaml")], 1).expect("run");
    assert_eq!(out.summary.failed, 1);
    let steps: Vec<(Phase, Status)> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished { phase, status, .. } => Some((*phase, *status)),
            _ => None,
        })
        .collect();
    let failed_at = steps
        .iter()
        .position(|s| *s == (Phase::Steps, Status::Failed))
        .expect("a step failed");
    let rollbacks: Vec<_> = steps[failed_at..]
        .iter()
        .filter(|(p, _)| *p == Phase::Rollbacks)
        .collect();
    assert_eq!(rollbacks.len(), 2, "both rollbacks ran: {steps:?}");
    assert!(rollbacks.iter().all(|(_, s)| *s == Status::Passed));
    assert_eq!(
        steps.last(),
        Some(&(Phase::SteadyStateAfter, Status::Passed))
    );
}

#[test]
fn a_step_timeout_fails_the_step_and_rollbacks_still_run() {
    let out = support::run_files(&[corpus("fail/step_timeout.yaml")], 1).expect("run");
    assert_eq!(out.summary.failed, 1);
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::StepFinished {
            phase: Phase::Rollbacks,
            status: Status::Passed,
            ..
        }
    )));
}

#[test]
fn no_generated_secret_reaches_any_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let files = [
        corpus("fail/secret_leak.yaml"),
        corpus("fail/secret_snapshot.yaml"),
        PathBuf::from("../../scenarios/postgres_orders.yaml"),
    ];
    let pending = PathBuf::from("tests/corpus/fail/snapshots/secret_snapshot__connection.snap.new");
    let _ = std::fs::remove_file(&pending);
    let out = support::run_files_with_reports(&files, &json, &junit).expect("run");
    assert_eq!(out.summary.failed, 2);
    assert!(!out.secrets.is_empty());
    let snapshot =
        std::fs::read_to_string(&pending).expect("the snapshot step wrote its pending file");
    assert!(
        snapshot.contains("\"password\": \"[redacted]\""),
        "{snapshot}"
    );
    let json_text = std::fs::read_to_string(&json).expect("json report");
    let junit_text = std::fs::read_to_string(&junit).expect("junit report");
    let events = serde_json::to_string(&out.events).expect("events");
    // The secret var's value is generated per run; find it through the redaction marker
    // and check the stack credentials directly.
    assert!(
        json_text.contains("[redacted]"),
        "the failure names the redacted values"
    );
    for secret in &out.secrets {
        for (name, text) in [
            ("json", &json_text),
            ("junit", &junit_text),
            ("console", &out.console),
            ("events", &events),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "a generated credential leaked into the {name} output"
            );
        }
    }
    assert!(
        !json_text.contains("sk-live-"),
        "the secret var leaked into the JSON report"
    );
    assert!(
        !out.console.contains("sk-live-"),
        "the secret var leaked into the console"
    );
}
