//! The local processes a scenario declares (usually the service under test): built with
//! cargo when asked, started with a free port in `PORT`, waited for, and stopped with
//! SIGTERM then SIGKILL when the scenario ends.
//!
//! Each process runs in its own process group with a parent-death signal, so a harness that
//! is killed takes its processes with it.
//!
//! On a stack of the Docker provider, a `cargo:` package that has an image (the sample
//! platform's `sample-api` and `sample-ingest`) runs as a container instead, from an image
//! built once per run from the freshly built binary, on the host network and labelled with
//! the stack's run so that the reaper removes it with the stack.

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
use crate::{
    home,
    stack::{ports::free_port, records::Groups},
};

/// Default time a process has to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Binaries built for this run, by (workspace folder, package).
#[derive(Default)]
pub struct Builds {
    built: Mutex<HashMap<(PathBuf, String), PathBuf>>,
    /// Prebuilt binaries to use instead of building (`HARNESS_BIN_DIR`).
    bin_dir: Option<PathBuf>,
    /// The run id of a Docker-provider stack: packages with an image run as containers.
    containers: Option<String>,
    images: Mutex<HashMap<String, String>>,
}

impl Builds {
    pub fn new(bin_dir: Option<PathBuf>) -> Self {
        Builds {
            bin_dir,
            ..Builds::default()
        }
    }

    /// The run id that containers of this run are labelled with, on a Docker-provider stack.
    pub fn container_run(&self) -> Option<&str> {
        self.containers.as_deref()
    }

    /// Runs packages that have an image as containers labelled with `run_id`.
    pub fn in_containers(mut self, run_id: Option<String>) -> Self {
        self.containers = run_id;
        self
    }

