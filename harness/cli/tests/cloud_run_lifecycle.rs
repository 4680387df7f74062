//! The Cloud Run emulator's instances over their life: scaling from zero and up to the
//! maximum, liveness, deletion, `harness up` with cloud-run, and cleanup after the emulator
//! or its run ends (even by SIGKILL).

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use common::cloud_run::{Emulator, fixtures, gcloud_with, get, pid_alive, version};
use serde_json::Value;

#[test]
fn instances_scale_from_zero_up_to_the_maximum_and_nothing_outlives_the_emulator() {
    let mut emu = Emulator::start(&["--idle-timeout", "1"]);
    emu.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v1",
        "--max-instances=2",
        "--concurrency=1",
    ]);
    let url = emu.describe("hello")["status"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    // The instance that checked the revision goes once idle: min instances 0.
    let mut stopped = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if emu
            .events()
            .iter()
            .any(|e| e["event"] == "instance_stopping" && e["reason"] == "idle")
        {
            stopped = true;
            break;
        }
    }
    assert!(
        stopped,
        "the idle instance was not scaled down: {:?}",
        emu.events()
    );
    std::thread::sleep(Duration::from_millis(300));
    // The first request succeeds after a cold start that the events report.
    assert_eq!(version(&url)["version"], "v1");
    let cold: Vec<Value> = emu
        .events()
        .into_iter()
        .filter(|e| e["event"] == "request" && e.get("cold_start_ms").is_some())
        .collect();
    assert_eq!(cold.len(), 1, "{cold:?}");
    assert!(cold[0]["cold_start_ms"].as_f64().unwrap_or(0.0) > 0.0);

    // Eight concurrent requests at concurrency 1 never get more than two instances.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&format!("{url}/sleep?ms=300")).status().as_u16())
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    assert_eq!(statuses, [200; 8]);
    let events = emu.events();
    let sleepers: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "request" && e["path"] == "/sleep?ms=300")
        .filter_map(|e| e["instance"].as_str())
        .collect();
    assert_eq!(
        sleepers.len(),
        2,
        "max instances 2 did not hold: {sleepers:?}"
    );

    // Stopping the emulator stops every instance it started.
    let pids: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "instance_started")
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    assert!(pids.len() >= 3, "{pids:?}");
    emu.stop();
    std::thread::sleep(Duration::from_millis(200));
    let alive: Vec<i64> = pids.into_iter().filter(|p| pid_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "instances outlived the emulator: {alive:?}"
    );
}

#[test]
fn deleting_a_service_stops_its_instances() {
    let emu = Emulator::start(&[]);
    emu.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=example/hello:v1",
        "--min-instances=2",
    ]);
    let url = emu.describe("hello")["status"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(version(&url)["version"], "v1");
    let pids: Vec<i64> = emu
        .events()
        .iter()
        .filter(|e| e["event"] == "instance_started")
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    assert!(!pids.is_empty());
    emu.ok(&["run", "services", "delete", "hello"]);
    assert!(
        pids.iter().all(|p| !pid_alive(*p)),
        "instances outlived their service"
    );
    let gone = reqwest::blocking::Client::new()
        .get(format!("{url}/version"))
        .timeout(Duration::from_secs(2))
        .send();
    assert!(gone.is_err(), "the deleted service still answers");
    let err = emu.fails(&["run", "services", "describe", "hello"]);
    assert!(err.contains("hello"), "{err}");
}

