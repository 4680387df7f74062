//! `harness init` sets a project up to test itself: in an empty Cargo project, the project's
//! own test run then passes with each scenario file as its own test.

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::harness;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The project is a test run of its own, not part of this one.
    for (k, _) in std::env::vars() {
        if k.starts_with("NEXTEST") || k.starts_with("__NEXTEST") || k == "CARGO_MANIFEST_DIR" {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A new Cargo package `demo` in a temporary folder, locked to this workspace's versions so
/// its build reuses what is compiled already.
fn new_package() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let out = cargo()
        .args(["init", "--quiet", "--vcs", "none", "--name", "demo"])
        .arg(&dir)
        .output()
        .expect("cargo init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("copy the lock file");
    (tmp, dir)
}

/// Runs cargo with `args` in the project, with this build's CLI: whether it succeeded, and
/// everything it printed.
fn project_tests(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = cargo()
        .args(args)
        .current_dir(dir)
        .env("HARNESS_BIN", env!("CARGO_BIN_EXE_harness"))
        .output()
        .expect("the project's tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn init_in_an_empty_cargo_project_makes_its_scenario_tests_pass() {
    let (_tmp, dir) = new_package();

    let out = harness().arg("init").arg(&dir).output().expect("init");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "scenarios/smoke.yaml",
        "tests/scenarios.rs",
        ".config/nextest.toml",
        ".github/workflows/scenarios.yml",
        ".gitignore",
        "Cargo.toml",
    ] {
        assert!(
            stdout.contains(f),
            "init does not say it wrote {f}:\n{stdout}"
        );
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains("harness-testing = { path ="),
        "{manifest}"
    );
    assert!(
        manifest.contains("[[test]]\nname = \"scenarios\"\nharness = false"),
        "{manifest}"
    );
    let gitignore = std::fs::read_to_string(dir.join(".gitignore")).expect(".gitignore");
    assert!(gitignore.contains("*.snap.new"), "{gitignore}");

    // The scenario it wrote is valid as it is.
    let out = harness()
        .arg("validate")
        .arg(dir.join("scenarios"))
        .output()
        .expect("validate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The project's own tests: one per scenario file, run by the real CLI.
    let (ok, text) = if has_nextest() {
        project_tests(
            &dir,
            &["nextest", "run", "--test", "scenarios", "--no-fail-fast"],
        )
    } else {
        project_tests(&dir, &["test", "--test", "scenarios"])
    };
    assert!(ok, "the project's tests failed:\n{text}");
    assert!(
        text.contains("smoke.yaml"),
        "no test named after the scenario:\n{text}"
    );
    assert!(
        text.contains("1 passed") || text.contains("1 test run: 1 passed"),
        "{text}"
    );
}

#[test]
fn a_failing_scenario_fails_the_projects_test_with_its_report() {
    let (_tmp, dir) = new_package();
    let out = harness().arg("init").arg(&dir).output().expect("init");
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(
        dir.join("scenarios/wrong.yaml"),
        "name: expects the wrong row\nstack: [postgres]\nsteps:\n  - name: one is two\n    sql: { query: select 1 as one, expect: { rows: [{ one: 2 }] } }\n",
    )
    .expect("write");
    let (ok, text) = project_tests(&dir, &["test", "--test", "scenarios"]);
    assert!(!ok, "a failing scenario passed:\n{text}");
    assert!(text.contains("wrong.yaml"), "{text}");
    assert!(
        text.contains("one is two"),
        "the step is not named:\n{text}"
    );
    assert!(text.contains("1 passed; 1 failed"), "{text}");
}

#[test]
fn init_writes_no_file_over_an_existing_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("scenarios")).expect("mkdir");
    std::fs::write(tmp.path().join("scenarios/smoke.yaml"), "mine").expect("write");
    let out = harness()
        .arg("init")
        .arg(tmp.path())
        .output()
        .expect("init");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is there already"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("scenarios/smoke.yaml")).expect("read"),
        "mine"
    );
    assert!(
        !tmp.path().join(".github").exists(),
        "it wrote part of the files"
    );

    // Not a Cargo package: no test target, a workflow that runs `harness run`.
    let out = harness()
        .args(["init", "--force"])
        .arg(tmp.path())
        .output()
        .expect("init --force");
    assert_eq!(out.status.code(), Some(0));
    assert!(!tmp.path().join("tests/scenarios.rs").exists());
    let workflow =
        std::fs::read_to_string(tmp.path().join(".github/workflows/scenarios.yml")).expect("ci");
    assert!(workflow.contains("harness run scenarios/"), "{workflow}");
}
