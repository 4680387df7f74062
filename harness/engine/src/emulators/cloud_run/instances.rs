//! The data plane: the instances of one revision as real processes, their startup and
//! liveness probes, and scaling between the revision's minimum and maximum.
//!
//! Each instance gets a free port on 127.0.0.1 in `PORT` and Cloud Run's `K_SERVICE`,
//! `K_REVISION` and `K_CONFIGURATION`, runs in its own process group with a parent-death
//! signal (so an emulator that is killed takes its instances with it), and writes its log to
//! `{log folder}/{revision}/{instance}.log`. An instance is stopped with SIGTERM and, after
//! the grace period, SIGKILL.

use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::{
    Request, Response,
    body::Incoming,
    client::conn::http1::{Connection, SendRequest},
};
use hyper_util::rt::TokioIo;
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::json;
use tokio::{net::TcpStream, sync::Notify, sync::watch};
use tokio_util::sync::CancellationToken;

use super::{
    events::Events,
    spec::{Check, Probe, RunSpec},
};

/// How long an instance has between SIGTERM and SIGKILL, as on Cloud Run.
pub const GRACE: Duration = Duration::from_secs(10);

/// How to start one instance: the argv, its folder and its environment (the image's, the
/// revision's, and the container contract's, except `PORT`).
#[derive(Clone, Debug)]
pub struct Launch {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    /// Run as a container of this local image instead (`argv` is then its command), on
    /// the host network, labelled with the run so that the reaper finds it.
    pub container: Option<Container>,
}

#[derive(Clone, Debug)]
pub struct Container {
    pub image: String,
    /// The revision's `command`, replacing the image's entrypoint when set; `Launch::argv`
    /// is then the arguments.
    pub entrypoint: Vec<String>,
    /// The run the container belongs to (the Docker provider's run label).
    pub run_id: String,
}

/// The `docker run` argv of one instance or task `name`: the environment by name only
/// (`-e NAME`, the values come from the docker CLI's own environment, so no value is on a
/// command line), `--init` so that SIGTERM reaches the program.
pub fn docker_argv(launch: &Launch, c: &Container, name: &str, extra: &[&str]) -> Vec<String> {
    use crate::stack::docker::{HOME_LABEL, RUN_LABEL, SERVICE_LABEL, home_id};
    let mut argv: Vec<String> = [
        "docker",
        "run",
        "--rm",
        "--init",
        "--network",
        "host",
        "--name",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    argv.push(name.to_owned());
    for (k, v) in [
        (RUN_LABEL, c.run_id.clone()),
        (SERVICE_LABEL, format!("cloud-run:{name}")),
        (HOME_LABEL, home_id()),
    ] {
        argv.push("--label".into());
        argv.push(format!("{k}={v}"));
    }
    for k in launch
        .env
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(extra.iter().copied())
    {
        argv.push("-e".into());
        argv.push(k.to_owned());
    }
    let mut entry = c.entrypoint.iter();
    if let Some(first) = entry.next() {
        argv.push("--entrypoint".into());
        argv.push(first.clone());
    }
    argv.push(c.image.clone());
    argv.extend(entry.cloned());
    argv.extend(launch.argv.iter().cloned());
    argv
}

/// Removes an instance's container (after its docker CLI was killed).
pub async fn remove_container(name: &str) {
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-f", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The command for one instance or task of `launch`: its own process group, a
/// parent-death signal, only the environment of the contract (and a few host variables a
/// program needs to start: `PATH`, `HOME`, locale), and its output in `log`.
pub fn command(
    launch: &Launch,
    extra: &[(&str, String)],
    log: &std::path::Path,
    container_name: Option<&str>,
) -> Result<tokio::process::Command, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let argv = match (&launch.container, container_name) {
        (Some(c), Some(name)) => {
            let names: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
            docker_argv(launch, c, name, &names)
        }
        _ => launch.argv.clone(),
    };
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(&launch.dir).env_clear();
    for k in ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    crate::run::processes::parent_death_signal(&mut cmd);
    Ok(cmd)
}

/// Why a request found no instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Unavailable {
    /// Every instance is at its concurrency and the maximum is reached.
    NoInstance,
    /// A new instance failed to start.
    StartFailed(String),
    /// The revision is being removed.
    Closed,
}

/// One running instance.
pub struct Instance {
    pub id: String,
    pub port: u16,
    pid: i32,
    inflight: AtomicUsize,
    last_used: Mutex<Instant>,
    idle_conns: Mutex<Vec<Upstream>>,
    exited: watch::Receiver<Option<String>>,
    stopping: AtomicBool,
    /// The container's name, when the instance is a container.
    container: Option<String>,
}