#[test]
fn harness_up_serves_the_emulator_beside_the_stack_attached_and_detached() {
    let images = fixtures().join("images.yaml");
    // Attached: in the `harness up` process, gone with it.
    let mut child = common::harness()
        .args(["up", "--services", "postgres,cloud-run", "--json"])
        .arg("--cloud-run-images")
        .arg(&images)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness up");
    let mut text = String::new();
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    while !text.trim_end().ends_with('}') || serde_json::from_str::<Value>(&text).is_err() {
        let mut line = String::new();
        if out.read_line(&mut line).expect("read") == 0 {
            break;
        }
        text.push_str(&line);
    }
    let summary: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let cr = &summary["services"]["cloud_run"];
    assert!(
        summary["services"]["postgres"]["port"].is_u64(),
        "{summary}"
    );
    let (ok, err) = gcloud_with(
        &cr["gcloud_env"],
        &["run", "deploy", "hello", "--image=example/hello:v1"],
    );
    assert!(ok, "{err}");
    let url = err
        .lines()
        .find_map(|l| l.strip_prefix("Service URL: "))
        .expect("gcloud prints the service URL")
        .trim()
        .to_owned();
    assert_eq!(version(&url)["version"], "v1");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    assert!(child.wait().expect("wait").success());
    let gone = reqwest::blocking::Client::new()
        .get(format!("{url}/version"))
        .timeout(Duration::from_secs(2))
        .send();
    assert!(gone.is_err(), "a service outlived the attached stack");

    // Detached: a process of its own, recorded with the stack, stopped by `harness down`.
    let out = common::harness()
        .args(["up", "--services", "cloud-run", "--detach", "--json"])
        .arg("--cloud-run-images")
        .arg(&images)
        .output()
        .expect("harness up --detach");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let run_id = summary["run_id"].as_str().expect("run_id").to_owned();
    let _down = common::DownOnDrop(run_id.clone());
    let cr = &summary["services"]["cloud_run"];
    let api = cr["url"].as_str().expect("url").to_owned();
    let (ok, err) = gcloud_with(
        &cr["gcloud_env"],
        &["run", "deploy", "hello", "--image=example/hello:v2"],
    );
    assert!(ok, "{err}");
    let url = err
        .lines()
        .find_map(|l| l.strip_prefix("Service URL: "))
        .expect("gcloud prints the service URL")
        .trim()
        .to_owned();
    assert_eq!(version(&url)["version"], "v2");
    let down = common::harness()
        .args(["down", &run_id])
        .output()
        .expect("down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    for u in [&api, &url] {
        let gone = reqwest::blocking::Client::new()
            .get(u.as_str())
            .timeout(Duration::from_secs(2))
            .send();
        assert!(gone.is_err(), "{u} outlived `harness down`");
    }
}

#[test]
fn a_failing_liveness_probe_replaces_the_instance() {
    let emu = Emulator::start(&[]);
    let marker = emu.dir.path().join("sick");
    emu.ok(&[
        "run", "deploy", "hello", "--image=example/hello:v1", "--min-instances=1",
        &format!("--update-env-vars=UNHEALTHY_FILE={}", marker.display()),
        "--liveness-probe=httpGet.path=/healthz,periodSeconds=1,timeoutSeconds=1,failureThreshold=2",
    ]);
    let url = emu.describe("hello")["status"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(version(&url)["version"], "v1");
    let started = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["event"] == "instance_started")
            .count()
    };
    let before = started(&emu.events());
    std::fs::write(&marker, "").expect("mark unhealthy");
    let mut replaced = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let events = emu.events();
        if events.iter().any(|e| e["event"] == "liveness_failed") && started(&events) > before {
            replaced = true;
            break;
        }
    }
    assert!(
        replaced,
        "no replacement after the liveness probe failed: {:?}",
        emu.events()
    );
    std::fs::remove_file(&marker).expect("heal");
    assert_eq!(version(&url)["version"], "v1");
}

#[test]
fn the_instances_of_a_killed_run_are_reaped_by_the_next_start() {
    // An instance that ignores SIGTERM survives its parent's death signal: only the run's
    // record (and so the reaper) can stop it.
    let dir = tempfile::tempdir().expect("tempdir");
    let hello = fixtures().join("hello.py");
    let scenario = dir.path().join("stubborn.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: stubborn\nsteps:\n  - deploy:\n      service: stubborn\n      image: example/stubborn\n      command: \"trap '' TERM; exec python3 {}\"\n  - exec: {{ command: \"sleep 120\" }}\n",
            hello.display()
        ),
    )
    .expect("write");
    let mut child = common::harness()
        .arg("run")
        .arg(&scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness run");
    let owner = child.id();
    let home = std::env::var("HARNESS_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/harness"),
        PathBuf::from,
    );
    let record = common::wait_for_run(&home, owner, "a Cloud Run instance", |r| {
        r["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|g| g["name"] == "cloud-run-instance"))
    });
    let pgid = record["services"]
        .as_array()
        .and_then(|s| s.iter().find(|g| g["name"] == "cloud-run-instance"))
        .and_then(|g| g["pgid"].as_i64())
        .expect("the instance's group");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(owner).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        pid_alive(pgid),
        "the stubborn instance should outlive its parent"
    );
    // Any next start reaps.
    let out = common::harness()
        .args(["up", "--services", "s3", "--detach", "--json"])
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up: Value = serde_json::from_slice(&out.stdout).expect("json");
    let _ = common::harness()
        .args(["down", up["run_id"].as_str().expect("id")])
        .output();
    for _ in 0..50 {
        if !pid_alive(pgid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pid_alive(pgid), "instance {pgid} survived the reaper");
}
