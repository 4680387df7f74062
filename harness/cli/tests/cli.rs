//! The CLI end to end: detached stacks used by independent clients, the reaper after a
//! SIGKILL, and bad input.

mod common;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; look at its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Waits until the run owned by `owner` has recorded `services` services, and returns it.
fn wait_for_record(owner: u32, services: usize) -> serde_json::Value {
    let home = std::env::var("HARNESS_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/harness"),
        PathBuf::from,
    );
    common::wait_for_run(&home, owner, &format!("{services} services"), |r| {
        r["services"]
            .as_array()
            .is_some_and(|s| s.len() == services)
    })
}

#[test]
fn detached_stack_serves_independent_clients_and_down_leaves_nothing() {
    let out = harness()
        .args(["up", "--detach", "--json"])
        .output()
        .expect("run harness up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in ["postgres", "s3", "neo4j", "otel"] {
        assert!(
            up["services"][key].is_object(),
            "services.{key} missing in {up}"
        );
    }
    let run_id = up["run_id"].as_str().expect("run id").to_owned();
    let _down = common::DownOnDrop(run_id.clone());
    let run_dir = PathBuf::from(up["run_dir"].as_str().expect("run dir"));
    let status = harness()
        .args(["status", "--json"])
        .output()
        .expect("status");
    let runs: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let pids: Vec<u32> = runs
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .expect("our run is listed")["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["pgid"].as_u64().expect("pid") as u32)
        .collect();
    // The four services, and the fault control API a detached stack runs beside them.
    assert_eq!(pids.len(), 5);

    let mut py = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write");
    let clients = py.wait_with_output().expect("clients");
    let down = harness().args(["down", &run_id]).output().expect("down");
    assert!(
        clients.status.success(),
        "clients failed: {}",
        String::from_utf8_lossy(&clients.stderr)
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    for pid in pids {
        assert!(!pid_alive(pid), "service {pid} still runs after down");
    }
    assert!(
        !run_dir.exists(),
        "{} remains after down",
        run_dir.display()
    );
}

#[test]
fn sigkilled_run_is_reaped_by_the_next_start() {
    let mut child = harness()
        .args(["up", "--services", "postgres,s3,otel"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness up");
    let owner = child.id();
    let record = wait_for_record(owner, 3);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    let pids: Vec<u32> = record["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["pgid"].as_u64().expect("pid") as u32)
        .collect();
    let run_dir = PathBuf::from(record["run_dir"].as_str().expect("dir"));
    assert!(
        pids.iter().all(|p| pid_alive(*p)),
        "orphans run before the reaper"
    );

    // Any next start reaps; a tiny stack is enough.
    let out = harness()
        .args(["up", "--services", "s3", "--detach", "--json"])
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let _ = harness()
        .args(["down", up["run_id"].as_str().expect("id")])
        .output();
    for pid in pids {
        assert!(!pid_alive(pid), "orphan {pid} survived the reaper");
    }
    assert!(
        !run_dir.exists(),
        "{} survived the reaper",
        run_dir.display()
    );
}

#[test]
fn unknown_service_is_bad_input() {
    let out = harness()
        .args(["up", "--services", "postgress"])
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown service `postgress`"), "{err}");
    assert!(err.contains("did you mean `postgres`?"), "{err}");
}

#[test]
fn taken_port_is_bad_input_and_starts_nothing() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let out = harness()
        .args([
            "up",
            "--services",
            "postgres",
            "--port",
            &format!("postgres={port}"),
        ])
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
}

#[test]
fn doctor_reports_every_runtime() {
    let out = harness()
        .args(["doctor", "--json"])
        .output()
        .expect("doctor");
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    for name in ["postgres", "s3", "neo4j", "otel"] {
        let row = rows
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["runtime"] == name)
            .expect("row");
        assert_eq!(row["state"], "ok", "{row}");
    }
}

/// A fake `postgres` binary in a folder of its own, for start-up failure tests.
fn fake_pg_bin(script: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("postgres");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The per-user run root's name, `harness-<uid>/`, as it appears in paths.
fn run_root_marker() -> String {
    use std::os::unix::fs::MetadataExt;
    if let Some(root) = std::env::var_os("HARNESS_RUN_ROOT") {
        return format!("{}/", PathBuf::from(root).display());
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    format!("harness-{uid}/")
}

fn runs_left_by(stderr: &str) -> Vec<PathBuf> {
    // Every failure message names the service log inside the run folder.
    stderr
        .split_whitespace()
        .filter(|w| w.contains(&run_root_marker()))
        .map(|w| PathBuf::from(w.trim_end_matches(':')))
        .collect()
}

#[test]
fn a_service_that_exits_during_start_up_shows_its_log_and_leaves_nothing() {
    let bin = fake_pg_bin("echo 'FATAL:  could not map shared memory: boom' >&2; exit 1");
    let out = harness()
        .args(["up", "--services", "postgres"])
        .env("HARNESS_PG_BIN", bin.path())
        .output()
        .expect("up");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("postgres exited during start-up"), "{err}");
    assert!(err.contains("could not map shared memory: boom"), "{err}");
    let logs = runs_left_by(&err);
    assert!(!logs.is_empty(), "the message names the log: {err}");
    for log in logs {
        assert!(!log.exists(), "{} was left behind", log.display());
    }
}

#[test]
fn a_readiness_timeout_is_reported_and_the_process_is_stopped() {
    let bin = fake_pg_bin("echo \"pid $$ waiting\"; exec sleep 600");
    let out = harness()
        .args(["up", "--services", "postgres"])
        .env("HARNESS_PG_BIN", bin.path())
        .env("HARNESS_READY_TIMEOUT_SECS", "1")
        .output()
        .expect("up");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("postgres was not ready after"), "{err}");
    let pid: u32 = err
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("the log tail shows the fake's pid");
    assert!(!pid_alive(pid), "the timed-out service {pid} still runs");
}

#[test]
fn doctor_flags_a_corrupt_install_with_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("runtimes/s3-1.8.0");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::write(dir.join("bin/versitygw"), "truncated").expect("write");
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"runtime":"s3","version":"1.8.0","source":"test","installed_at_unix":0,
            "files":[{"path":"bin/versitygw","size":999,"sha256":"00"}]}"#,
    )
    .expect("write");
    let out = harness()
        .args(["doctor", "--json"])
        .env("HARNESS_HOME", home.path())
        .output()
        .expect("doctor");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = |name: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["runtime"] == name)
            .cloned()
            .expect("row")
    };
    let s3 = row("s3");
    assert_eq!(s3["state"], "corrupt", "{s3}");
    assert!(
        s3["detail"].as_str().expect("detail").contains("999"),
        "{s3}"
    );
    assert_eq!(s3["fix"], "harness runtimes install --only s3 --force");
    let neo = row("neo4j");
    assert_eq!(neo["state"], "missing");
    assert_eq!(neo["fix"], "harness runtimes install --only neo4j");
}

