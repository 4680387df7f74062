//! The CLI end to end: detached stacks used by independent clients, the reaper after a
//! SIGKILL, and bad input.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
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
        .map(|s| s[1].as_u64().expect("pid") as u32)
        .collect();
    assert_eq!(pids.len(), 4);

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
    // Wait for the record to list all three services.
    let home = std::env::var("HARNESS_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/harness"),
        PathBuf::from,
    );
    let mut record = None;
    for _ in 0..600 {
        record = std::fs::read_dir(home.join("runs"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{owner}-"))
            })
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .find(|r| r["services"].as_array().is_some_and(|s| s.len() == 3));
        if record.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let record = record.expect("the run recorded its services");
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
        .map(|s| s[1].as_u64().expect("pid") as u32)
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
    assert!(err.contains("unknown runtime `postgress`"), "{err}");
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
