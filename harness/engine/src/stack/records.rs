//! Run records: every stack writes `$HARNESS_HOME/runs/<run-id>.json` before it creates
//! anything, and updates it as each service starts; a run of scenarios records the process
//! groups its steps start ([`Groups`]). Plain data and its file, nothing more: the
//! [reaper](super::reaper) reads these records to clean up after killed runs.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Endpoints, ProviderKind, native::process};
use crate::{
    error::{Error, IoContext},
    home,
};

/// A service's process group, with its leader's start time: a recorded id whose process
/// now starts at another time belongs to someone else and is never signalled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessGroup {
    pub name: String,
    pub pgid: u32,
    /// Start time of the leader in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start: u64,
}

impl ProcessGroup {
    /// The group led by the live process `pid`.
    pub fn of(name: &str, pid: u32) -> Self {
        ProcessGroup {
            name: name.to_owned(),
            pgid: pid,
            start: start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether the id still names this group: its leader runs with the recorded start
    /// time, or the leader is gone and members of the group remain (Linux hands out no new
    /// process id that a live group still uses).
    pub fn is_ours(&self) -> bool {
        match start_ticks(self.pgid) {
            Some(start) => start == self.start,
            None => process::group_alive(self.pgid),
        }
    }
}

/// What a run left on the machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub owner_pid: u32,
    /// The owner's start time in clock ticks, so a recycled pid is not taken for the owner.
    pub owner_start: u64,
    pub detached: bool,
    pub run_dir: PathBuf,
    /// Process groups of the services (native provider).
    pub services: Vec<ProcessGroup>,
    /// Which provider started the services.
    #[serde(default)]
    pub provider: ProviderKind,
    /// An external stack attached with `--allow-remote`; every attach checks the guard
    /// again with this.
    #[serde(default)]
    pub allow_remote: bool,
    /// Not a stack: the record of a run of scenarios, holding the process groups of its
    /// scenario processes and `exec` commands and the folder of their logs.
    #[serde(default)]
    pub session: bool,
    /// Container ids of the services, by name (Docker provider).
    #[serde(default)]
    pub containers: Vec<(String, String)>,
    /// A detached stack held for another process (`harness up --detach --lease PID`): it is
    /// stopped when that process ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<super::lease::Lease>,
    pub endpoints: Endpoints,
}

impl RunRecord {
    pub fn path(run_id: &str) -> PathBuf {
        home::runs_dir().join(format!("{run_id}.json"))
    }

    /// Writes the record (0600, in a private folder), atomically.
    pub fn save(&self) -> Result<(), Error> {
        use std::io::Write;
        home::ensure_private(&home::home(), 0o700)?;
        home::ensure_private(&home::runs_dir(), 0o700)?;
        let path = Self::path(&self.run_id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        home::create_private_file(&tmp)?
            .write_all(&json)
            .ctx(|| format!("write {}", tmp.display()))?;
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

    /// The run's folder, if it really is a run folder: a direct child of this user's run
    /// root named after the run. A record that names anything else (`/`, an empty path, a
    /// folder elsewhere) never gets it removed.
    pub fn owned_run_dir(&self) -> Option<&Path> {
        let dir = self.run_dir.as_path();
        let root = home::run_data_root();
        let named_after_run = dir.file_name().is_some_and(|n| n == self.run_id.as_str());
        (dir.parent() == Some(root.as_path()) && named_after_run && !self.run_id.is_empty())
            .then_some(dir)
    }
}

/// The environment variable that marks every process a run of scenarios starts (and their
/// descendants) with the run's folder, for the reaper.
pub const RUN_DIR_ENV: &str = "HARNESS_RUN_DIR";

/// The process groups a run of scenarios starts (its scenario processes and `exec`
/// commands), in a record of its own: if the run is killed, the next start's reaper stops
/// them and removes the folder of their logs, as it does for a stack.
#[derive(Clone, Debug)]
pub struct Groups {
    record: std::sync::Arc<std::sync::Mutex<RunRecord>>,
}

impl Groups {
    /// Records a new run of scenarios with its own folder in the run root.
    pub fn create() -> Result<Self, Error> {
        let pid = std::process::id();
        let run_id = format!("{pid}-run-{}", crate::secret::random_id(6));
        let run_dir = home::run_root()?.join(&run_id);
        let record = RunRecord {
            run_id,
            owner_pid: pid,
            owner_start: start_ticks(pid).unwrap_or(0),
            run_dir: run_dir.clone(),
            session: true,
            ..RunRecord::default()
        };
        record.save()?;
        home::ensure_private(&run_dir, home::run_dir_mode())?;
        Ok(Groups {
            record: std::sync::Arc::new(std::sync::Mutex::new(record)),
        })
    }

    /// The run's id (the label of its containers, when it has some).
    pub fn run_id(&self) -> String {
        self.record
            .lock()
            .map(|r| r.run_id.clone())
            .unwrap_or_default()
    }

    /// Records that the run starts containers labelled with its id, so that the reaper
    /// removes them too after a run that was killed.
    pub fn with_containers(self) -> Self {
        if let Ok(mut r) = self.record.lock() {
            r.provider = ProviderKind::Docker;
            let _ = r.save();
        }
        self
    }

    /// The folder for the run's logs.
    pub fn run_dir(&self) -> PathBuf {
        self.record
            .lock()
            .map(|r| r.run_dir.clone())
            .unwrap_or_default()
    }

    /// Records the group led by the live process `pid`.
    pub fn add(&self, name: &str, pid: u32) {
        if let Ok(mut r) = self.record.lock() {
            r.services.push(ProcessGroup::of(name, pid));
            let _ = r.save();
        }
    }

    /// Forgets a group that has been stopped.
    pub fn remove(&self, pid: u32) {
        if let Ok(mut r) = self.record.lock() {
            r.services.retain(|g| g.pgid != pid);
            let _ = r.save();
        }
    }

    /// The run ended: its folder and record go.
    pub fn finish(&self) {
        if let Ok(r) = self.record.lock() {
            if let Some(dir) = r.owned_run_dir() {
                let _ = fs::remove_dir_all(dir);
            }
            let _ = fs::remove_file(RunRecord::path(&r.run_id));
        }
    }
}

/// A process's start time (field 22 of /proc/PID/stat).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}
