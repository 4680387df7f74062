//! The Docker provider: every service is a container started through testcontainers, on
//! the host network (every service on 127.0.0.1, as with the native provider), labelled
//! with its run so that the reaper can remove what a killed run left behind, volumes
//! included.
//!
//! The containers are ready under the same conditions as native services: the same
//! protocol round trips with the run's random credentials.

pub mod build;
pub mod images;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use testcontainers::{
    ContainerAsync, ContainerRequest, GenericImage, ImageExt,
    bollard::{
        Docker,
        query_parameters::{KillContainerOptions, ListContainersOptions, RemoveContainerOptions},
    },
    core::Mount,
    runners::AsyncRunner,
};
use tokio::io::AsyncWriteExt;

use super::{
    Endpoints, ServiceKind,
    native::service_dir,
    readiness::{Watch, wait_all},
    services::{Launch, describe},
};
use crate::error::{Error, IoContext};

/// The label naming the run a container belongs to.
pub const RUN_LABEL: &str = "dev.harness.run";
/// The label naming the service a container runs.
pub const SERVICE_LABEL: &str = "dev.harness.service";
/// The label naming whose records own a container (host, user and `HARNESS_HOME`), so
/// that the sweep of one never removes the containers of another: two users, or two CI
/// jobs on one engine with the same home path.
pub const HOME_LABEL: &str = "dev.harness.home";

/// A short hash of this host's name, this user's id and this process's `HARNESS_HOME`.
pub fn home_id() -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    owner_id(
        &host,
        nix::unistd::Uid::effective().as_raw(),
        &crate::home::home(),
    )
}

fn owner_id(host: &str, uid: u32, home: &Path) -> String {
    use sha2::{Digest, Sha256};
    let owner = format!("{host}\0{uid}\0{}", home.display());
    let digest = Sha256::digest(owner.as_bytes());
    format!("{digest:x}")[..16].to_owned()
}

/// The Docker API version testcontainers speaks; older engines refuse its requests.
const NEEDED_API: (u32, u32) = (1, 52);

/// Connects to the engine named by `DOCKER_HOST` (default: the local socket) and checks
/// that it answers and speaks a new enough API.
pub async fn connect() -> Result<Docker, Error> {
    let unavailable = |detail: String| Error::DockerUnavailable {
        detail,
        fix: "start the Docker engine (`sudo systemctl start docker`, or on a machine \
              without a bridge `sudo dockerd --bridge=none --iptables=false &`), or point \
              DOCKER_HOST at one; `--provider native` needs no Docker"
            .into(),
    };
    let docker = Docker::connect_with_defaults()
        .map_err(|e| unavailable(format!("cannot reach it: {e}")))?;
    let version = tokio::time::timeout(Duration::from_secs(10), docker.version())
        .await
        .map_err(|_| unavailable("it did not answer within 10 s".into()))?;
    match version {
        Ok(_) => Ok(docker),
        Err(e) => {
            let text = e.to_string();
            if text.contains("is too new") {
                let max = text
                    .rsplit("version is ")
                    .next()
                    .unwrap_or("unknown")
                    .trim()
                    .to_owned();
                Err(Error::DockerTooOld {
                    found: max,
                    needed: format!("{}.{}", NEEDED_API.0, NEEDED_API.1),
                })
            } else {
                Err(unavailable(format!("cannot reach it: {text}")))
            }
        }
    }
}

/// A service running in a container.
pub struct ContainerService {
    pub name: &'static str,
    pub id: String,
    pub log: PathBuf,
    container: Option<ContainerAsync<GenericImage>>,
    /// Set when the container's log stream ends, which happens when it stops.
    ended: Arc<AtomicBool>,
}

