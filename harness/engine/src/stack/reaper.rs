//! The reaper: on every start, removes whatever runs whose owner died (SIGKILL, a crash)
//! left behind: their process groups (only while a group's leader still has the recorded
//! start time), any process whose arguments (or `HARNESS_RUN_DIR`) name their folder, their containers
//! and volumes (found by the run's label), and the folder (only a run folder of this
//! user's run root).

use std::{fs, path::Path, time::Duration};

use nix::sys::signal::Signal;

use super::{
    ProviderKind, docker,
    native::process,
    records::{RUN_DIR_ENV, RunRecord},
};

impl RunRecord {
    /// Whether any of its services still runs (for an external stack: still answers).
    pub async fn alive(&self) -> bool {
        match self.provider {
            ProviderKind::Native => self
                .services
                .iter()
                .any(|g| g.is_ours() && process::group_alive(g.pgid)),
            ProviderKind::Docker => docker::run_alive(&self.run_id).await,
            ProviderKind::External => super::external::answers(&self.endpoints).await,
        }
    }

    /// Stops everything of this run and removes its folder and record. An external stack
    /// belongs to someone else: only harness's record of it goes.
    pub async fn tear_down(&self) {
        if self.provider == ProviderKind::External {
            let _ = fs::remove_file(Self::path(&self.run_id));
            return;
        }
        if self.provider == ProviderKind::Docker && docker::remove_run(&self.run_id).await.is_err()
        {
            // Without the engine the containers cannot go yet; keep the record so that a
            // later start retries (containers without a record are swept by label too).
            return;
        }
        for group in self.services.iter().filter(|g| g.is_ours()) {
            // The folder, and the data in it, goes below: Neo4j's clean shutdown would
            // keep nothing (see `Running::stop`).
            let (signal, grace) = if group.name == super::ServiceKind::Neo4j.name() {
                (Signal::SIGKILL, Duration::ZERO)
            } else {
                (Signal::SIGTERM, Duration::from_secs(5))
            };
            process::stop_group(group.pgid, signal, grace).await;
        }
        // A record names its folder; only a folder of harness's own run root is touched.
        if let Some(dir) = self.owned_run_dir() {
            // Whatever the groups did not cover (a process that left its group) goes by
            // the folder its command line names.
            // A few rounds: a process that forked just before it was killed leaves a child
            // that the next look finds (it inherited the marker).
            for _ in 0..5 {
                let named = processes_naming(dir);
                if named.is_empty() {
                    break;
                }
                for pid in &named {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid as i32),
                        Signal::SIGKILL,
                    );
                }
                // Go on once they are gone, so whoever checks right after sees them gone.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while named.iter().any(|pid| process::alive(*pid))
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = fs::remove_dir_all(dir);
        }
        let _ = fs::remove_file(Self::path(&self.run_id));
    }
}

/// Pids of processes one of whose arguments is `dir` or a path inside it.
/// Also processes whose environment holds `HARNESS_RUN_DIR=<dir>`: harness gives it to
/// the scenario processes and `exec` commands of a run, and every descendant inherits it,
/// so a command killed before its group was recorded is still found.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy().into_owned();
    if dir.len() < 2 {
        return Vec::new();
    }
    let inside = format!("{dir}/");
    let marker = format!("{RUN_DIR_ENV}={dir}");
    let names = |cmdline: &[u8]| {
        cmdline.split(|b| *b == 0).any(|arg| {
            let arg = String::from_utf8_lossy(arg);
            arg == dir || arg.contains(&inside)
        })
    };
    let marked = |environ: &[u8]| {
        environ
            .split(|b| *b == 0)
            .any(|entry| entry == marker.as_bytes())
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| names(&c))
                || fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| marked(&e))
        })
        .collect()
}

/// Removes what runs of dead owners left behind; returns the reaped run ids.
pub async fn reap() -> Vec<String> {
    let mut reaped = Vec::new();
    for record in RunRecord::load_all() {
        let orphan = if record.detached {
            // An external stack that stops answering is someone else's to restart; a leased
            // one goes with its holder.
            record.lease.is_some_and(|l| !l.held())
                || (record.provider != ProviderKind::External && !record.alive().await)
        } else {
            !record.owner_alive()
        };
        if orphan {
            record.tear_down().await;
            reaped.push(record.run_id.clone());
        }
    }
    reaped
}
