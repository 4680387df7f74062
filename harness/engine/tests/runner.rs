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

/// Writes scenario files into a fresh folder.
fn scenarios(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write scenario");
    }
    dir
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
    let dir = scenarios(&[
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
    let dir = scenarios(&[("streams.yaml", &text)]);
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
    let dir = scenarios(&[
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
    let dir = scenarios(&[(
        "deploys.yaml",
        "name: deploys\nvars: { tag: v2 }\nsteps:\n  - x-deploy:\n      image: \"api-${vars.tag}\"\n      expect: { json: { $.revision: { matches: \"^api-v2-\" } } }\n      capture: { revision: $.revision }\n  - exec:\n      command: [sh, -c, 'test \"$1\" = api-v2-00001', sh, \"${captures.revision}\"]\n",
    )]);
    let mut options = RunOptions::default();
    options.extensions.register("x-deploy", Arc::new(Deploys));
    let out = support::run_files_with(&[dir.path().to_path_buf()], 1, options).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);

    // The same document fails an `expect.json` that does not hold.
    let dir = scenarios(&[(
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
    let dir = scenarios(&[("x.yaml", "name: x\nsteps:\n  - x-unknown: { a: 1 }\n")]);
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
    let dir = scenarios(&[(
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
    let dir = scenarios(&[(
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
    let dir = scenarios(&[(
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
    let out = support::run_files(&[corpus("fail/rollback_without_capture.yaml")], 1).expect("run");
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

#[test]
fn a_drill_that_loses_more_than_its_rpo_fails_with_both_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(corpus("pass/_drill.sql"), dir.path().join("_drill.sql")).expect("copy");
    let file = dir.path().join("drill.yaml");
    std::fs::write(
        &file,
        r#"name: a drill whose RPO objective is 1ms
stack: [postgres]
fixtures:
  - sql: _drill.sql
steps:
  - backup:
      postgres: { method: logical }
      writer: { rate: 100, lead: 100ms }
  - exec: { command: "sleep 0.3" }
  - disaster:
      postgres: { truncate: cards }
  - restore:
      postgres: { method: logical }
  - verify:
      postgres: { tables: [decks, cards] }
      rpo_max: 1ms
"#,
    )
    .expect("write");
    let out = support::run_files(&[file], 1).expect("run");
    assert_eq!(out.summary.failed, 1, "{}", out.console);
    let failure = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.clone()),
            _ => None,
        })
        .expect("a failed step");
    assert!(
        failure.message.contains("committed records were lost")
            && failure.message.contains("over the objective of 0.001 s"),
        "{}",
        failure.message
    );
    assert_eq!(failure.expected.as_deref(), Some("RPO ≤ 0.001 s"));
    assert!(
        failure
            .actual
            .as_deref()
            .unwrap_or_default()
            .contains("RPO "),
        "{failure:?}"
    );
}

#[test]
fn a_point_in_time_restore_stops_at_a_restore_point_and_explains_a_target_it_cannot_reach() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(corpus("pass/_drill.sql"), dir.path().join("_drill.sql")).expect("copy");
    let drill = |name: &str, before_disaster: &str, target: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
                 - backup: {{ postgres: {{ method: physical }} }}\n{before_disaster}  \
                 - disaster: {{ postgres: {{ drop_table: decks }} }}\n  \
                 - restore: {{ postgres: {{ method: physical, target: {target} }} }}\n  \
                 - sql: {{ query: \"SELECT count(*) AS n FROM decks\", expect: {{ rows: [{{ n: 2 }}] }} }}\n"
            ),
        )
        .expect("write");
        file
    };
    let point = drill(
        "point",
        "  - sql: { query: \"SELECT pg_create_restore_point('before_import')::text AS lsn\" }\n  \
         - sql: { execute: \"INSERT INTO decks VALUES (3, 'imported')\" }\n",
        "{ restore_point: before_import }",
    );
    let never = drill("never", "", "{ restore_point: nightly }");
    let early = drill("early", "", "{ time: \"2001-01-01 00:00:00+00\" }");
    let out = support::run_files(&[point, never, early], 1).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let messages: Vec<String> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 2, "{}", out.console);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("did not come up to restore point nightly")
                && m.contains("recovery ended before configured recovery target was reached")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`target.time` 2001-01-01 00:00:00+00 is before backup")),
        "{messages:?}"
    );
}

#[test]
fn drills_leave_no_replication_slot_nor_archive_command_on_the_server_and_drop_an_abandoned_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(corpus("pass/_drill.sql"), dir.path().join("_drill.sql")).expect("copy");
    let write = |name: &str, body: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n{body}"
            ),
        )
        .expect("write");
        file
    };
    // The server, as processes see it: the stack's, not a restored instance.
    let server = |query: &str, expect: &str| {
        let query = query.replace('\'', "''");
        format!(
            "  - exec: {{ command: 'psql \"$DATABASE_URL\" -tAc \"{query}\"', env_from: [postgres], expect: {{ stdout: {{ matches: '^{expect}$' }} }} }}\n"
        )
    };
    // A killed run's slot: its harness process (a pid above any pid_max) is gone.
    let physical = write(
        "physical",
        &format!(
            "  - sql: {{ query: \"SELECT pg_create_physical_replication_slot('harness_drill_2147483646_killed')::text AS s\" }}\n  \
             - backup: {{ postgres: {{ method: physical }} }}\n{}  \
             - disaster: {{ postgres: {{ drop_table: decks }} }}\n  \
             - restore: {{ postgres: {{ method: physical }} }}\n{}",
            server(
                "SELECT string_agg(slot_name::text, ',') FROM pg_replication_slots WHERE slot_name::text LIKE 'harness_drill_%'",
                "harness_drill_[0-9]+_harness_drill_[a-z0-9_]+\\n?",
            ),
            server("SELECT count(*) FROM pg_replication_slots", "0\\n?"),
        ),
    );
    let backrest = write(
        "backrest",
        &format!(
            "  - backup: {{ postgres: {{ method: pgbackrest }} }}\n{}",
            server("SHOW archive_command", "pgbackrest .*archive-push %p\\n?"),
        ),
    );
    let after = write("after", &server("SHOW archive_command", "/bin/true\\n?"));
    let out = support::run_files(&[physical, backrest, after], 1).expect("run");
    assert_eq!(out.summary.passed, 3, "{}", out.console);
}

#[test]
fn a_logical_restore_after_the_server_was_killed_is_refused_and_the_server_is_back_for_the_next_scenario()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(corpus("pass/_drill.sql"), dir.path().join("_drill.sql")).expect("copy");
    let killed = dir.path().join("killed.yaml");
    std::fs::write(
        &killed,
        "name: killed\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
         - backup: { postgres: { method: logical } }\n  \
         - disaster: { postgres: { kill: true } }\n  \
         - restore: { postgres: { method: logical } }\n",
    )
    .expect("write");
    let after = dir.path().join("after.yaml");
    std::fs::write(
        &after,
        "name: after\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
         - sql: { query: \"SELECT count(*) AS n FROM cards\", expect: { rows: [{ n: 3 }] } }\n",
    )
    .expect("write");
    let out = support::run_files(&[killed, after], 1).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let failure = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.message.clone()),
            _ => None,
        })
        .expect("the killed scenario fails");
    assert!(
        failure.contains("the server is down (the disaster killed it)")
            && failure.contains("`method: physical` or `pgbackrest`"),
        "{failure}"
    );
}

