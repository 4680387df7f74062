//! A service process: spawned in its own process group with its output in a log file, so
//! that stopping it (or reaping it after a killed run) takes every child with it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::process::{Child, Command};

use crate::error::{Error, IoContext};

/// Makes the command that starts a service again on the same port and data.
pub type Respawn = Arc<dyn Fn() -> Command + Send + Sync>;

pub struct ServiceProcess {
    pub name: &'static str,
    pub pid: u32,
    pub log: PathBuf,
    stop_signal: Signal,
    child: Option<Child>,
    respawn: Option<Respawn>,
}

impl std::fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl ServiceProcess {
    /// Spawns `respawn()` and keeps `respawn` for the `start` and `restart` faults.
    pub fn spawn_with(
        name: &'static str,
        respawn: Respawn,
        log: &Path,
        stop_signal: Signal,
    ) -> Result<Self, Error> {
        let mut process = Self::spawn(name, respawn(), log, stop_signal)?;
        process.respawn = Some(respawn);
        Ok(process)
    }

    pub fn spawn(
        name: &'static str,
        cmd: Command,
        log: &Path,
        stop_signal: Signal,
    ) -> Result<Self, Error> {
        let out = crate::home::create_private_file(log)?;
        let (pid, child) = Self::launch(name, cmd, out)?;
        Ok(Self {
            name,
            pid,
            log: log.to_owned(),
            stop_signal,
            child: Some(child),
            respawn: None,
        })
    }

    fn launch(name: &'static str, mut cmd: Command, out: fs::File) -> Result<(u32, Child), Error> {
        let err = out.try_clone().ctx(|| "dup log".to_owned())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(false);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().ctx(|| format!("start {name} (`{program}`)"))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::Other(format!("{name} exited before its pid was read")))?;
        Ok((pid, child))
    }

    /// Injects a process fault. `Start` and `Restart` spawn the service again (its output
    /// is appended to the same log); the caller waits for readiness.
    pub async fn fault(&mut self, fault: crate::stack::Fault) -> Result<(), Error> {
        use crate::stack::Fault;
        let group = Pid::from_raw(self.pid as i32);
        let signal = |sig| {
            killpg(group, sig)
                .map_err(|e| Error::Other(format!("{} {}: {e}", fault.name(), self.name)))
        };
        // Some services' children leave the group (every Postgres backend calls setsid()),
        // so a freeze reaches the whole process tree, not just the group.
        let below = descendants(self.pid);
        let each = |sig| {
            for pid in &below {
                let _ = nix::sys::signal::kill(Pid::from_raw(*pid as i32), sig);
            }
        };
        match fault {
            Fault::Pause => {
                // The parent first, so it starts no new child meanwhile.
                signal(Signal::SIGSTOP)?;
                each(Signal::SIGSTOP);
                Ok(())
            }
            Fault::Unpause => {
                each(Signal::SIGCONT);
                signal(Signal::SIGCONT)
            }
            Fault::Stop => {
                self.stop(Duration::from_secs(5)).await;
                Ok(())
            }
            Fault::Kill => {
                // The group only: the server dies at once, and its children, which notice,
                // end as they do when it crashes (killing them too could lose commits that
                // the stack's `synchronous_commit=off` has not written yet).
                signal(Signal::SIGKILL)?;
                if let Some(child) = self.child.as_mut() {
                    let _ = child.wait().await;
                }
                self.child = None;
                // They hold the server's shared memory until they are gone, and a start
                // meanwhile is refused ("pre-existing shared memory block is still in use").
                gone(&below, Duration::from_secs(10)).await;
                Ok(())
            }
            Fault::Start => self.respawn(),
            Fault::Restart => {
                self.stop(Duration::from_secs(5)).await;
                self.respawn()
            }
        }
    }

    fn respawn(&mut self) -> Result<(), Error> {
        if self.child.is_some() && self.exited().is_none() {
            return Err(Error::Other(format!(
                "start {}: it is still running (stop or kill it first)",
                self.name
            )));
        }
        let make = self
            .respawn
            .clone()
            .ok_or_else(|| Error::Other(format!("start {}: it cannot be restarted", self.name)))?;
        let out = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .ctx(|| format!("open {}", self.log.display()))?;
        let (pid, child) = Self::launch(self.name, make(), out)?;
        self.pid = pid;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process has exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Stops the whole process group: the service's stop signal, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let group = Pid::from_raw(self.pid as i32);
        if killpg(group, self.stop_signal).is_ok()
            && tokio::time::timeout(grace, child.wait()).await.is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
        }
        let _ = child.wait().await;
        // Anything the service forked that outlived it goes too.
        let _ = killpg(group, Signal::SIGKILL);
        self.child = None;
    }

    /// Leaves the process running (a detached stack).
    pub fn forget(&mut self) {
        self.child = None;
    }

    /// Best-effort synchronous kill, for `Drop`.
    pub fn kill_now(&mut self) {
        if self.child.is_some() {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
    }
}