impl Watch for ContainerService {
    fn name(&self) -> &str {
        self.name
    }
    fn log(&self) -> &Path {
        &self.log
    }
    fn exited(&mut self) -> Option<String> {
        self.ended
            .load(Ordering::SeqCst)
            .then(|| format!("container {} stopped", short(&self.id)))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl ContainerService {
    /// Removes the container and its anonymous volumes.
    pub async fn remove(&mut self) {
        if let Some(container) = self.container.take() {
            let _ = container.rm().await;
        }
    }

    /// Leaves the container running (a detached stack); `harness down` removes it by label.
    pub fn forget(&mut self) {
        if let Some(container) = self.container.take() {
            // Dropping it would remove the container.
            std::mem::forget(container);
        }
    }

    /// For `Drop`: testcontainers removes a dropped container, but only from inside a
    /// runtime; outside one the container is left to the reaper.
    pub fn remove_on_drop(&mut self) {
        if let Some(container) = self.container.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            std::mem::forget(container);
        }
    }

    /// Injects a process fault.
    pub async fn fault(&mut self, docker: &Docker, fault: super::Fault) -> Result<(), Error> {
        use super::Fault;
        let container = self
            .container
            .as_ref()
            .ok_or_else(|| Error::Other(format!("{} is no longer managed", self.name)))?;
        let what = |e: &dyn std::fmt::Display| {
            Error::Docker(format!("{} {}: {e}", fault.name(), self.name))
        };
        match fault {
            Fault::Pause => container.pause().await.map_err(|e| what(&e)),
            Fault::Unpause => container.unpause().await.map_err(|e| what(&e)),
            Fault::Stop => container
                .stop_with_timeout(Some(5))
                .await
                .map_err(|e| what(&e)),
            Fault::Kill => {
                docker
                    .kill_container(&self.id, None::<KillContainerOptions>)
                    .await
                    .map_err(|e| what(&e))?;
                // Wait for the engine to see it gone, as `docker kill` does.
                for _ in 0..100 {
                    if !container.is_running().await.unwrap_or(false) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
            Fault::Start => {
                // As natively: starting what still runs is a mistake, not a no-op.
                if container.is_running().await.unwrap_or(false) {
                    return Err(Error::Other(format!(
                        "start {}: it is still running (stop or kill it first)",
                        self.name
                    )));
                }
                container.start().await.map_err(|e| what(&e))?;
                self.ended = follow_logs(container, &self.log, true).await?;
                Ok(())
            }
            Fault::Restart => {
                container
                    .stop_with_timeout(Some(5))
                    .await
                    .map_err(|e| what(&e))?;
                container.start().await.map_err(|e| what(&e))?;
                self.ended = follow_logs(container, &self.log, true).await?;
                Ok(())
            }
        }
    }
}

/// Copies the container's output into `log` until the container stops; the returned flag
/// is set then. A log stream can also end while the container runs (a dropped connection
/// on a busy engine): the engine is asked, and the stream is opened again from that second.
pub(crate) async fn follow_logs(
    container: &ContainerAsync<GenericImage>,
    log: &Path,
    append: bool,
) -> Result<Arc<AtomicBool>, Error> {
    use futures::StreamExt;
    use testcontainers::bollard::query_parameters::LogsOptions;
    let ended = Arc::new(AtomicBool::new(false));
    if !append {
        crate::home::create_private_file(log)?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(log)
        .await
        .ctx(|| format!("open {}", log.display()))?;
    let docker = connect().await?;
    let id = container.id().to_owned();
    let flag = ended.clone();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i32)
    };
    // After a restart, only what the container writes from now on.
    let mut since = if append { now() } else { 0 };
    tokio::spawn(async move {
        loop {
            let options = LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since,
                ..Default::default()
            };
            let mut stream = docker.logs(&id, Some(options));
            while let Some(Ok(chunk)) = stream.next().await {
                if file.write_all(&chunk.into_bytes()).await.is_err() {
                    break;
                }
            }
            let _ = file.flush().await;
            let state = docker.inspect_container(&id, None).await.map(|i| i.state);
            let running = matches!(&state, Ok(Some(s)) if s.running == Some(true));
            if !running {
                // Say in the log how the container ended, for the error that quotes it.
                let why = match state {
                    Ok(Some(s)) => format!(
                        "status {}, exit code {}, OOM-killed {}{}",
                        s.status.map(|x| x.to_string()).unwrap_or_default(),
                        s.exit_code.unwrap_or_default(),
                        s.oom_killed.unwrap_or(false),
                        s.error
                            .filter(|e| !e.is_empty())
                            .map(|e| format!(", error: {e}"))
                            .unwrap_or_default()
                    ),
                    Ok(None) => "no state".into(),
                    Err(e) => format!("gone ({e})"),
                };
                let line = format!("\n[harness] the container stopped: {why}\n");
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.flush().await;
                flag.store(true, Ordering::SeqCst);
                return;
            }
            since = now();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Ok(ended)
}

/// How the stack asks for a container.
pub struct Request<'a> {
    pub run_id: &'a str,
    pub run_dir: &'a Path,
    pub image: String,
    pub port: u16,
    pub timeout: Duration,
}

/// A container request on the host network with the labels the reaper finds it by: the
/// run, what it runs (`service`), and this `HARNESS_HOME`.
pub(crate) fn labelled_request(
    image: &str,
    run_id: &str,
    service: &str,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
) -> ContainerRequest<GenericImage> {
    let (name, tag) = images::split(image);
    let mut request = GenericImage::new(name, tag)
        .with_network("host")
        .with_label(RUN_LABEL, run_id)
        .with_label(SERVICE_LABEL, service)
        .with_label(HOME_LABEL, home_id())
        .with_cmd(cmd);
    for (k, v) in env {
        request = request.with_env_var(k, v);
    }
    request
}

/// Starts one service's container and waits until it is ready.
pub async fn start(
    kind: ServiceKind,
    req: Request<'_>,
) -> Result<(ContainerService, Endpoints), Error> {
    let dir = service_dir(req.run_dir, kind.name())?;
    let d = describe(
        kind,
        &Launch::Container { image: &req.image },
        &dir,
        req.port,
    )?;
    let mut request = labelled_request(&req.image, req.run_id, kind.name(), d.args, d.env)
        .with_container_name(format!("harness-{}-{}", req.run_id, kind.name()));
    if !d.binds.is_empty() {
        // A container that writes into a host folder runs as this user, so the folder can
        // stay private (0700) instead of open to everyone.
        request = request.with_user(format!(
            "{}:{}",
            nix::unistd::Uid::effective(),
            nix::unistd::Gid::effective()
        ));
    }
    for path in d.binds {
        let p = path.to_string_lossy().into_owned();
        request = request.with_mount(Mount::bind_mount(p.clone(), p));
    }
    let container = request.start().await.map_err(|e| {
        Error::Docker(format!(
            "start the {} container from {}: {e}",
            kind.name(),
            req.image
        ))
    })?;
    let log = dir.join(format!("{}.log", kind.name()));
    let ended = follow_logs(&container, &log, false).await?;
    let mut service = ContainerService {
        name: kind.name(),
        id: container.id().to_owned(),
        log,
        container: Some(container),
        ended,
    };
    if let Err(e) = wait_all(&mut service, &d.ready, req.timeout).await {
        service.remove().await;
        return Err(e);
    }
    Ok((service, d.endpoints))
}

/// The user id Postgres runs as in its image (harness's, as upstream's): a restored data
/// directory is handed to it.
pub const IMAGE_POSTGRES_UID: u32 = 999;

/// The image of `run_id`'s `service` container.
pub async fn image_of(run_id: &str, service: &str) -> Result<String, Error> {
    let record = crate::stack::list()
        .into_iter()
        .find(|r| r.run_id == run_id)
        .ok_or_else(|| Error::NoSuchRun(run_id.to_owned()))?;
    let id = record
        .containers
        .iter()
        .find(|(name, _)| name == service)
        .map(|(_, id)| id.clone())
        .ok_or_else(|| Error::Docker(format!("run {run_id} has no {service} container")))?;
    let docker = connect().await?;
    docker
        .inspect_container(&id, None)
        .await
        .map_err(|e| Error::Docker(format!("inspect the {service} container: {e}")))?
        .config
        .and_then(|c| c.image)
        .ok_or_else(|| Error::Docker(format!("the {service} container names no image")))
}

/// Starts a container of `image` on the data directory already in `dir/data` (a restored
/// base backup, owned by the image's postgres user; or an empty folder, which the image
/// makes a cluster of), with `settings` added (`-c`), labelled
/// with `run_id` (a run of scenarios) so that the reaper finds it. The restored cluster
/// keeps its roles, so the container is reached with `password` (the backed-up server's).
pub(crate) async fn start_postgres_from(
    image: &str,
    run_id: &str,
    dir: &Path,
    port: u16,
    password: crate::secret::Secret,
    settings: &[String],
    timeout: Duration,
) -> Result<(ContainerService, Endpoints), Error> {
    let mut d = describe(
        ServiceKind::Postgres,
        &Launch::Container { image },
        dir,
        port,
    )?;
    for s in settings {
        d.args.extend(["-c".to_owned(), s.clone()]);
    }
    // A restored cluster keeps its roles; an empty folder is made a cluster with the same
    // password.
    for (k, v) in &mut d.env {
        if k == "POSTGRES_PASSWORD" {
            *v = password.expose().to_owned();
        }
    }
    if let Some(ep) = d.endpoints.postgres.as_mut() {
        ep.password = password;
    }
    let ready = super::services::restart_conditions(ServiceKind::Postgres, &d.endpoints);
    let mut env = d.env;
    env.push(("PGDATA".into(), dir.join("data").display().to_string()));
    let p = dir.to_string_lossy().into_owned();
    let request = labelled_request(image, run_id, "postgres-restored", d.args, env)
        .with_mount(Mount::bind_mount(p.clone(), p));
    let service = start_restored(
        request,
        "postgres-restored",
        &dir.join("postgres.log"),
        &ready,
        timeout,
    )
    .await?;
    Ok((service, d.endpoints))
}

/// Starts a restored service's container, follows its log into `log` and waits for
/// `ready` (removing it when it does not get there).
async fn start_restored(
    request: ContainerRequest<GenericImage>,
    name: &'static str,
    log: &Path,
    ready: &[super::readiness::WaitFor],
    timeout: Duration,
) -> Result<ContainerService, Error> {
    let container = request
        .start()
        .await
        .map_err(|e| Error::Docker(format!("start the {name} container: {e}")))?;
    let ended = follow_logs(&container, log, false).await?;
    let mut service = ContainerService {
        name,
        id: container.id().to_owned(),
        log: log.to_owned(),
        container: Some(container),
        ended,
    };
    if let Err(e) = wait_all(&mut service, ready, timeout).await {
        service.remove().await;
        return Err(e);
    }
    Ok(service)
}

/// Copies `path` out of container `id` (running or stopped) into `dest`.
pub async fn copy_out(id: &str, path: &str, dest: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dest).ctx(|| format!("create {}", dest.display()))?;
    let out = tokio::process::Command::new("docker")
        .arg("cp")
        .arg(format!("{id}:{path}/."))
        .arg(dest)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Docker(format!("docker cp: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Docker(format!(
            "docker cp {id}:{path}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `args` in the running container `id` as `user`, with `stdin` as its input, and
/// returns its standard output; a failure is its standard error's last lines.
pub async fn exec(id: &str, user: &str, args: &[String], stdin: &[u8]) -> Result<String, Error> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("docker")
        .args(["exec", "-i", "-u", user, id])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Docker(format!("docker exec: {e}")))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .await
            .map_err(|e| Error::Docker(format!("docker exec: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Docker(format!("docker exec: {e}")))?;
    finished(
        out,
        &format!("{} in container {}", args.join(" "), short(id)),
    )
}

/// Runs `args` once in a new container of `image` as `uid`, without a network, with `dir`
/// bound at the same path, labelled with `run_id` so that the reaper finds it should the
/// run be killed; the container is removed when it ends.
pub async fn run_once(
    image: &str,
    run_id: &str,
    dir: &Path,
    uid: u32,
    args: &[String],
) -> Result<String, Error> {
    let bind = format!("{0}:{0}", dir.display());
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--user"])
        .arg(format!("{uid}:{uid}"))
        .arg("--label")
        .arg(format!("{RUN_LABEL}={run_id}"))
        .arg("--label")
        .arg(format!("{HOME_LABEL}={}", home_id()))
        .args(["-v", &bind, image])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Docker(format!("docker run: {e}")))?;
    finished(
        out,
        &format!("{} in a container of {image}", args.join(" ")),
    )
}

/// A command's standard output, or its failure with the last lines of its standard error.
fn finished(out: std::process::Output, what: &str) -> Result<String, Error> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let mut tail: Vec<&str> = err.lines().rev().take(6).collect();
    tail.reverse();
    Err(Error::Docker(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.join(" / ")
    )))
}

/// Starts a container of `image` (a Neo4j image: its store in `/data`) on the store
/// already in `dir/data`, labelled with `run_id` (a run of scenarios), reached with
/// `password` (the backed-up DBMS's: an upstream image keeps a store's own).
pub(crate) async fn start_neo4j_from(
    image: &str,
    run_id: &str,
    dir: &Path,
    port: u16,
    password: crate::secret::Secret,
    timeout: Duration,
) -> Result<(ContainerService, Endpoints), Error> {
    let mut d = describe(ServiceKind::Neo4j, &Launch::Container { image }, dir, port)?;
    let user = d
        .endpoints
        .neo4j
        .as_ref()
        .map(|e| e.user.clone())
        .unwrap_or_default();
    if let Some(ep) = d.endpoints.neo4j.as_mut() {
        ep.password = password.clone();
    }
    for (k, v) in &mut d.env {
        if k == "NEO4J_AUTH" {
            *v = format!("{user}/{}", password.expose());
        }
    }
    // The first conditions (the ready line), then a Bolt login with the store's password.
    let mut ready: Vec<_> = d
        .ready
        .into_iter()
        .filter(|w| !matches!(w, super::readiness::WaitFor::Ping(_)))
        .collect();
    ready.extend(super::services::restart_conditions(
        ServiceKind::Neo4j,
        &d.endpoints,
    ));
    let data = dir.join("data").to_string_lossy().into_owned();
    let request = labelled_request(image, run_id, "neo4j-restored", d.args, d.env)
        .with_mount(Mount::bind_mount(data, "/data"));
    let service = start_restored(
        request,
        "neo4j-restored",
        &dir.join("neo4j.log"),
        &ready,
        timeout,
    )
    .await?;
    Ok((service, d.endpoints))
}

/// Every container of every harness run of this `HARNESS_HOME`, by run id.
async fn labelled(docker: &Docker) -> Result<HashMap<String, Vec<(String, bool)>>, Error> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![RUN_LABEL.to_owned(), format!("{HOME_LABEL}={}", home_id())],
        )])),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| Error::Docker(format!("list containers: {e}")))?;
    let mut by_run: HashMap<String, Vec<(String, bool)>> = HashMap::new();
    for c in list {
        let run = c
            .labels
            .as_ref()
            .and_then(|l| l.get(RUN_LABEL))
            .cloned()
            .unwrap_or_default();
        let running = c
            .state
            .as_ref()
            .is_some_and(|s| s.to_string().eq_ignore_ascii_case("running"));
        if let Some(id) = c.id {
            by_run.entry(run).or_default().push((id, running));
        }
    }
    Ok(by_run)
}

