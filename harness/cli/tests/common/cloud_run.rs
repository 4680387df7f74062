//! The Cloud Run emulator for the CLI tests: `harness emulate cloud-run` with the test image
//! map, gcloud pointed at it, and small HTTP helpers.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;

/// `harness emulate cloud-run` on a free port, with the test image map; stopped with
/// SIGTERM when dropped.
pub struct Emulator {
    child: Child,
    pub info: Value,
    pub dir: tempfile::TempDir,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images")
}

impl Emulator {
    pub fn start(extra: &[&str]) -> Emulator {
        Self::start_in(None, extra)
    }

    /// Started with `HARNESS_HOME` at `home` when given.
    pub fn start_in(home: Option<&Path>, extra: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = super::harness();
        if let Some(h) = home {
            cmd.env("HARNESS_HOME", h);
        }
        let mut child = cmd
            .args([
                "emulate",
                "cloud-run",
                "--port",
                "0",
                "--json",
                "--seed",
                "42",
            ])
            .arg("--images")
            .arg(fixtures().join("images.yaml"))
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn harness emulate cloud-run");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the endpoint");
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Emulator { child, info, dir }
    }

    pub fn url(&self) -> String {
        self.info["url"].as_str().expect("url").to_owned()
    }

    /// gcloud with the emulator's environment and nothing of the user's gcloud config.
    pub fn gcloud(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("gcloud");
        for (k, v) in self.info["gcloud_env"].as_object().expect("gcloud_env") {
            cmd.env(k, v.as_str().unwrap_or_default());
        }
        cmd.args(args).output().expect("run gcloud")
    }

    /// gcloud with its text styling taken out.
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.gcloud(args);
        (out.status.success(), plain(&out.stdout), plain(&out.stderr))
    }

    /// gcloud that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "gcloud {args:?} failed:\n{err}");
        out
    }

    /// gcloud that must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, _, err) = self.run(args);
        assert!(!ok, "gcloud {args:?} should have failed:\n{err}");
        err
    }

    pub fn describe(&self, service: &str) -> Value {
        let out = self.ok(&["run", "services", "describe", service, "--format=json"]);
        serde_json::from_str(&out).expect("describe json")
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("logs/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Kills it with SIGKILL (no cleanup of its own), and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it as Ctrl-C does, and waits.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Text without terminal styling (gcloud writes bold even to a pipe).
pub fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

pub fn version(url: &str) -> Value {
    get(&format!("{url}/version")).json().expect("version json")
}

pub fn condition<'a>(svc: &'a Value, kind: &str) -> &'a Value {
    svc["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} condition in {svc}"))
}

pub fn pid_alive(pid: i64) -> bool {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid"));
    nix::sys::signal::kill(pid, None).is_ok()
}

/// gcloud pointed at `services.cloud_run` of `harness up --json`.
pub fn gcloud_with(env: &Value, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("gcloud");
    for (k, v) in env.as_object().expect("gcloud_env") {
        cmd.env(k, v.as_str().unwrap_or_default());
    }
    let out = cmd.args(args).output().expect("run gcloud");
    (out.status.success(), plain(&out.stderr))
}