/// Kills a process group when dropped: a child whose future is cancelled (a step timeout,
/// Ctrl-C) or that has exited takes everything it started with it.
/// With [`GroupGuard::recorded`], the group is also in the run's record while it lives, so
/// a killed run's groups are found by the reaper.
#[derive(Debug)]
pub struct GroupGuard {
    pgid: Option<u32>,
    groups: Option<crate::stack::records::Groups>,
}

impl GroupGuard {
    /// Guards the group led by `pid` (a child spawned with `process_group(0)`).
    pub fn new(pid: Option<u32>) -> Self {
        GroupGuard {
            pgid: pid.filter(|p| *p != 0),
            groups: None,
        }
    }

    /// Records the group in `groups` until the guard goes.
    pub fn recorded(mut self, groups: Option<crate::stack::records::Groups>, name: &str) -> Self {
        if let (Some(g), Some(pgid)) = (&groups, self.pgid) {
            g.add(name, pgid);
        }
        self.groups = groups;
        self
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
            if let Some(groups) = &self.groups {
                groups.remove(pgid);
            }
        }
    }
}

impl Drop for ServiceProcess {
    /// A service that is dropped while running (a start that was cancelled halfway, a
    /// panic) is killed with its group; [`ServiceProcess::forget`] leaves it running.
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.split_whitespace().next() != Some("Z"))
    })
}

/// Whether any process of group `pgid` is alive. A zombie is not: it is dead and waits
/// only for its parent (or init, for an orphan) to collect it.
pub fn group_alive(pgid: u32) -> bool {
    if killpg(Pid::from_raw(pgid as i32), None).is_err() {
        return false;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return true;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // After the command's closing parenthesis: state, ppid, pgrp, ...
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest)
                .unwrap_or("")
                .split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1);
            state != Some("Z") && pgrp == Some(pgid.to_string().as_str())
        })
}

/// Signals a process group and waits up to `grace` for it to go before SIGKILL.
pub async fn stop_group(pgid: u32, signal: Signal, grace: Duration) {
    let group = Pid::from_raw(pgid as i32);
    if killpg(group, signal).is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
    // Return only once the group is gone, so a caller that checks right after sees it gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl crate::stack::readiness::Watch for ServiceProcess {
    fn name(&self) -> &str {
        self.name
    }
    fn log(&self) -> &Path {
        &self.log
    }
    fn exited(&mut self) -> Option<String> {
        ServiceProcess::exited(self)
    }
}

/// Waits for every condition in order, failing early when the process exits. A service
/// that does not become ready is stopped before the error is returned.
pub async fn wait_ready(
    process: &mut ServiceProcess,
    conditions: &[crate::stack::readiness::WaitFor],
    timeout: Duration,
) -> Result<(), Error> {
    let result = crate::stack::readiness::wait_all(process, conditions, timeout).await;
    if result.is_err() {
        process.stop(Duration::from_secs(2)).await;
    }
    result
}

/// Waits until none of `pids` is [`alive`], for at most `limit`.
async fn gone(pids: &[u32], limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every process below `pid` (children, their children, …), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `PID (COMM) STATE PPID …`; COMM may hold spaces and parentheses.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            if !out.contains(child) {
                out.push(*child);
                frontier.push(*child);
            }
        }
    }
    out
}
