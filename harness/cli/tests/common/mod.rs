//! Helpers shared by the CLI test binaries.

#![allow(dead_code)] // each test binary uses its own part of it

pub mod cloud_run;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// The harness binary under test. The sample apps this test run built sit beside it, so
/// `cargo:` processes use them instead of building again.
pub fn harness() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    if let Some(dir) = Path::new(env!("CARGO_BIN_EXE_harness")).parent() {
        cmd.env("HARNESS_BIN_DIR", dir);
    }
    cmd
}

/// Waits until a run owned by `owner` in `home` has a record for which `done` holds, and
/// returns that record.
pub fn wait_for_run(
    home: &Path,
    owner: u32,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..1200 {
        let found = std::fs::read_dir(home.join("runs"))
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
            .find(|r| done(r));
        if let Some(record) = found {
            return record;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {owner} never recorded {what}");
}

/// Stops a detached stack when dropped, so a test that fails half-way leaves no stack
/// behind (once the test has stopped it itself, this finds nothing to stop).
pub struct DownOnDrop(pub String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = harness().args(["down", &self.0]).output();
    }
}

/// `HARNESS_HOME`, or its default.
pub fn harness_home() -> PathBuf {
    std::env::var_os("HARNESS_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/harness")
        })
}

/// Whether `pid` runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}
