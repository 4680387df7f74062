//! `harness run`, `validate` and `schema` end to end: exit codes, reports, and that invalid
//! files start nothing.

use std::process::Command;

fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    // The sample apps this test run built sit beside harness.
    if let Some(dir) = std::path::Path::new(env!("CARGO_BIN_EXE_harness")).parent() {
        cmd.env("HARNESS_BIN_DIR", dir);
    }
    cmd
}

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
