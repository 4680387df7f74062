//! `harness run`, `validate` and `schema` end to end: exit codes, reports, and that invalid
//! files start nothing.

mod common;

use std::process::Command;

use common::harness;

#[test]
fn the_scenario_library_passes_and_writes_junit_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (junit, json) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
    let out = harness()
        .args(["run", "../../scenarios", "--jobs", "4", "--seed", "1"])
        .arg("--junit")
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json report")).expect("JSON");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert!(scenarios.len() >= 5);
    assert!(
        scenarios.iter().all(|s| s["status"] == "passed"),
        "{report}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert_eq!(xml.matches("<testcase").count(), scenarios.len());
    assert!(!xml.contains("<failure"));
}

#[test]
fn a_failing_scenario_exits_1_naming_the_step_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let out = harness()
        .args([
            "run",
            "../engine/tests/corpus/fail/exec_exit.yaml",
            "--junit",
        ])
        .arg(&junit)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("migrations apply"), "{err}");
    assert!(err.contains("exec_exit.yaml:3:5"), "{err}");
    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    assert!(xml.contains("migrations apply"), "{xml}");
    assert!(xml.contains("exec_exit.yaml:3:5"), "{xml}");
}

#[test]
fn malformed_files_exit_2_with_locations_and_start_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = harness()
        .args(["run", "../scenario/tests/malformed"])
        .env("HARNESS_HOME", home.path())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing was started"), "{err}");
    assert!(err.contains("unknown_step_kind.yaml:"), "{err}");
    assert!(!home.path().join("runs").exists(), "a stack was recorded");

    let out = harness()
        .args([
            "validate",
            "../scenario/tests/malformed/unknown_step_kind.yaml",
        ])
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(2));
    let out = harness()
        .args(["validate", "../../scenarios"])
        .output()
        .expect("validate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_prints_lint_warnings_and_strict_makes_them_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pasted.yaml");
    std::fs::write(
        &file,
        "name: pasted\nstack: [postgres]\nsteps:\n  - sql: { query: \"select ${env.HOME}\" }\n",
    )
    .expect("write the scenario");
    let out = harness()
        .arg("validate")
        .arg(&file)
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(1 warning)"),
        "{err}"
    );
    assert!(err.contains("pasted.yaml:4:27"), "{err}");
    assert!(
        err.contains("environment variable `${env.HOME}` is pasted into SQL text"),
        "{err}"
    );
    assert!(err.contains("`params`"), "{err}");

    let out = harness()
        .args(["validate", "--strict"])
        .arg(&file)
        .output()
        .expect("validate --strict");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pasted.yaml:4:27"), "{err}");
    assert!(err.contains("1 file is invalid"), "{err}");
}

