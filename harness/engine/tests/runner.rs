//! Runner guarantees: parallel scenarios are isolated, rollbacks run after a failure and
//! the steady state is re-checked, and no generated secret reaches any output.

mod support;

use std::path::PathBuf;

use std::sync::Arc;

use harness_engine::run::{
    RunOptions,
    context::Ctx,
    events::{Event, Phase, Status},
    steps::{StepError, StepHandler},
};
use serde_json::Value;

#[test]
fn parallel_scenarios_writing_the_same_table_and_key_do_not_see_each_other() {
    let out = support::run_files(&[support::corpus("isolation")], 2).expect("run");
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
    let out = support::run_files(&[support::corpus("fail/sql_rows_differ.yaml")], 1).expect("run");
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
    let out = support::run_files(&[support::corpus("fail/step_timeout.yaml")], 1).expect("run");
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
        support::corpus("fail/secret_leak.yaml"),
        support::corpus("fail/secret_snapshot.yaml"),
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

/// A capability whose step panics: a bug in harness, as far as the runner knows.
struct Panics;

impl StepHandler for Panics {
    fn validate(&self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn run<'a>(
        &'a self,
        _: &'a mut Ctx,
        _: &'a Value,
    ) -> futures::future::BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async { panic!("the step blew up") })
    }
}

#[test]
fn a_panicking_scenario_fails_alone_and_the_run_goes_on() {
    let dir = support::scenarios(&[
        (
            "a_panics.yaml",
            "name: panics\nsteps:\n  - x-panics: { anything: 1 }\n",
        ),
        (
            "b_passes.yaml",
            "name: passes\nsteps:\n  - exec: { command: \"true\" }\n",
        ),
    ]);
    let mut options = RunOptions::default();
    options.extensions.register("x-panics", Arc::new(Panics));
    let out = support::run_files_with(&[dir.path().to_path_buf()], 2, options).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    assert_eq!(out.summary.errored, 1, "{}", out.console);
    let crashed = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                name,
                status: Status::Error,
                failed_step: Some(f),
                ..
            } if name == "panics" => Some(f.failure.message.clone()),
            _ => None,
        })
        .expect("the panicking scenario is reported");
    assert!(crashed.contains("the step blew up"), "{crashed}");
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::RunFinished { .. })),
        "the run finished"
    );
}

fn process_gone(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // A zombie waiting for its new parent to reap it is dead too.
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    false
}

#[test]
fn an_exec_timeout_kills_everything_the_command_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("child.pid");
    let text = format!(
        "name: exec timeout\nsteps:\n  - exec:\n      command: \"sleep 300 & echo $! > {}; wait\"\n    timeout: 1s\n",
        pidfile.display()
    );
    let file = dir.path().join("timeout.yaml");
    std::fs::write(&file, text).expect("write");
    let out = support::run_files(&[file], 1).expect("run");
    assert_eq!(out.summary.failed, 1, "{}", out.console);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("the command wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        process_gone(pid),
        "the command's background child {pid} outlived the step's timeout"
    );
}

#[test]
fn exec_feeds_stdin_while_reading_output_so_large_streams_do_not_block() {
    // 150 kB in, 300 kB out before the command reads any input: both pipes fill up, so
    // writing all of stdin before reading would wait forever.
    let chunk = "x".repeat(50_000);
    let text = format!(
        "name: large streams\nvars:\n  chunk: {chunk}\nsteps:\n  - exec:\n      command: \"head -c 300000 /dev/zero | tr '\\\\0' y; wc -c\"\n      stdin: \"${{vars.chunk}}${{vars.chunk}}${{vars.chunk}}\"\n      expect:\n        stdout: {{ contains: \"150000\" }}\n    timeout: 20s\n"
    );
    let dir = support::scenarios(&[("streams.yaml", &text)]);
    let out = support::run_files(&[dir.path().join("streams.yaml")], 1).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
}

