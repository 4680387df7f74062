//! Where harness keeps its files: `$HARNESS_HOME` (default `~/.cache/harness`) holds the
//! installed runtimes and the records of running stacks; service data lives in a per-run
//! directory under the system temp directory.

use std::path::PathBuf;

/// The harness home directory.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("harness");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("harness")
}

/// Installed runtimes, one folder per `<runtime>-<version>`.
pub fn runtimes_dir() -> PathBuf {
    home().join("runtimes")
}

/// Records of stacks started by any harness process on this machine.
pub fn runs_dir() -> PathBuf {
    home().join("runs")
}

/// Parent of every run's service directories: `$HARNESS_RUN_ROOT`, else `/dev/shm` where it
/// exists (service data in memory makes the Postgres data-directory copy about 2.5x faster),
/// else the temp directory. It is never under a private home, so that a service running as
/// an unprivileged user can reach its own folder.
pub fn run_data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_RUN_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.join("harness-runs");
    }
    std::env::temp_dir().join("harness-runs")
}