#[test]
fn a_missing_path_is_bad_input() {
    let out = harness()
        .args(["run", "no/such/folder"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/folder does not exist"));
}

#[test]
fn schema_is_json_with_every_step_kind() {
    let out = harness().arg("schema").output().expect("schema");
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = schema.to_string();
    for kind in [
        "http",
        "sql",
        "s3",
        "cypher",
        "eventually",
        "exec",
        "snapshot",
        "telemetry",
        "deploy",
    ] {
        assert!(text.contains(&format!("\"{kind}\"")), "schema lacks {kind}");
    }
}

#[test]
fn keep_leaves_the_failed_scenarios_data_and_its_stack_for_inspection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let out = run_kept("sql_rows_differ.yaml", &json);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let run_id = kept_stack(&err).expect("the kept stack is named");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    let kept = report["scenarios"][0]["kept"]
        .as_str()
        .expect("kept is reported")
        .to_owned();
    let database = kept
        .split("database ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the kept database is named")
        .to_owned();

    let status = harness()
        .args(["status", "--json"])
        .output()
        .expect("status");
    let runs: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let run = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run_id"] == run_id.as_str()))
        .expect("the kept stack is recorded");
    let pg = &run["endpoints"]["postgres"];
    let url = format!(
        "postgres://{}:{}@{}:{}/{database}",
        pg["user"].as_str().unwrap_or_default(),
        pg["password"].as_str().unwrap_or_default(),
        pg["host"].as_str().unwrap_or_default(),
        pg["port"]
    );
    let rows = Command::new("psql")
        .args([url.as_str(), "-tAc", "select count(*) from marks"])
        .output()
        .expect("psql");
    let down = harness().args(["down", &run_id]).output().expect("down");
    assert_eq!(
        String::from_utf8_lossy(&rows.stdout).trim(),
        "0",
        "the kept database holds the scenario's table (its rollback emptied it): {}",
        String::from_utf8_lossy(&rows.stderr)
    );
    assert_eq!(down.status.code(), Some(0));
}

#[test]
fn trace_otlp_sends_the_runs_own_spans_to_the_attached_collector() {
    let up = harness()
        .args(["up", "--services", "otel", "--detach", "--json"])
        .output()
        .expect("up");
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stack: serde_json::Value = serde_json::from_slice(&up.stdout).expect("up JSON");
    let run_id = stack["run_id"].as_str().expect("run id").to_owned();
    let output = stack["services"]["otel"]["output_file"]
        .as_str()
        .expect("output file")
        .to_owned();
    let run = harness()
        .args([
            "run",
            "../engine/tests/corpus/pass/process_http_server.yaml",
            "--attach",
            &run_id,
            "--trace",
            "otlp",
        ])
        .output()
        .expect("run");
    // The collector batches and flushes its file every 50 ms; give it a moment.
    let mut received = String::new();
    for _ in 0..100 {
        received = std::fs::read_to_string(&output).unwrap_or_default();
        if received.contains("\"harness run\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let down = harness().args(["down", &run_id]).output().expect("down");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        received.contains("\"harness run\""),
        "the run span reached the collector"
    );
    assert!(
        received.contains("the process answers on its port"),
        "step spans reached the collector"
    );
    assert_eq!(down.status.code(), Some(0));
}

/// A scenario with a process, an `exec` step and a fixture file, all relative to its own
/// folder.
fn relative_scenario(dir: &std::path::Path) {
    std::fs::write(dir.join("hello.txt"), "hello from the fixture folder\n").expect("write");
    std::fs::write(
        dir.join("here.yaml"),
        r#"name: paths relative to the scenario's folder
processes:
  - name: files
    command: "exec python3 -m http.server $PORT --bind 127.0.0.1"
    ready: { http: /hello.txt }
steps:
  - name: the process serves the scenario's folder
    http:
      url: "${processes.files.url}/hello.txt"
      expect: { status: 200, body: { contains: "fixture folder" } }
  - name: exec runs in the scenario's folder
    exec:
      command: [cat, hello.txt]
      expect: { stdout: { contains: "fixture folder" } }
"#,
    )
    .expect("write scenario");
}

#[test]
fn a_bare_name_a_dot_name_and_a_symlink_all_run_from_the_scenarios_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    relative_scenario(dir.path());
    let link = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(dir.path().join("here.yaml"), link.path().join("there.yaml"))
        .expect("symlink");
    for (cwd, name) in [
        (dir.path(), "here.yaml"),
        (dir.path(), "./here.yaml"),
        (link.path(), "there.yaml"),
    ] {
        let out = harness()
            .current_dir(cwd)
            .args(["run", name])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "harness run {name}:\n{err}");
    }
}

