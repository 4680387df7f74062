//! Run records and the reaper. Every stack writes `$HARNESS_HOME/runs/<run-id>.json` before
//! it creates anything, and updates it as each service starts. On the next start, the
//! reaper removes whatever a run whose owner died (SIGKILL, a crash) left behind: its
//! service process groups, any process whose command line names its folder, its containers
//! and their volumes (found by the run's label), and the folder.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{Endpoints, ProviderKind, docker, native::process};
use crate::{
    error::{Error, IoContext},
    home,
};

/// What a run left on the machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub owner_pid: u32,
    /// The owner's start time in clock ticks, so a recycled pid is not taken for the owner.
    pub owner_start: u64,
    pub detached: bool,
    pub run_dir: PathBuf,
    /// Process-group ids of the services, by name (native provider).
    pub services: Vec<(String, u32)>,
    /// Which provider started the services.
    #[serde(default)]
    pub provider: ProviderKind,
    /// Container ids of the services, by name (Docker provider).
    #[serde(default)]
    pub containers: Vec<(String, String)>,
    pub endpoints: Endpoints,
}

impl RunRecord {
    pub fn path(run_id: &str) -> PathBuf {
        home::runs_dir().join(format!("{run_id}.json"))
    }

    pub fn save(&self) -> Result<(), Error> {
        let dir = home::runs_dir();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let path = Self::path(&self.run_id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        fs::write(&tmp, json).ctx(|| format!("write {}", tmp.display()))?;
        set_private(&tmp);
        fs::rename(&tmp, &path).ctx(|| format!("write {}", path.display()))
    }

    pub fn load_all() -> Vec<RunRecord> {
        let Ok(entries) = fs::read_dir(home::runs_dir()) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Whether the process that started this run is still alive.
    pub fn owner_alive(&self) -> bool {
        start_ticks(self.owner_pid) == Some(self.owner_start)
    }

    /// Whether any of its services still runs (for an external stack: still answers).
    pub async fn alive(&self) -> bool {
        match self.provider {
            ProviderKind::Native => self
                .services
                .iter()
                .any(|(_, pgid)| process::group_alive(*pgid)),
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
        for (_, pgid) in &self.services {
            process::stop_group(*pgid, Signal::SIGTERM, Duration::from_secs(5)).await;
        }
        // Whatever the groups did not cover (a process that left its group) goes by name.
        for pid in processes_naming(&self.run_dir) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = fs::remove_dir_all(&self.run_dir);
        let _ = fs::remove_file(Self::path(&self.run_id));
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}

/// A process's start time (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

/// Pids of processes whose command line mentions `dir`.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes what runs of dead owners left behind; returns the reaped run ids.
pub async fn reap() -> Vec<String> {
    let mut reaped = Vec::new();
    for record in RunRecord::load_all() {
        let orphan = if record.detached {
            // An external stack that stops answering is someone else's to restart.
            record.provider != ProviderKind::External && !record.alive().await
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
