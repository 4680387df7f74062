//! Every CLI error path, as the user reads it: one `error:` sentence that says what failed,
//! then what to do (`help:` or `fix:`), and nothing framing it. Snapshots keep the wording
//! reviewed; machine-specific parts (temporary folders, ports) are replaced first.

mod common;

use std::path::Path;

use common::harness;

/// Runs harness with `args` (and `env`), checks the exit code, and returns stderr with the
/// given texts replaced by placeholders.
fn stderr_of(args: &[&str], env: &[(&str, &str)], code: i32, replace: &[(&str, &str)]) -> String {
    let mut cmd = harness();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run harness");
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    for (from, to) in replace {
        err = err.replace(from, to);
    }
    // One sentence, no frame: no miette code line, no "Error:" header, no "failed to".
    assert!(!err.contains("failed to"), "{err}");
    assert!(!err.contains("Error: "), "{err}");
    assert!(!err.contains("harness::"), "{err}");
    err
}

fn error_line(err: &str) -> &str {
    err.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in {err}"))
}

#[test]
fn a_bad_flag_value() {
    let err = stderr_of(&["run", "--jobs", "many", "scenarios"], &[], 2, &[]);
    insta::assert_snapshot!(err);
}

#[test]
fn an_unknown_service() {
    let err = stderr_of(&["up", "--services", "postgres,bogus"], &[], 2, &[]);
    assert!(error_line(&err).contains("unknown service `bogus`"));
    insta::assert_snapshot!(err);
}

#[test]
fn an_unknown_provider() {
    let err = stderr_of(&["up", "--provider", "kubernetes"], &[], 2, &[]);
    insta::assert_snapshot!(err);
}

#[test]
fn a_missing_path() {
    let err = stderr_of(&["run", "no/such/scenarios"], &[], 2, &[]);
    insta::assert_snapshot!(err);
}

#[test]
fn an_invalid_scenario_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo.yaml");
    std::fs::write(
        &file,
        "name: typo\nsteps:\n  - htp: { url: http://127.0.0.1:1/ }\n",
    )
    .expect("write");
    let shown = dir.path().display().to_string();
    let err = stderr_of(
        &["validate", file.to_str().expect("utf-8")],
        &[],
        2,
        &[(&shown, "[DIR]")],
    );
    assert_eq!(err.matches('×').count(), 1, "one line per problem: {err}");
    insta::assert_snapshot!(err);
}

#[test]
fn a_bad_trace_value() {
    let err = stderr_of(
        &["run", "--trace", "jaeger", "../engine/tests/corpus/pass"],
        &[],
        2,
        &[],
    );
    insta::assert_snapshot!(err);
}

#[test]
fn an_unknown_run_to_stop() {
    let err = stderr_of(&["down", "99999-nosuch"], &[], 2, &[]);
    insta::assert_snapshot!(err);
}

#[test]
fn a_missing_runtime() {
    let home = tempfile::tempdir().expect("tempdir");
    let bin = home.path().join("no-postgres-here");
    std::fs::create_dir(&bin).expect("mkdir");
    let shown = home.path().display().to_string();
    let err = stderr_of(
        &["up", "--services", "postgres", "--detach"],
        &[
            ("HARNESS_HOME", home.path().to_str().expect("utf-8")),
            ("HARNESS_PG_BIN", bin.to_str().expect("utf-8")),
        ],
        3,
        &[(&shown, "[HOME]")],
    );
    insta::assert_snapshot!(err);
}

#[test]
fn a_taken_port() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port().to_string();
    let err = stderr_of(
        &[
            "up",
            "--services",
            "postgres",
            "--port",
            &format!("postgres={port}"),
        ],
        &[],
        2,
        &[(&port, "[PORT]")],
    );
    insta::assert_snapshot!(err);
}

#[test]
fn no_docker_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let shown = dir.path().display().to_string();
    let err = stderr_of(
        &["up", "--provider", "docker", "--services", "postgres"],
        &[("DOCKER_HOST", &format!("unix://{}", socket.display()))],
        3,
        &[(&shown, "[DIR]")],
    );
    insta::assert_snapshot!(err);
}

#[test]
fn a_missing_image() {
    // Needs the Docker engine `.ci/run` starts; the image is one nobody has.
    assert!(
        Path::new("/var/run/docker.sock").exists() || std::env::var_os("DOCKER_HOST").is_some()
    );
    let err = stderr_of(
        &[
            "up",
            "--provider",
            "docker",
            "--services",
            "postgres",
            "--image",
            "postgres=harness.local/not-built:0",
        ],
        &[],
        3,
        &[],
    );
    insta::assert_snapshot!(err);
}