#[test]
fn ctrl_c_stops_an_attached_stack_cleanly() {
    let child = harness()
        .args(["up", "--services", "s3,postgres"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn harness up");
    let owner = child.id();
    let record = wait_for_record(owner, 2);
    // The CLI registers its handlers before starting the stack, so no grace period is needed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("interrupt");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in record["services"].as_array().expect("services") {
        let pid = s["pgid"].as_u64().expect("pid") as u32;
        assert!(!pid_alive(pid), "service {pid} survived Ctrl-C");
    }
    let run_dir = PathBuf::from(record["run_dir"].as_str().expect("dir"));
    assert!(!run_dir.exists(), "{} survived Ctrl-C", run_dir.display());
}

#[test]
fn down_removes_a_stack_whose_owner_was_killed() {
    // A home of its own, so no other test's start reaps the stack before `down` does.
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = harness()
        .args(["up", "--services", "postgres"])
        .env("HARNESS_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness up");
    let owner = child.id();
    let record = common::wait_for_run(home.path(), owner, "postgres", |r| {
        r["services"].as_array().is_some_and(|s| s.len() == 1)
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    let run_id = record["run_id"].as_str().expect("run id").to_owned();
    let pgid = record["services"][0]["pgid"].as_u64().expect("pgid") as u32;
    let run_dir = PathBuf::from(record["run_dir"].as_str().expect("dir"));
    // `status` calls it dead; `down` of that id cleans it up instead of refusing it.
    let out = harness()
        .args(["down", &run_id])
        .env("HARNESS_HOME", home.path())
        .output()
        .expect("down");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pid_alive(pgid), "its postgres survived down");
    assert!(
        !run_dir.exists(),
        "{} remains after down",
        run_dir.display()
    );
}

/// `harness run FILE --report F.html`: the page and the run's exit code.
fn html_report_of(file: &str) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("out/report.html");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let out = harness()
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(&page)
        .output()
        .expect("harness run");
    let html = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("no report ({e}):\n{}", String::from_utf8_lossy(&out.stderr)));
    (html, out.status.code())
}

#[test]
fn the_html_report_draws_a_drills_timeline_with_its_writer_disaster_and_rto() {
    let (html, code) = html_report_of("../engine/tests/corpus/pass/drill_postgres_logical.yaml");
    assert_eq!(code, Some(0));
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<svg"),
        "{html}"
    );
    // Self-contained: nothing is fetched.
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "{html}"
    );
    // Each step is a bar, drill steps in their own colours.
    for step in [
        "backup, with a writer",
        "cards are truncated",
        "restore",
        "verify",
    ] {
        assert!(html.contains(step), "{step} missing");
    }
    assert!(html.contains("drill met: RTO "), "{html}");
    // The writer's records as ticks, the lost ones apart; the disaster and the RTO.
    let lost = html.matches("class=\"lost\"").count();
    let kept = html.matches("class=\"kept\"").count();
    assert!(lost > 0 && kept > 0, "kept {kept}, lost {lost}");
    assert!(html.contains(&format!(", {lost} lost</text>")), "{html}");
    assert!(html.contains("class=\"disaster\"") && html.contains("class=\"rto\""));
}

#[test]
fn the_html_report_of_a_failed_drill_names_the_failure() {
    let (html, code) =
        html_report_of("../engine/tests/corpus/fail/drill_backup_skips_a_table.yaml");
    assert_eq!(code, Some(1));
    assert!(
        html.contains("<span class=\"badge failed\">FAIL</span>"),
        "{html}"
    );
    assert!(
        html.contains("table cards is missing from the restored database"),
        "{html}"
    );
    assert!(html.contains("drill NOT met"), "{html}");
}
