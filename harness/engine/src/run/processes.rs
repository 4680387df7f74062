//! The local processes a scenario declares (usually the service under test): built with
//! cargo when asked, started with a free port in `PORT`, waited for, and stopped with
//! SIGTERM then SIGKILL when the scenario ends.
//!
//! Each process runs in its own process group with a parent-death signal, so a harness that
//! is killed takes its processes with it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use harness_scenario::{Command, Process, Ready};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::sync::Mutex;

use super::{context::Ctx, steps::StepError};
use crate::{home, stack::ports::free_port};

/// Default time a process has to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Binaries built for this run, by (workspace folder, package).
#[derive(Default)]
pub struct Builds {
    built: Mutex<HashMap<(PathBuf, String), PathBuf>>,
    /// Prebuilt binaries to use instead of building (`HARNESS_BIN_DIR`).
    bin_dir: Option<PathBuf>,
}

impl Builds {
    pub fn new(bin_dir: Option<PathBuf>) -> Self {
        Builds {
            built: Mutex::default(),
            bin_dir,
        }
    }

    /// Builds `package`'s binary of the same name in the Cargo workspace around `dir`, once,
    /// unless the prebuilt folder already has it.
    pub async fn binary(&self, dir: &Path, package: &str) -> Result<PathBuf, StepError> {
        if let Some(prebuilt) = self.bin_dir.as_ref().map(|d| d.join(package))
            && prebuilt.is_file()
        {
            return Ok(prebuilt);
        }
        let mut built = self.built.lock().await;
        let key = (dir.to_path_buf(), package.to_owned());
        if let Some(path) = built.get(&key) {
            return Ok(path.clone());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = tokio::process::Command::new(&cargo)
            .args([
                "build",
                "-q",
                "-p",
                package,
                "--bin",
                package,
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                StepError::error(format!("could not run `{cargo} build` for {package}: {e}"))
            })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(StepError::error(format!(
                "building {package} failed:\n{}",
                tail(&err, 20)
            )));
        }
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == package)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| StepError::error(format!("cargo built no `{package}` binary")))?;
        built.insert(key, path.clone());
        Ok(path)
    }
}

/// The command for `cargo: PACKAGE` (built once per run) or `command` (a string through
/// `sh -c`, or an argv), with `args` after it. Shared by processes and `exec` steps.
pub async fn program(
    ctx: &mut Ctx,
    cargo: Option<&str>,
    command: Option<&Command>,
    args: &[String],
) -> Result<tokio::process::Command, StepError> {
    let mut cmd = match (cargo, command) {
        (Some(package), _) => {
            let builds = Arc::clone(&ctx.builds);
            let bin = builds.binary(&ctx.dir, package).await?;
            tokio::process::Command::new(bin)
        }
        (None, Some(Command::Shell(line))) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(ctx.render_str(line)?);
            c
        }
        (None, Some(Command::Argv(argv))) => {
            let mut rendered = Vec::new();
            for a in argv {
                rendered.push(ctx.render_str(a)?);
            }
            let mut c = tokio::process::Command::new(&rendered[0]);
            c.args(&rendered[1..]);
            c
        }
        (None, None) => return Err(StepError::error("no program: set `cargo` or `command`")),
    };
    for a in args {
        cmd.arg(ctx.render_str(a)?);
    }
    Ok(cmd)
}

/// A started process.
pub struct Running {
    pub name: String,
    pub port: u16,
    pgid: u32,
    log: PathBuf,
    child: tokio::process::Child,
}

impl Running {
    /// The last lines the process wrote.
    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 15)
    }
}

/// Starts every process in order, each waited for before the next.
pub async fn start(ctx: &mut Ctx, procs: &[Process]) -> Result<Vec<Running>, (String, StepError)> {
    let mut out = Vec::new();
    for p in procs {
        match start_one(ctx, p).await {
            Ok(r) => {
                ctx.processes.insert(p.name.clone(), r.port);
                out.push(r);
            }
            Err(e) => {
                stop(out).await;
                return Err((p.name.clone(), e));
            }
        }
    }
    Ok(out)
}

