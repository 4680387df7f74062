//! A service process: spawned in its own process group with its output in a log file, so
//! that stopping it (or reaping it after a killed run) takes every child with it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::process::{Child, Command};

use crate::error::{Error, IoContext};

#[derive(Debug)]
pub struct ServiceProcess {
    pub name: &'static str,
    pub pid: u32,
    pub log: PathBuf,
    stop_signal: Signal,
    child: Option<Child>,
}

impl ServiceProcess {
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        stop_signal: Signal,
    ) -> Result<Self, Error> {
        let out = fs::File::create(log).ctx(|| format!("create {}", log.display()))?;
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
        Ok(Self {
            name,
            pid,
            log: log.to_owned(),
            stop_signal,
            child: Some(child),
        })
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

/// Whether any process of group `pgid` is alive.
pub fn group_alive(pgid: u32) -> bool {
    killpg(Pid::from_raw(pgid as i32), None).is_ok()
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