/// Whether any container of `run_id` is running.
pub async fn run_alive(run_id: &str) -> bool {
    let Ok(docker) = connect().await else {
        return false;
    };
    labelled(&docker)
        .await
        .ok()
        .and_then(|mut m| m.remove(run_id))
        .is_some_and(|cs| cs.iter().any(|(_, running)| *running))
}

/// Removes every container of `run_id` with its anonymous volumes.
pub async fn remove_run(run_id: &str) -> Result<(), Error> {
    let docker = connect().await?;
    let mut by_run = labelled(&docker).await?;
    for (id, _) in by_run.remove(run_id).unwrap_or_default() {
        remove(&docker, &id).await;
    }
    Ok(())
}

/// Removes containers whose run has no record (a run writes its record before it creates
/// any container, so such a container is an orphan). Returns their run ids.
///
/// The containers are listed before the records are read: a container that exists when
/// listed had its record written already, so a run starting meanwhile is never taken for
/// an orphan.
pub async fn sweep() -> Vec<String> {
    let Ok(docker) = connect().await else {
        return Vec::new();
    };
    let Ok(by_run) = labelled(&docker).await else {
        return Vec::new();
    };
    let known: Vec<String> = super::records::RunRecord::load_all()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    let mut swept = Vec::new();
    for (run, containers) in by_run {
        if known.contains(&run) {
            continue;
        }
        for (id, _) in containers {
            remove(&docker, &id).await;
        }
        swept.push(run);
    }
    swept
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    let _ = docker.remove_container(id, Some(options)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_label_differs_by_host_user_and_home() {
        let home = Path::new("/root/.cache/harness");
        let base = owner_id("ci-1", 0, home);
        assert_eq!(base, owner_id("ci-1", 0, home), "stable");
        assert_ne!(base, owner_id("ci-2", 0, home), "another CI job's host");
        assert_ne!(base, owner_id("ci-1", 1000, home), "another user");
        assert_ne!(
            base,
            owner_id("ci-1", 0, Path::new("/tmp/h")),
            "another home"
        );
    }
}