#[test]
fn a_drills_rto_rpo_and_phases_are_in_the_console_the_json_report_and_junit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (json, junit) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let out = support::run_files_with_reports(
        &[corpus("pass/drill_postgres_logical.yaml")],
        &json,
        &junit,
    )
    .expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    assert!(
        out.console.contains("drill met: RTO ")
            && out.console.contains("(objective 60.000 s): detect ")
            && out.console.contains("committed records lost"),
        "{}",
        out.console
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let drill = &report["scenarios"][0]["drill"];
    assert_eq!(drill["met"], true, "{report}");
    assert_eq!(drill["rto_max_ms"], 60000.0);
    assert!(drill["rto_ms"].as_f64().is_some_and(|v| v > 0.0), "{drill}");
    assert!(drill["lost"].as_u64().is_some_and(|v| v > 0), "{drill}");
    for phase in ["detect", "provision", "restore", "replay", "verify"] {
        assert!(drill["phases_ms"][phase].is_number(), "{phase}: {drill}");
    }
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("<system-out>drill met: RTO "), "{xml}");
}

/// A drill of `decks` and `cards`, with `extra` steps just before its restore; its
/// verdict's RTO and restore phase, in milliseconds.
fn drill_rto(extra: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(corpus("pass/_drill.sql"), dir.path().join("_drill.sql")).expect("copy");
    let file = dir.path().join("drill.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: a drill
stack: [postgres]
fixtures:
  - sql: _drill.sql
steps:
  - backup:
      postgres: {{ method: logical, jobs: 1 }}
  - disaster:
      postgres: {{ drop_table: cards }}
{extra}
  - restore:
      postgres: {{ method: logical }}
  - verify:
      postgres: {{ tables: [decks, cards] }}
"#
        ),
    )
    .expect("write");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let json = dir2.path().join("r.json");
    let out =
        support::run_files_with_reports(&[file], &json, &dir2.path().join("r.xml")).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let drill = &report["scenarios"][0]["drill"];
    (
        drill["rto_ms"].as_f64().expect("rto"),
        drill["phases_ms"]["restore"]
            .as_f64()
            .expect("restore phase"),
    )
}