    /// The image a `cargo:` package runs from on a Docker-provider stack, built once per
    /// run from the package's fresh binary (rebuilt only when the binary changed); `None`
    /// when the package runs as a host process.
    pub async fn image(&self, dir: &Path, package: &str) -> Result<Option<String>, StepError> {
        use crate::stack::docker::{build, images};
        if self.containers.is_none() {
            return Ok(None);
        }
        let Some(spec) = images::ALL
            .into_iter()
            .find(|s| s.name == package && s.name.starts_with("sample-"))
        else {
            return Ok(None);
        };
        if let images::Choice::Explicit(image) = spec.choice(None) {
            return Ok(Some(image));
        }
        let mut built = self.images.lock().await;
        if let Some(image) = built.get(package) {
            return Ok(Some(image.clone()));
        }
        let binary = self.binary(dir, package).await?;
        let options = build::BuildOptions {
            docker_dir: build::default_docker_dir(),
            only: Vec::new(),
            app_binaries: vec![(spec, binary)],
            force: false,
        };
        build::build(options, &crate::progress::silent())
            .await
            .map_err(|e| StepError::error(format!("build the image of {package}: {e}")))?;
        built.insert(package.to_owned(), spec.local.to_owned());
        Ok(Some(spec.local.to_owned()))
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
        let build = tokio::process::Command::new(&cargo)
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
            .kill_on_drop(true)
            .output();
        let limit = build_timeout();
        let out = tokio::time::timeout(limit, build)
            .await
            .map_err(|_| {
                StepError::error(format!(
                    "building {package} took longer than {limit:?} (HARNESS_BUILD_TIMEOUT_SECS)"
                ))
            })?
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

/// How long one `cargo build` of a scenario's package may take: `HARNESS_BUILD_TIMEOUT_SECS`,
/// else 30 minutes (a first build of a large workspace on a small machine).
fn build_timeout() -> Duration {
    let secs = std::env::var("HARNESS_BUILD_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(30 * 60))
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
    handle: Handle,
    groups: Option<Groups>,
}

/// A host process, or a container with the flag its log stream sets when it stops.
enum Handle {
    Child(tokio::process::Child),
    Container(
        Option<Box<testcontainers::ContainerAsync<testcontainers::GenericImage>>>,
        Arc<std::sync::atomic::AtomicBool>,
    ),
}

impl Running {
    /// Whether it has exited, with its status.
    fn exited(&mut self) -> Option<String> {
        match &mut self.handle {
            Handle::Child(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                _ => None,
            },
            Handle::Container(_, ended) => ended
                .load(std::sync::atomic::Ordering::SeqCst)
                .then(|| "its container stopped".to_owned()),
        }
    }
}

impl Running {
    /// The last lines the process wrote.
    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 15)
    }
}

/// What each process wrote last, for the report of a failed step: its name, where its
/// whole log is (or will be kept), and its tail.
pub fn log_notes(procs: &[Running], kept_in: Option<&Path>) -> String {
    let mut out = String::new();
    for p in procs {
        let tail = p.log_tail();
        let whole = match kept_in {
            Some(dir) => format!(
                "whole log kept in {}",
                dir.join(format!("{}.log", p.name)).display()
            ),
            None => "`--keep` keeps the whole log".into(),
        };
        out.push_str(&format!(
            "\n\nprocess `{}`, its last lines ({whole}):\n",
            p.name
        ));
        if tail.trim().is_empty() {
            out.push_str("    (it wrote nothing)");
        } else {
            out.push_str(
                &tail
                    .lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }
    out
}

/// Starts every process in order, each waited for before the next.
pub async fn start(ctx: &mut Ctx, procs: &[Process]) -> Result<Vec<Running>, (String, StepError)> {
    let mut out = Vec::new();
    for p in procs {
        match start_one(ctx, p).await {
            Ok(r) => {
                ctx.processes.insert(p.name.clone(), r.port);
                let fronted = match &ctx.faults {
                    Some(f) if ctx.scenario.fault_processes.contains(&p.name) => {
                        f.front("processes", &p.name, r.port).await.map(drop)
                    }
                    _ => Ok(()),
                };
                out.push(r);
                if let Err(e) = fronted {
                    stop(out, None).await;
                    return Err((p.name.clone(), StepError::error(e)));
                }
            }
            Err(e) => {
                stop(out, None).await;
                // The folder holds the log of the process that failed; its tail is in the
                // error already.
                let _ = std::fs::remove_dir_all(log_dir(ctx));
                return Err((p.name.clone(), e));
            }
        }
    }
    Ok(out)
}

async fn start_one(ctx: &mut Ctx, p: &Process) -> Result<Running, StepError> {
    start_on(ctx, p, None).await
}

/// `start` or `restart` of a scenario process (a `fault` step): stops it first unless it
/// has exited (`start` requires that), then starts it again with the same command and
/// environment, on the same port, and waits until it is ready. The log of the run before
/// is kept beside the new one as `NAME.before.log`.
pub async fn start_again(ctx: &mut Ctx, name: &str, restart: bool) -> Result<(), StepError> {
    let Some(index) = ctx.running.iter().position(|r| r.name == name) else {
        return Err(StepError::error(format!(
            "process `{name}` is not running in this scenario"
        )));
    };
    let spec = ctx
        .scenario
        .processes
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| StepError::error(format!("no process `{name}` in this scenario")))?;
    let mut old = ctx.running.remove(index);
    let exited = old.exited().is_some();
    if !restart && !exited {
        ctx.running.insert(index, old);
        return Err(StepError::error(format!(
            "start process {name}: it is still running (stop or kill it first)"
        )));
    }
    stop_one(&mut old).await;
    let _ = std::fs::rename(&old.log, old.log.with_extension("before.log"));
    let port = old.port;
    match start_on(ctx, &spec, Some(port)).await {
        Ok(fresh) => {
            ctx.running.insert(index, fresh);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn start_on(ctx: &mut Ctx, p: &Process, fixed: Option<u16>) -> Result<Running, StepError> {
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
    let port = match fixed {
        Some(port) => port,
        None => free_port().map_err(|e| StepError::error(e.to_string()))?,
    };
    let mut env = Vec::new();
    for (k, v) in &p.env {
        env.push((k.clone(), ctx.render_str(v)?));
    }
    if !p.env.contains_key("PORT") {
        env.push(("PORT".into(), port.to_string()));
    }
    let port = env
        .iter()
        .find(|(k, _)| k == "PORT")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(port);
    let dir = log_dir(ctx);
    std::fs::create_dir_all(&dir)
        .map_err(|e| StepError::error(format!("create {}: {e}", dir.display())))?;
    let log = dir.join(format!("{}.log", p.name));
    let image = match p.cargo.as_deref() {
        Some(package) => {
            let builds = Arc::clone(&ctx.builds);
            builds.image(&ctx.dir, package).await.map_err(at)?
        }
        None => None,
    };
    let handle = match image {
        Some(image) => start_container(ctx, p, &image, &env, &log)
            .await
            .map_err(at)?,
        None => {
            let mut cmd = program(ctx, p.cargo.as_deref(), p.command.as_ref(), &p.args)
                .await
                .map_err(at)?;
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            if let Some(groups) = &ctx.groups {
                cmd.env(crate::stack::records::RUN_DIR_ENV, groups.run_dir());
            }
            Handle::Child(spawn(cmd, p, &ctx.dir, &log).map_err(at)?)
        }
    };
    let pgid = match &handle {
        Handle::Child(child) => child.id().unwrap_or_default(),
        Handle::Container(..) => 0,
    };
    if let (Some(groups), true) = (&ctx.groups, pgid != 0) {
        groups.add(&format!("process:{}", p.name), pgid);
    }
    if pgid != 0 {
        ctx.process_groups.insert(p.name.clone(), pgid);
    }
    let mut running = Running {
        name: p.name.clone(),
        port,
        pgid,
        log,
        handle,
        groups: ctx.groups.clone(),
    };
    wait_ready(ctx, p, &mut running, port).await?;
    Ok(running)
}

/// The folder of a scenario's process logs: in the run's own folder, which the reaper
/// removes if the run is killed.
fn log_dir(ctx: &Ctx) -> PathBuf {
    let parent = match &ctx.groups {
        Some(groups) => groups.run_dir(),
        None => home::run_data_root(),
    };
    parent.join(format!("proc-{}", ctx.iso.id))
}

/// Spawns a host process in its own process group, its output in `log`.
fn spawn(
    mut cmd: tokio::process::Command,
    p: &Process,
    dir: &Path,
    log: &Path,
) -> Result<tokio::process::Child, StepError> {
    let file =
        crate::home::create_private_file(log).map_err(|e| StepError::error(e.to_string()))?;
    let file2 = file
        .try_clone()
        .map_err(|e| StepError::error(format!("open {}: {e}", log.display())))?;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .process_group(0);
    parent_death_signal(&mut cmd);
    cmd.spawn()
        .map_err(|e| StepError::error(format!("could not start process `{}`: {e}", p.name)))
}

/// Starts a process's container on the host network, with its output followed into `log`.
async fn start_container(
    ctx: &mut Ctx,
    p: &Process,
    image: &str,
    env: &[(String, String)],
    log: &Path,
) -> Result<Handle, StepError> {
    use testcontainers::runners::AsyncRunner;

    use crate::stack::docker;
    let run_id = ctx.builds.containers.clone().unwrap_or_default();
    let mut args = Vec::new();
    for a in &p.args {
        args.push(ctx.render_str(a)?);
    }
    let request = docker::labelled_request(
        image,
        &run_id,
        &format!("process:{}", p.name),
        args,
        env.to_vec(),
    );
    let container = request.start().await.map_err(|e| {
        StepError::error(format!(
            "could not start process `{}` from {image}: {e}",
            p.name
        ))
    })?;
    let ended = docker::follow_logs(&container, log, false)
        .await
        .map_err(|e| StepError::error(e.to_string()))?;
    Ok(Handle::Container(Some(Box::new(container)), ended))
}

/// Waits for a started process's readiness condition; a process that exits or is not ready
/// in time is stopped, and the error carries its last output.
async fn wait_ready(
    ctx: &mut Ctx,
    p: &Process,
    running: &mut Running,
    port: u16,
) -> Result<(), StepError> {
    let timeout = p.timeout.map_or(READY_TIMEOUT, |d| d.0);
    let deadline = tokio::time::Instant::now() + timeout;
    let ready = p.ready.clone().unwrap_or(Ready::Tcp(true));
    loop {
        if let Some(status) = running.exited() {
            let message = format!(
                "process `{}` exited during start-up ({status}); its last output:\n{}",
                p.name,
                running.log_tail()
            );
            stop_one(running).await;
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
            Ready::Log(text) => tokio::fs::read_to_string(&running.log)
                .await
                .is_ok_and(|l| l.contains(text.as_str())),
            Ready::Http(path) => ctx
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
        };
        if is_ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let message = format!(
                "process `{}` was not ready after {timeout:?} ({ready:?}); its last output:\n{}",
                p.name,
                running.log_tail()
            );
            stop_one(running).await;
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

/// Stops one process (SIGTERM, then SIGKILL after 5 s; a container is stopped the same
/// way, then removed).
async fn stop_one(p: &mut Running) {
    match &mut p.handle {
        Handle::Child(child) => {
            if p.pgid != 0 {
                let group = Pid::from_raw(p.pgid as i32);
                let _ = killpg(group, Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(5), child.wait())
                    .await
                    .is_err()
                {
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = child.wait().await;
                }
                // Whatever the process left in its group goes too.
                let _ = killpg(group, Signal::SIGKILL);
                if let Some(groups) = &p.groups {
                    groups.remove(p.pgid);
                }
                p.pgid = 0;
            }
        }
        Handle::Container(container, _) => {
            if let Some(container) = container.take() {
                let _ = container.stop_with_timeout(Some(5)).await;
                let _ = container.rm().await;
            }
        }
    }
}

impl Drop for Running {
    /// A scenario that is cancelled or panics drops its processes without `stop`: the
    /// group is killed and its log folder removed, so nothing outlives the run. (A
    /// container is removed by its own drop.)
    fn drop(&mut self) {
        if self.pgid != 0 {
            let _ = killpg(Pid::from_raw(self.pgid as i32), Signal::SIGKILL);
            if let Some(groups) = &self.groups {
                groups.remove(self.pgid);
            }
            if let Some(d) = self.log.parent() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

/// Stops processes and removes their logs; with `keep_in`, each log is first copied there
/// as `NAME.log` (private to this user).
pub async fn stop(procs: Vec<Running>, keep_in: Option<&Path>) {
    let mut dirs = Vec::new();
    let keep_in = keep_in.filter(|_| !procs.is_empty());
    if let Some(dir) = keep_in {
        // `$HARNESS_HOME/kept` and the scenario's folder in it, both private.
        if let Some(kept) = dir.parent() {
            let _ = crate::home::ensure_private(kept, 0o700);
        }
        let _ = crate::home::ensure_private(dir, 0o700);
    }
    for mut p in procs {
        stop_one(&mut p).await;
        if let Some(dir) = keep_in {
            let kept = dir.join(format!("{}.log", p.name));
            if let Ok(mut out) = crate::home::create_private_file(&kept)
                && let Ok(mut log) = std::fs::File::open(&p.log)
            {
                let _ = std::io::copy(&mut log, &mut out);
            }
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
pub(crate) fn parent_death_signal(cmd: &mut tokio::process::Command) {
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