/// `tok` followed by the numbers 10 to 40: made by the command, so it never appears in the
/// scenario's source (which a failure excerpt may show).
fn generated_token() -> String {
    let digits: String = (10..=40).map(|n| n.to_string()).collect();
    format!("tok{digits}")
}

#[test]
fn a_failing_step_never_shows_its_secret_capture_nor_a_piece_of_it() {
    let command = r#"printf '{"pad":"%0443d","token":"tok%s"}' 0 "$(seq -s '' 10 40)""#;
    let step = |expect: &str| {
        format!(
            "steps:\n  - exec:\n      command: '{}'\n      capture:\n        token: {{ path: \"$.json.token\", secret: true }}\n      expect:\n        json:\n          {expect}\n",
            command.replace('\'', "''")
        )
    };
    let dir = support::scenarios(&[
        (
            "a_field.yaml",
            &format!(
                "name: the secret field itself\n{}",
                step("\"$.json.token\": nope")
            ),
        ),
        (
            "b_cut.yaml",
            // The whole document is shown cut to 500 characters, in the middle of the token.
            &format!(
                "name: the document around it\n{}",
                step("\"$.stdout\": nope")
            ),
        ),
    ]);
    let json = dir.path().join("report.json");
    let junit = dir.path().join("junit.xml");
    let out =
        support::run_files_with_reports(&[dir.path().to_path_buf()], &json, &junit).expect("run");
    assert_eq!(out.summary.failed, 2, "{}", out.console);
    let token = generated_token();
    let outputs = [
        ("console", out.console.clone()),
        (
            "events",
            serde_json::to_string(&out.events).expect("events"),
        ),
        ("json", std::fs::read_to_string(&json).expect("json report")),
        (
            "junit",
            std::fs::read_to_string(&junit).expect("junit report"),
        ),
    ];
    assert!(outputs[1].1.contains("[redacted]"), "{}", outputs[1].1);
    for (name, text) in &outputs {
        for window in token.as_bytes().windows(8) {
            let piece = std::str::from_utf8(window).expect("ascii");
            assert!(
                !text.contains(piece),
                "`{piece}` of the secret capture leaked into the {name} output"
            );
        }
    }
}

/// An `x-` kind whose document is a revision, as a `deploy` will return one.
struct Deploys;

impl StepHandler for Deploys {
    fn validate(&self, args: &Value) -> Result<(), String> {
        match args.get("image") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("`x-deploy` needs an `image`".into()),
        }
    }
    fn run<'a>(
        &'a self,
        _: &'a mut Ctx,
        args: &'a Value,
    ) -> futures::future::BoxFuture<'a, Result<Value, StepError>> {
        let image = args["image"].as_str().unwrap_or_default().to_owned();
        Box::pin(async move { Ok(serde_json::json!({ "revision": format!("{image}-00001") })) })
    }
}

#[test]
fn a_handlers_document_gets_the_same_expect_and_capture_as_every_kind() {
    let dir = support::scenarios(&[(
        "deploys.yaml",
        "name: deploys\nvars: { tag: v2 }\nsteps:\n  - x-deploy:\n      image: \"api-${vars.tag}\"\n      expect: { json: { $.revision: { matches: \"^api-v2-\" } } }\n      capture: { revision: $.revision }\n  - exec:\n      command: [sh, -c, 'test \"$1\" = api-v2-00001', sh, \"${captures.revision}\"]\n",
    )]);
    let mut options = RunOptions::default();
    options.extensions.register("x-deploy", Arc::new(Deploys));
    let out = support::run_files_with(&[dir.path().to_path_buf()], 1, options).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);

    // The same document fails an `expect.json` that does not hold.
    let dir = support::scenarios(&[(
        "wrong.yaml",
        "name: wrong\nsteps:\n  - x-deploy:\n      image: api\n      expect: { json: { $.revision: api-v9 } }\n",
    )]);
    let mut options = RunOptions::default();
    options.extensions.register("x-deploy", Arc::new(Deploys));
    let out = support::run_files_with(&[dir.path().to_path_buf()], 1, options).expect("run");
    assert_eq!(out.summary.failed, 1, "{}", out.console);
    assert!(out.console.contains("api-00001"), "{}", out.console);
}