#[test]
fn a_latency_fault_on_the_restore_path_makes_the_rto_longer_by_at_least_the_delay() {
    let (rto, restore) = drill_rto("");
    // 200 ms on every chunk the server sends to the restore's tools (through the scenario's
    // proxy of Postgres, which a network fault on it brings in).
    let (slow_rto, slow_restore) = drill_rto("  - fault: { target: postgres, latency: 200ms }");
    assert!(
        slow_restore >= restore + 200.0,
        "restore phase {restore} ms, with 200 ms of latency {slow_restore} ms"
    );
    assert!(
        slow_rto >= rto + 200.0,
        "RTO {rto} ms, with 200 ms of latency {slow_rto} ms"
    );
}

/// The graph restore's consistency check reads its own copy of the backup while the fresh
/// DBMS starts on another: a store the checker refuses still fails the restore with the
/// checker's findings, and the DBMS started beside it does not outlive the failure.
#[tokio::test]
async fn a_graph_backup_the_checker_refuses_fails_the_restore_and_leaves_no_dbms() {
    use harness_engine::{
        drills::{Provider, neo4j},
        stack::{Fault, ServiceKind, Stack},
    };
    let mut stack = Stack::builder().neo4j().start().await.expect("stack");
    let graph = stack.neo4j().expect("neo4j").graph().expect("graph");
    graph
        .run(neo4rs::query(
            "UNWIND range(1, 200) AS i CREATE (:Card {n: i})-[:NEXT]->(:Card {n: -i})",
        ))
        .await
        .expect("create");
    stack
        .fault(ServiceKind::Neo4j, Fault::Stop)
        .await
        .expect("stop");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("backup");
    neo4j::copy_store(&stack.run_dir().join("neo4j").join("data"), &path)
        .await
        .expect("copy");
    stack.shutdown().await;
    // Every node record of the copy overwritten: the files are there, their content is not.
    let nodes = walk(&path)
        .into_iter()
        .find(|p| p.ends_with("databases/neo4j/neostore.nodestore.db"))
        .expect("the copy has a node store");
    let len = std::fs::metadata(&nodes).expect("stat").len() as usize;
    std::fs::write(&nodes, vec![0xA5u8; len]).expect("overwrite");
    let backup = neo4j::Backup {
        id: "corrupted".into(),
        path,
        graph: Default::default(),
        bytes: 0,
        took: std::time::Duration::ZERO,
        downtime: std::time::Duration::ZERO,
    };
    let dir = tmp.path().join("restored");
    let err = match neo4j::restore(&backup, &dir, true, &Provider::Native, None).await {
        Ok(_) => panic!("a store with garbage for its nodes was restored"),
        Err(e) => e,
    };
    assert!(err.contains("not consistent"), "{err}");
    let marker = format!("-Dharness.run={}", dir.display());
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(
        left.is_empty(),
        "a DBMS outlived the failed restore: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