impl Instance {
    fn alive(&self) -> bool {
        self.exited.borrow().is_none() && !self.stopping.load(Ordering::SeqCst)
    }

    /// An idle connection to the instance, or a new one.
    pub async fn connection(&self) -> std::io::Result<Upstream> {
        loop {
            let next = self
                .idle_conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            match next {
                // Given back as its response ended: its connection may be a poll away from
                // taking the next request, and a closed one errors at once.
                Some(mut up) => {
                    if let Ok(Ok(())) =
                        tokio::time::timeout(Duration::from_millis(50), up.ready()).await
                    {
                        return Ok(up);
                    }
                }
                None => break,
            }
        }
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        Ok(Upstream {
            sender,
            conn: Some(Box::pin(conn)),
        })
    }

    /// Gives back a connection whose response has been read to its end.
    pub fn give_back(&self, up: Upstream) {
        if up.conn.is_some() && !up.sender.is_closed() {
            self.idle_conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(up);
        }
    }

    async fn wait_exit(&self, limit: Duration) -> bool {
        let mut rx = self.exited.clone();
        tokio::time::timeout(limit, rx.wait_for(Option::is_some))
            .await
            .is_ok()
    }
}

/// The half of a connection to an instance that does its I/O.
type Driver = Connection<TokioIo<TcpStream>, Incoming>;

/// A kept-alive connection to an instance, driven by whichever request task holds it rather
/// than by a task of its own: a request through the ingress then costs no hand-over between
/// tasks (and threads) on its way to the instance and back.
pub struct Upstream {
    sender: SendRequest<Incoming>,
    /// `None` once the connection has ended.
    conn: Option<Pin<Box<Driver>>>,
}

impl Upstream {
    /// Drives the connection; an error or its end leaves it `None`.
    fn drive(&mut self, cx: &mut Context<'_>) -> Option<hyper::Error> {
        let conn = self.conn.as_mut()?;
        match conn.as_mut().poll(cx) {
            Poll::Pending => None,
            Poll::Ready(r) => {
                self.conn = None;
                r.err()
            }
        }
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| {
            let failed = self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(r.map_err(std::io::Error::other)),
                Poll::Pending => match failed {
                    Some(e) => Poll::Ready(Err(std::io::Error::other(e))),
                    None if self.conn.is_none() => Poll::Ready(Err(std::io::Error::other(
                        "the connection to the instance ended",
                    ))),
                    None => Poll::Pending,
                },
            }
        })
        .await
    }

    /// Sends one request and waits for the head of its response.
    pub async fn send(&mut self, req: Request<Incoming>) -> std::io::Result<Response<Incoming>> {
        self.ready().await?;
        let sent = self.sender.send_request(req);
        tokio::pin!(sent);
        let conn = &mut self.conn;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = sent.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(std::io::Error::other));
            }
            if let Some(c) = conn.as_mut() {
                match c.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => {
                        *conn = None;
                        if let Err(e) = r {
                            return Poll::Ready(Err(std::io::Error::other(e)));
                        }
                    }
                }
            }
            // The connection ended, so the request has its answer or its error now.
            sent.as_mut().poll(cx).map_err(std::io::Error::other)
        })
        .await
    }

    /// Drives the connection while a response body is read from it.
    pub fn poll_conn(&mut self, cx: &mut Context<'_>) {
        let _ = self.drive(cx);
    }
}

/// An instance taken for one request; given back when dropped.
pub struct Lease {
    pub instance: Arc<Instance>,
    pool: Arc<Pool>,
    /// How long the request waited for a new instance, when it caused a cold start.
    pub cold_start: Option<Duration>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.instance.inflight.fetch_sub(1, Ordering::SeqCst);
        *self
            .instance
            .last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.pool.changed.notify_waiters();
    }
}

#[derive(Default)]
struct PoolState {
    instances: Vec<Arc<Instance>>,
    starting: usize,
}

/// The instances of one revision.
pub struct Pool {
    pub service: String,
    pub revision: String,
    pub spec: Arc<RunSpec>,
    launch: Launch,
    state: Mutex<PoolState>,
    changed: Notify,
    events: Arc<Events>,
    log_dir: PathBuf,
    next: AtomicU64,
    serving: AtomicBool,
    /// Instances stopped by their liveness probe, still to be replaced.
    owed: AtomicUsize,
    idle: Duration,
    closed: CancellationToken,
    groups: Option<crate::stack::records::Groups>,
}