#[test]
fn an_unregistered_experimental_kind_is_refused_at_plan_time() {
    let dir = support::scenarios(&[("x.yaml", "name: x\nsteps:\n  - x-unknown: { a: 1 }\n")]);
    let err = refused(dir.path());
    assert!(
        err.contains("no handler provides the experimental step kind `x-unknown`"),
        "{err}"
    );
}

/// The plan's refusal of the scenarios in `dir`.
fn refused(dir: &std::path::Path) -> String {
    match support::run_files(&[dir.to_path_buf()], 1) {
        Ok(out) => panic!("the run was not refused:\n{}", out.console),
        Err(e) => e,
    }
}

#[test]
fn a_template_field_that_fails_once_filled_in_points_at_the_field() {
    let dir = support::scenarios(&[(
        "fields.yaml",
        "name: fields\nvars: { base: not-a-url }\nsteps:\n  - http:\n      url: \"${vars.base}/healthz\"\n",
    )]);
    let out = support::run_files(&[dir.path().to_path_buf()], 1).expect("run");
    assert_eq!(
        out.summary.errored + out.summary.failed,
        1,
        "{}",
        out.console
    );
    assert!(
        out.console
            .contains("`url` is not a URL once its references are filled in"),
        "{}",
        out.console
    );
    // Line 5, column 12: the url's value, not the step at line 4.
    assert!(out.console.contains("fields.yaml:5:12"), "{}", out.console);

    // A capture that does not exist, in a header: the header's value.
    let dir = support::scenarios(&[(
        "header.yaml",
        "name: header\nsteps:\n  - exec: { command: \"true\" }\n  - http:\n      url: http://127.0.0.1:9/\n      headers: { x-id: \"${captures.nope}\" }\n",
    )]);
    let out = support::run_files(&[dir.path().to_path_buf()], 1);
    // Validation refuses an unknown capture before the run; if it ever lets one through,
    // the runtime error must still point at the header.
    match out {
        Err(e) => assert!(e.contains("header.yaml:6:"), "{e}"),
        Ok(out) => assert!(out.console.contains("header.yaml:6:"), "{}", out.console),
    }
}

#[test]
fn an_x_kinds_arguments_are_validated_again_once_filled_in() {
    let dir = support::scenarios(&[(
        "late.yaml",
        "name: late\nvars: { image: 7 }\nsteps:\n  - x-deploy: { image: \"${vars.image}\" }\n",
    )]);
    let mut options = RunOptions::default();
    options.extensions.register("x-deploy", Arc::new(Deploys));
    let out = support::run_files_with(&[dir.path().to_path_buf()], 1, options).expect("run");
    assert_eq!(out.summary.passed, 0, "{}", out.console);
    assert!(
        out.console.contains("`x-deploy` needs an `image`"),
        "{}",
        out.console
    );
}

#[test]
fn a_rollback_whose_capture_was_never_taken_is_skipped_with_a_note() {
    let out = support::run_files(&[support::corpus("fail/rollback_without_capture.yaml")], 1)
        .expect("run");
    assert_eq!(out.summary.failed, 1, "{}", out.console);
    let note = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::StepFinished {
                phase: Phase::Rollbacks,
                status: Status::Skipped,
                failure: Some(f),
                ..
            } => Some(f.message.clone()),
            _ => None,
        })
        .expect("the rollback is skipped with a note");
    assert!(
        note.contains("`${captures.order_id}`, which no step captured"),
        "{note}"
    );
    assert!(out.console.contains("no step captured"), "{}", out.console);
    // Only the step's own failure is reported: no second, misleading one.
    let rollback_failures = out.events.iter().find_map(|e| match e {
        Event::ScenarioFinished {
            rollback_failures, ..
        } => Some(rollback_failures.len()),
        _ => None,
    });
    assert_eq!(rollback_failures, Some(0), "{}", out.console);
}