#[test]
fn jobs_0_means_one_per_cpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    relative_scenario(dir.path());
    let out = harness()
        .current_dir(dir.path())
        .args(["run", "here.yaml", "--jobs", "0"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let jobs = if cpus == 1 {
        "1 job".to_owned()
    } else {
        format!("{cpus} jobs")
    };
    assert!(err.contains(&format!("with {jobs}")), "{err}");
    assert_eq!(err.matches("seed ").count(), 1, "one banner per run: {err}");
}

#[test]
fn a_failed_step_shows_each_process_log_tail_and_keep_keeps_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let out = run_kept("process_log_tail.yaml", &json);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let console = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{console}");
    assert!(
        console.contains("GET /orders/7 -> 500: the cache at 127.0.0.1:1 refused the connection"),
        "the log's tail is shown: {console}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    let message = report["scenarios"][0]["failed_step"]["failure"]["message"]
        .as_str()
        .expect("a failure message")
        .to_owned();
    let kept = message
        .split("whole log kept in ")
        .nth(1)
        .and_then(|rest| rest.split("):").next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("the kept log is named: {message}"));
    let log = std::fs::read_to_string(&kept).expect("the kept log is there");
    if let Some(run) = kept_stack(&err) {
        let _ = harness().args(["down", &run]).output();
    }
    if let Some(folder) = kept.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
    assert!(log.contains("api listening"), "{log}");
    assert!(log.contains("GET /orders/7"), "{log}");
}

/// Runs a must-fail corpus file with `--keep`, its JSON report written to `json`.
fn run_kept(file: &str, json: &std::path::Path) -> std::process::Output {
    harness()
        .args([
            "run",
            &format!("../engine/tests/corpus/fail/{file}"),
            "--keep",
            "--json",
        ])
        .arg(json)
        .output()
        .expect("run")
}

/// The run id of the stack `--keep` left running, as the run's stderr names it.
fn kept_stack(stderr: &str) -> Option<String> {
    stderr
        .split("kept stack ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

#[test]
fn validate_checks_each_file_with_its_folders_shared_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("_defaults.yaml"),
        "stack: [postgres]\nvars:\n  table: orders\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("uses.yaml"),
        "name: uses the shared var\nsteps:\n  - sql: { query: \"select '${vars.table}' as t\" }\n",
    )
    .expect("write");
    let out = harness()
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("uses.yaml"), "{text}");
    assert!(
        !text.contains("_defaults.yaml"),
        "the shared file is not a scenario: {text}"
    );

    // Named on its own, the shared file is refused with what to do instead.
    let out = harness()
        .arg("validate")
        .arg(dir.path().join("_defaults.yaml"))
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a scenario itself"), "{err}");

    // Without the shared file the var is unknown: the defaults really were read.
    std::fs::remove_file(dir.path().join("_defaults.yaml")).expect("remove");
    let out = harness()
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown var `table`"), "{err}");
}

/// The names `harness run --partition SPEC` ran over `dir`, from its JSON report.
fn ran_in(dir: &std::path::Path, spec: &str) -> Vec<String> {
    let report = dir.join(format!("{}.json", spec.replace([':', '/'], "_")));
    let out = harness()
        .arg("run")
        .arg(dir.join("library"))
        .args(["--partition", spec, "--json"])
        .arg(&report)
        .output()
        .expect("run harness");
    assert!(
        out.status.success(),
        "{spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !report.exists() {
        // An empty share runs nothing and says so.
        assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario falls in this share"));
        return Vec::new();
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    v["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn partitions_are_disjoint_and_together_run_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("library");
    std::fs::create_dir_all(lib.join("nested")).expect("mkdir");
    let mut all = Vec::new();
    for i in 0..11 {
        let name = format!("scenario {i:02}");
        let file = if i % 3 == 0 {
            lib.join(format!("nested/s{i:02}.yaml"))
        } else {
            lib.join(format!("s{i:02}.yaml"))
        };
        std::fs::write(
            &file,
            format!("name: {name}\nsteps:\n  - exec:\n      command: [\"true\"]\n"),
        )
        .expect("write");
        all.push(name);
    }
    for kind in ["count", "hash"] {
        for total in [1, 3, 4] {
            let mut seen = Vec::new();
            for shard in 1..=total {
                let share = ran_in(dir.path(), &format!("{kind}:{shard}/{total}"));
                if kind == "count" {
                    assert!(
                        (11 / total..=11usize.div_ceil(total)).contains(&share.len()),
                        "count:{shard}/{total} ran {share:?}"
                    );
                }
                for name in share {
                    assert!(
                        !seen.contains(&name),
                        "{name} ran in two shares of {kind}:_/{total}"
                    );
                    seen.push(name);
                }
            }
            seen.sort();
            assert_eq!(seen, all, "{kind}:_/{total} covers every file");
        }
    }
    // The same spec picks the same files every time.
    assert_eq!(
        ran_in(dir.path(), "hash:2/3"),
        ran_in(dir.path(), "hash:2/3")
    );
    let bad = harness()
        .arg("run")
        .arg(&lib)
        .args(["--partition", "4/3"])
        .output()
        .expect("run harness");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("runs from 1 to N"));
}