impl Pool {
    #[expect(
        clippy::too_many_arguments,
        reason = "built in one place, from a revision and the emulator's settings"
    )]
    pub fn new(
        service: &str,
        revision: &str,
        spec: Arc<RunSpec>,
        launch: Launch,
        events: Arc<Events>,
        log_dir: PathBuf,
        idle: Duration,
        groups: Option<crate::stack::records::Groups>,
    ) -> Arc<Self> {
        let pool = Arc::new(Pool {
            service: service.to_owned(),
            revision: revision.to_owned(),
            spec,
            launch,
            state: Mutex::new(PoolState::default()),
            changed: Notify::new(),
            events,
            log_dir,
            next: AtomicU64::new(1),
            serving: AtomicBool::new(false),
            owed: AtomicUsize::new(0),
            idle,
            closed: CancellationToken::new(),
            groups,
        });
        tokio::spawn(scale_loop(Arc::downgrade(&pool), pool.closed.clone()));
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the revision has a share of traffic or a tag: only then are its minimum
    /// instances kept.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    pub fn instance_count(&self) -> usize {
        self.lock().instances.iter().filter(|i| i.alive()).count()
    }

    /// The revision's first instance, started to check the revision on deploy (as Cloud
    /// Run does even with a minimum of 0). Err: why the revision is not ready.
    pub async fn check(self: &Arc<Self>) -> Result<(), String> {
        self.lock().starting += 1;
        let started = self.start("deploy").await;
        let mut s = self.lock();
        s.starting -= 1;
        match started {
            Ok(i) => {
                *i.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                s.instances.push(i);
                drop(s);
                self.changed.notify_waiters();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// An instance for one request: the least busy one below its concurrency, else a new one
    /// (a cold start) while the maximum allows, else wait up to `wait` for one to free up.
    pub async fn acquire(self: &Arc<Self>, wait: Duration) -> Result<Lease, Unavailable> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.closed.is_cancelled() {
                return Err(Unavailable::Closed);
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let start_new = {
                let mut s = self.lock();
                s.instances.retain(|i| i.exited.borrow().is_none());
                let best = s
                    .instances
                    .iter()
                    .filter(|i| i.alive())
                    .filter(|i| i.inflight.load(Ordering::SeqCst) < self.spec.concurrency)
                    .min_by_key(|i| i.inflight.load(Ordering::SeqCst))
                    .cloned();
                if let Some(i) = best {
                    i.inflight.fetch_add(1, Ordering::SeqCst);
                    return Ok(Lease {
                        instance: i,
                        pool: Arc::clone(self),
                        cold_start: None,
                    });
                }
                let alive = s.instances.iter().filter(|i| i.alive()).count();
                if alive + s.starting < self.spec.max_instances {
                    s.starting += 1;
                    true
                } else {
                    false
                }
            };
            if start_new {
                let t0 = Instant::now();
                let started = self.start("request").await;
                let mut s = self.lock();
                s.starting -= 1;
                return match started {
                    Ok(i) => {
                        i.inflight.fetch_add(1, Ordering::SeqCst);
                        s.instances.push(Arc::clone(&i));
                        drop(s);
                        Ok(Lease {
                            instance: i,
                            pool: Arc::clone(self),
                            cold_start: Some(t0.elapsed()),
                        })
                    }
                    Err(e) => {
                        drop(s);
                        self.changed.notify_waiters();
                        Err(Unavailable::StartFailed(e))
                    }
                };
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Err(Unavailable::NoInstance),
                () = self.closed.cancelled() => return Err(Unavailable::Closed),
            }
        }
    }

    /// Starts one instance and waits for its startup probe. `cause`: deploy, request,
    /// min-instances or liveness, for the events.
    async fn start(self: &Arc<Self>, cause: &str) -> Result<Arc<Instance>, String> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", self.revision);
        let port = crate::stack::ports::free_port().map_err(|e| e.to_string())?;
        let dir = self.log_dir.join(&self.revision);
        let _ = std::fs::create_dir_all(&dir);
        let log_path = dir.join(format!("{id}.log"));
        let container = self
            .launch
            .container
            .as_ref()
            .map(|_| format!("harness-cr-{id}-{}", std::process::id()));
        let mut cmd = command(
            &self.launch,
            &[("PORT", port.to_string())],
            &log_path,
            container.as_deref(),
        )?;
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "could not start the program of image '{}' ({}): {e}",
                self.spec.image, self.launch.argv[0]
            )
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or_default();
        if let (Some(g), Ok(pgid)) = (&self.groups, u32::try_from(pid)) {
            g.add("cloud-run-instance", pgid);
        }
        let (tx, rx) = watch::channel(None);
        let instance = Arc::new(Instance {
            id: id.clone(),
            port,
            pid,
            inflight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            idle_conns: Mutex::new(Vec::new()),
            exited: rx,
            stopping: AtomicBool::new(false),
            container,
        });
        {
            let events = Arc::clone(&self.events);
            let (service, revision, id) = (self.service.clone(), self.revision.clone(), id.clone());
            let pool = Arc::downgrade(self);
            let groups = self.groups.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                if let (Some(g), Ok(pgid)) = (&groups, u32::try_from(pid)) {
                    g.remove(pgid);
                }
                let how = match status {
                    Ok(s) => match s.code() {
                        Some(c) => format!("exit({c})"),
                        None => format!("{s}"),
                    },
                    Err(e) => e.to_string(),
                };
                let _ = tx.send(Some(how.clone()));
                events.push(
                    "instance_exited",
                    json!({"service": service, "revision": revision, "instance": id, "how": how}),
                );
                if let Some(p) = pool.upgrade() {
                    p.changed.notify_waiters();
                }
            });
        }
        match startup(&instance, &self.spec.startup, self.spec.container_port).await {
            Ok(()) => {
                self.events.push(
                    "instance_started",
                    json!({"service": self.service, "revision": self.revision,
                           "instance": id, "port": port, "pid": pid, "cause": cause,
                           "ms": ms(t0.elapsed())}),
                );
                if let Some(probe) = self.spec.liveness.clone() {
                    tokio::spawn(liveness(Arc::downgrade(self), Arc::clone(&instance), probe));
                }
                Ok(instance)
            }
            Err(why) => {
                stop(&instance, Duration::ZERO).await;
                let log_tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                self.events.push(
                    "instance_failed",
                    json!({"service": self.service, "revision": self.revision,
                           "instance": id, "cause": cause, "reason": why,
                           "log": tail(&log_tail, 20)}),
                );
                Err(why)
            }
        }
    }

    async fn stop_instance(&self, i: &Arc<Instance>, reason: &str, grace: Duration) {
        i.stopping.store(true, Ordering::SeqCst);
        self.events.push(
            "instance_stopping",
            json!({"service": self.service, "revision": self.revision,
                   "instance": i.id, "reason": reason}),
        );
        stop(i, grace).await;
        self.lock().instances.retain(|x| !Arc::ptr_eq(x, i));
        self.changed.notify_waiters();
    }

    /// Stops every instance (SIGTERM, then SIGKILL after `grace`) and the scaling loop.
    pub async fn close(&self, grace: Duration) {
        self.closed.cancel();
        let all: Vec<_> = std::mem::take(&mut self.lock().instances);
        let stops = all.iter().map(|i| {
            i.stopping.store(true, Ordering::SeqCst);
            stop(i, grace)
        });
        futures::future::join_all(stops).await;
        self.changed.notify_waiters();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// SIGTERM to the instance's group, then SIGKILL once `grace` has passed (and a container's
/// removal, since killing its docker CLI does not stop it).
async fn stop(i: &Instance, grace: Duration) {
    if i.exited.borrow().is_some() || i.pid <= 0 {
        return;
    }
    let group = Pid::from_raw(i.pid);
    if !grace.is_zero() {
        let _ = killpg(group, Signal::SIGTERM);
        if i.wait_exit(grace).await {
            return;
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    if let Some(name) = &i.container {
        remove_container(name).await;
    }
    i.wait_exit(Duration::from_secs(5)).await;
}

/// One probe attempt: a TCP connect, or an HTTP GET answered 2xx or 3xx.
async fn attempt(port: u16, check: &Check, timeout: Duration) -> Result<(), String> {
    let run = async {
        match check {
            Check::Tcp => TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Check::Http { path } => {
                let url = format!("http://127.0.0.1:{port}{path}");
                let r = reqwest::Client::new()
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status().is_success() || r.status().is_redirection() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status().as_u16()))
                }
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// The startup probe: up to `failure_threshold` attempts a period apart. Within one attempt
/// a refused connection is retried until the attempt's time is up, so a container gets the
/// whole timeout to start listening; an HTTP answer that is not 2xx or 3xx fails it at once.
async fn startup(i: &Instance, probe: &Probe, port: u16) -> Result<(), String> {
    let mut exited = i.exited.clone();
    let exit_message = |how: &str| {
        format!(
            "The user-provided container failed to start and listen on the port defined provided by the PORT={} environment variable within the allocated timeout. This can happen when the container port is misconfigured or if the timeout is too short. The health check timeout can be extended. Logs for this revision might contain more information. Container called {how}.",
            port
        )
    };
    let run = async {
        tokio::time::sleep(probe.initial_delay).await;
        let mut last = String::new();
        for n in 0..probe.failure_threshold {
            let began = tokio::time::Instant::now();
            let window = began + probe.timeout.max(Duration::from_millis(1));
            loop {
                let left = window.saturating_duration_since(tokio::time::Instant::now());
                match attempt(i.port, &probe.check, left).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
                let refused = last.contains("refused")
                    || last.contains("Connection refused")
                    || last.contains("error sending request");
                if !refused || tokio::time::Instant::now() >= window {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if n + 1 < probe.failure_threshold {
                tokio::time::sleep_until(began + probe.period).await;
            }
        }
        Err(match &probe.check {
            Check::Tcp => format!(
                "The user-provided container failed to start and listen on the port defined provided by the PORT={} environment variable within the allocated timeout. This can happen when the container port is misconfigured or if the timeout is too short. The health check timeout can be extended. Logs for this revision might contain more information.",
                port
            ),
            Check::Http { path } => format!(
                "STARTUP HTTP probe failed {} time{} consecutively for container on port {} path \"{path}\" ({last}). The instance was not started.",
                probe.failure_threshold,
                if probe.failure_threshold == 1 {
                    ""
                } else {
                    "s"
                },
                port
            ),
        })
    };
    tokio::select! {
        r = run => r,
        how = exited.wait_for(Option::is_some) => {
            let how = how.ok().and_then(|h| h.clone()).unwrap_or_default();
            Err(exit_message(&how))
        }
    }
}

/// The liveness probe of one instance: after `failure_threshold` failures in a row, the
/// instance is stopped and replaced.
async fn liveness(pool: std::sync::Weak<Pool>, i: Arc<Instance>, probe: Probe) {
    tokio::time::sleep(probe.initial_delay).await;
    let mut failures = 0;
    loop {
        tokio::time::sleep(probe.period).await;
        if !i.alive() {
            return;
        }
        match attempt(i.port, &probe.check, probe.timeout).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures >= probe.failure_threshold {
                    let Some(pool) = pool.upgrade() else { return };
                    pool.events.push(
                        "liveness_failed",
                        json!({"service": pool.service, "revision": pool.revision,
                               "instance": i.id, "failures": failures, "last": e}),
                    );
                    pool.stop_instance(&i, "liveness", GRACE).await;
                    if pool.serving.load(Ordering::SeqCst) {
                        // The scaling loop starts its replacement.
                        pool.owed.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                }
            }
        }
    }
}

/// Keeps the revision between its bounds: idle instances beyond the minimum are stopped,
/// and a serving revision is topped up to its minimum.
async fn scale_loop(pool: std::sync::Weak<Pool>, closed: CancellationToken) {
    let tick = match pool.upgrade() {
        Some(p) => (p.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        None => return,
    };
    loop {
        tokio::select! {
            () = closed.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let Some(p) = pool.upgrade() else { return };
        let min = if p.serving.load(Ordering::SeqCst) {
            p.spec.min_instances
        } else {
            0
        };
        let (surplus, missing) = {
            let mut s = p.lock();
            s.instances.retain(|i| i.exited.borrow().is_none());
            let alive: Vec<_> = s.instances.iter().filter(|i| i.alive()).cloned().collect();
            let idle: Vec<_> = alive
                .iter()
                .filter(|i| i.inflight.load(Ordering::SeqCst) == 0)
                .filter(|i| {
                    i.last_used
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .elapsed()
                        >= p.idle
                })
                .cloned()
                .collect();
            let surplus: Vec<_> = idle
                .into_iter()
                .take(alive.len().saturating_sub(min))
                .collect();
            let owed = p.owed.swap(0, Ordering::SeqCst);
            let missing = min.saturating_sub(alive.len() + s.starting).max(owed);
            s.starting += missing;
            (surplus, missing)
        };
        for i in surplus {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.stop_instance(&i, "idle", GRACE).await });
        }
        for _ in 0..missing {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                let cause = if missing > 0 && p.spec.min_instances == 0 {
                    "liveness"
                } else {
                    "min-instances"
                };
                let started = p.start(cause).await;
                let mut s = p.lock();
                s.starting -= 1;
                if let Ok(i) = started {
                    s.instances.push(i);
                }
                drop(s);
                p.changed.notify_waiters();
            });
        }
    }
}
