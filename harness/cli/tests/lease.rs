//! `harness up --detach --lease PID`: the stack lives as long as the holder, as the one
//! stack of a nextest run does (`.config/test-stack.sh`). When the holder ends its watcher
//! stops the stack; when the watcher was killed too, the next start reaps it.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{DownOnDrop, alive, harness, harness_home};

fn holder() -> Child {
    Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the holder")
}

/// Starts a leased Postgres; returns its run id and the process group of Postgres.
fn leased_up(holder: u32) -> (String, u32) {
    let up = harness()
        .args(["up", "--detach", "--json", "--services", "postgres"])
        .args(["--lease", &holder.to_string()])
        .output()
        .expect("up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&up.stdout).expect("json");
    let run_id = info["run_id"].as_str().expect("run id").to_owned();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(harness_home().join("runs").join(format!("{run_id}.json"))).expect("record"),
    )
    .expect("record json");
    assert_eq!(
        record["lease"]["pid"], holder,
        "the record names the holder"
    );
    let pgid = record["services"][0]["pgid"].as_u64().expect("pgid") as u32;
    (run_id, pgid)
}

fn recorded(run_id: &str) -> bool {
    harness_home()
        .join("runs")
        .join(format!("{run_id}.json"))
        .exists()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

fn watchers_of(run_id: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("watch-lease") && c.contains(run_id)
            })
        })
        .filter(|pid| alive(*pid))
        .collect()
}

#[test]
fn a_leased_stack_stops_when_its_holder_ends() {
    let mut holder = holder();
    let (run_id, postgres) = leased_up(holder.id());
    let _down = DownOnDrop(run_id.clone());
    std::thread::sleep(Duration::from_millis(600));
    assert!(alive(postgres), "the stack must run while its holder does");
    assert!(recorded(&run_id));

    holder.kill().expect("kill the holder");
    let _ = holder.wait();
    wait_until("the stack is stopped", || {
        !recorded(&run_id) && !alive(postgres)
    });
    wait_until("the watcher is gone", || watchers_of(&run_id).is_empty());
}

#[test]
fn a_leased_stack_whose_watcher_was_killed_is_reaped_by_the_next_start() {
    let mut holder = holder();
    let (run_id, postgres) = leased_up(holder.id());
    let _down = DownOnDrop(run_id.clone());
    wait_until("the watcher runs", || !watchers_of(&run_id).is_empty());
    for pid in watchers_of(&run_id) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    holder.kill().expect("kill the holder");
    let _ = holder.wait();
    // Nothing watches the stack now: the next start (this test's, or any other test's that
    // starts a stack meanwhile) reaps it.
    let next = harness()
        .args(["up", "--detach", "--json", "--services", "s3"])
        .output()
        .expect("next up");
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&next.stdout).expect("json");
    let _next_down = DownOnDrop(info["run_id"].as_str().expect("id").to_owned());
    assert!(!recorded(&run_id), "the next start reaps the leased stack");
    wait_until("Postgres is stopped", || !alive(postgres));
}

#[test]
fn a_lease_on_a_process_that_does_not_run_is_refused() {
    let out = harness()
        .args([
            "up",
            "--detach",
            "--services",
            "postgres",
            "--lease",
            "4194399",
        ])
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no process 4194399 runs"), "{stderr}");
}