async fn start_one(ctx: &mut Ctx, p: &Process) -> Result<Running, StepError> {
    let at = |e: StepError| match e {
        StepError::Error {
            message,
            span: None,
        } => StepError::Error {
            message,
            span: Some(p.span),
        },
        other => other,
    };
    let mut cmd = program(ctx, p.cargo.as_deref(), p.command.as_ref(), &p.args)
        .await
        .map_err(at)?;
    let port = free_port().map_err(|e| StepError::error(e.to_string()))?;
    let mut env = Vec::new();
    for (k, v) in &p.env {
        env.push((k.clone(), ctx.render_str(v)?));
    }
    if !p.env.contains_key("PORT") {
        cmd.env("PORT", port.to_string());
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let port = env
        .iter()
        .find(|(k, _)| k == "PORT")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(port);
    let dir = home::run_data_root().join(format!("proc-{}", ctx.iso.id));
    std::fs::create_dir_all(&dir)
        .map_err(|e| StepError::error(format!("create {}: {e}", dir.display())))?;
    let log = dir.join(format!("{}.log", p.name));
    let file = std::fs::File::create(&log)
        .map_err(|e| StepError::error(format!("create {}: {e}", log.display())))?;
    let file2 = file
        .try_clone()
        .map_err(|e| StepError::error(format!("open {}: {e}", log.display())))?;
    cmd.current_dir(&ctx.dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .process_group(0);
    parent_death_signal(&mut cmd);
    let child = cmd.spawn().map_err(|e| {
        at(StepError::error(format!(
            "could not start process `{}`: {e}",
            p.name
        )))
    })?;
    let pgid = child.id().unwrap_or_default();
    let mut running = Running {
        name: p.name.clone(),
        port,
        pgid,
        log,
        child,
    };
    let timeout = p.timeout.map_or(READY_TIMEOUT, |d| d.0);
    let deadline = tokio::time::Instant::now() + timeout;
    let ready = p.ready.clone().unwrap_or(Ready::Tcp(true));
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            let message = format!(
                "process `{}` exited during start-up ({status}); its last output:\n{}",
                p.name,
                running.log_tail()
            );
            stop(vec![running]).await;
            return Err(StepError::Failed {
                message,
                expected: Some("a running process".into()),
                actual: Some(format!("exited ({status})")),
                span: Some(p.span),
            });
        }
        let is_ready = match &ready {
            Ready::Tcp(_) => tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok(),
            Ready::Log(text) => {
                std::fs::read_to_string(&running.log).is_ok_and(|l| l.contains(text.as_str()))
            }
            Ready::Http(path) => ctx
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
        };
        if is_ready {
            return Ok(running);
        }
        if tokio::time::Instant::now() >= deadline {
            let message = format!(
                "process `{}` was not ready after {timeout:?} ({ready:?}); its last output:\n{}",
                p.name,
                running.log_tail()
            );
            stop(vec![running]).await;
            return Err(StepError::Failed {
                message,
                expected: Some(format!("ready within {timeout:?}")),
                actual: Some("not ready".into()),
                span: Some(p.span),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops processes (SIGTERM, then SIGKILL after 5 s) and removes their logs.
pub async fn stop(procs: Vec<Running>) {
    let mut dirs = Vec::new();
    for mut p in procs {
        if p.pgid != 0 {
            let group = Pid::from_raw(p.pgid as i32);
            let _ = killpg(group, Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(5), p.child.wait())
                .await
                .is_err()
            {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = p.child.wait().await;
            }
            // Whatever the process left in its group goes too.
            let _ = killpg(group, Signal::SIGKILL);
        }
        if let Some(d) = p.log.parent() {
            dirs.push(d.to_path_buf());
        }
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[expect(
    unsafe_code,
    reason = "pre_exec runs between fork and exec; prctl is async-signal-safe"
)]
fn parent_death_signal(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure only calls prctl(PR_SET_PDEATHSIG), which allocates nothing and
    // is async-signal-safe, as required between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
