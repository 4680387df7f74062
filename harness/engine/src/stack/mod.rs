//! A stack: the set of real services one run uses, started in parallel by a provider, with
//! typed endpoints and ready clients. Dropping a stack (or calling [`Stack::shutdown`])
//! stops every service and removes its folder; [`Stack::detach`] leaves it running for
//! `harness down` to stop later.

pub mod docker;
pub mod external;
pub mod lease;
pub mod native;
pub mod ports;
pub mod provider;
pub mod readiness;
pub mod reaper;
pub mod records;
pub mod services;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use self::native::{
    neo4j::Neo4jEndpoint,
    object_store::S3Endpoint,
    otel::{CollectorOutput, OtelEndpoint, ReceivedSpan},
    postgres::PostgresEndpoint,
};
pub use self::provider::{Fault, ProviderKind};
use self::{docker::ContainerService, native::process::ServiceProcess, records::RunRecord};
use crate::{
    error::Error,
    home,
    progress::{self, Progress, ProgressEvent},
    runtimes::{self, Installed, RuntimeKind},
    secret::random_id,
};

/// A service of the stack; each is backed by the runtime of the same name.
pub type ServiceKind = RuntimeKind;

/// Endpoints of the running services, keyed as in `harness up --json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Endpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresEndpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neo4j: Option<Neo4jEndpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelEndpoint>,
}

/// Chooses the services of a stack and the provider that runs them.
pub struct StackBuilder {
    services: Vec<ServiceKind>,
    ports: BTreeMap<ServiceKind, u16>,
    images: BTreeMap<ServiceKind, String>,
    provider: Option<ProviderKind>,
    progress: Progress,
    install: bool,
}

impl StackBuilder {
    pub fn postgres(self) -> Self {
        self.service(ServiceKind::Postgres)
    }
    pub fn object_store(self) -> Self {
        self.service(ServiceKind::S3)
    }
    pub fn neo4j(self) -> Self {
        self.service(ServiceKind::Neo4j)
    }
    pub fn otel_collector(self) -> Self {
        self.service(ServiceKind::Otel)
    }
    /// Every service.
    pub fn all(self) -> Self {
        RuntimeKind::ALL.into_iter().fold(self, Self::service)
    }
    pub fn service(mut self, kind: ServiceKind) -> Self {
        if !self.services.contains(&kind) {
            self.services.push(kind);
        }
        self
    }
    /// Binds a service's main port to a fixed number instead of a free one.
    pub fn port(mut self, kind: ServiceKind, port: u16) -> Self {
        self.ports.insert(kind, port);
        self
    }
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
    /// The provider (default: `HARNESS_PROVIDER`, else native).
    pub fn provider(mut self, provider: ProviderKind) -> Self {
        self.provider = Some(provider);
        self
    }
    /// The image a service runs from under the Docker provider, instead of the default
    /// (which `HARNESS_IMAGE_<SERVICE>` also overrides).
    pub fn image(mut self, kind: ServiceKind, image: impl Into<String>) -> Self {
        self.images.insert(kind, image.into());
        self
    }
    /// Whether missing runtimes are installed (default) or reported as an error.
    pub fn install_missing(mut self, install: bool) -> Self {
        self.install = install;
        self
    }

    /// Reaps orphans, installs what is missing (native) or finds the images (docker), and
    /// starts every service in parallel.
    pub async fn start(self) -> Result<Stack, Error> {
        let provider = match self.provider {
            Some(p) => p,
            None => ProviderKind::from_env()?,
        };
        if provider == ProviderKind::External {
            return Err(Error::BadInput(
                "start a stack: the external provider starts nothing; attach with \
                 `harness up --provider external --from FILE`"
                    .into(),
            ));
        }
        for run in reaper::reap().await {
            (self.progress)(&ProgressEvent::Reaped { run_id: run });
        }
        let mut fixed = BTreeMap::new();
        for (kind, port) in &self.ports {
            fixed.insert(*kind, ports::check_requested(kind.name(), *port)?);
        }
        let launch = match provider {
            ProviderKind::Docker => self.docker_launch().await?,
            _ => Launch::Native(self.runtimes().await?),
        };
        let run_id = format!("{}-{}", std::process::id(), random_id(6));
        let run_dir = home::run_data_root().join(&run_id);
        let record = RunRecord {
            run_id: run_id.clone(),
            owner_pid: std::process::id(),
            owner_start: records::start_ticks(std::process::id()).unwrap_or(0),
            run_dir: run_dir.clone(),
            provider,
            ..RunRecord::default()
        };
        record.save()?;
        let mut stack = Stack {
            record,
            services: Vec::new(),
            docker: None,
            detached: false,
        };
        create_run_dir(&run_dir)?;
        let record = Arc::new(std::sync::Mutex::new(stack.record.clone()));
        let results = match launch {
            Launch::Native(installed) => {
                let starts = installed.into_iter().map(|rt| {
                    let (run_dir, progress, record) =
                        (run_dir.clone(), self.progress.clone(), record.clone());
                    let port = fixed.get(&rt.kind).copied();
                    async move { start_service(&run_dir, rt, port, &progress, &record).await }
                });
                futures::future::join_all(starts).await
            }
            Launch::Docker(docker, images) => {
                stack.docker = Some(docker);
                let starts =
                    images.into_iter().map(|(kind, image)| {
                        let (run_dir, run_id, progress) =
                            (run_dir.clone(), run_id.clone(), self.progress.clone());
                        let port = fixed.get(&kind).copied();
                        async move {
                            start_container(kind, image, &run_id, &run_dir, port, &progress).await
                        }
                    });
                futures::future::join_all(starts).await
            }
        };
        let mut first_error = None;
        for result in results {
            match result {
                Ok((service, endpoints)) => {
                    stack.services.push(service);
                    merge(&mut stack.record.endpoints, endpoints);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        stack.record.services = record
            .lock()
            .map(|r| r.services.clone())
            .unwrap_or_default();
        stack.record.containers = stack
            .services
            .iter()
            .filter_map(|s| match s {
                Running::Container(c) => Some((c.name.to_owned(), c.id.clone())),
                Running::Process(_) => None,
            })
            .collect();
        if let Some(e) = first_error {
            stack.shutdown().await;
            return Err(e);
        }
        stack.record.save()?;
        Ok(stack)
    }

    /// Connects to the engine, removes containers of runs nobody records, and picks every
    /// service's image, so that a missing image fails before anything starts.
    async fn docker_launch(&self) -> Result<Launch, Error> {
        let docker = docker::connect().await?;
        for run in docker::sweep().await {
            (self.progress)(&ProgressEvent::Reaped { run_id: run });
        }
        let mut images = Vec::new();
        for kind in &self.services {
            let spec = docker::images::for_service(*kind);
            let image = spec
                .resolve(&docker, self.images.get(kind).map(String::as_str))
                .await?;
            images.push((*kind, image));
        }
        Ok(Launch::Docker(docker, images))
    }

    async fn runtimes(&self) -> Result<Vec<Installed>, Error> {
        if self.install {
            return runtimes::ensure(&self.services, false, &self.progress).await;
        }
        self.services
            .iter()
            .map(|&kind| match runtimes::status(kind, false) {
                runtimes::RuntimeStatus::Installed(i) => Ok(i),
                runtimes::RuntimeStatus::Missing => Err(Error::RuntimeMissing {
                    runtime: kind.name().into(),
                    detail: String::new(),
                    fix: kind.fix_command(),
                }),
                runtimes::RuntimeStatus::Corrupt(why) => Err(Error::RuntimeMissing {
                    runtime: kind.name().into(),
                    detail: format!(" correctly ({why})"),
                    fix: format!("{} --force", kind.fix_command()),
                }),
            })
            .collect()
    }
}

/// What a provider needs to start the services.
enum Launch {
    Native(Vec<Installed>),
    Docker(testcontainers::bollard::Docker, Vec<(ServiceKind, String)>),
}

/// The run's folder, private to this user (see [`home::run_dir_mode`]).
fn create_run_dir(dir: &std::path::Path) -> Result<(), Error> {
    home::run_root()?;
    home::ensure_private(dir, home::run_dir_mode())
}

fn merge(into: &mut Endpoints, from: Endpoints) {
    into.postgres = into.postgres.take().or(from.postgres);
    into.s3 = into.s3.take().or(from.s3);
    into.neo4j = into.neo4j.take().or(from.neo4j);
    into.otel = into.otel.take().or(from.otel);
}

fn timeout_for(kind: ServiceKind) -> Duration {
    let secs = std::env::var("HARNESS_READY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(match kind {
        ServiceKind::Neo4j => 180,
        _ => 60,
    }))
}

/// Starts one service, retrying with fresh ports when another process took its port.
async fn start_service(
    run_dir: &std::path::Path,
    rt: Installed,
    fixed_port: Option<u16>,
    progress: &Progress,
    record: &Arc<std::sync::Mutex<RunRecord>>,
) -> Result<(Running, Endpoints), Error> {
    let kind = rt.kind;
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress(&ProgressEvent::ServiceStarting {
            service: kind.name().into(),
        });
        let port = match fixed_port {
            Some(p) => p,
            None => ports::free_port()?,
        };
        let timeout = timeout_for(kind);
        let result = native::start(kind, run_dir, &rt, port, timeout).await;
        match result {
            Ok((process, endpoints)) => {
                if let Ok(mut r) = record.lock() {
                    r.services
                        .push(records::ProcessGroup::of(kind.name(), process.pid));
                    let _ = r.save();
                }
                progress(&ProgressEvent::ServiceReady {
                    service: kind.name().into(),
                    elapsed: started.elapsed(),
                });
                return Ok((Running::Process(Box::new(process)), endpoints));
            }
            Err(Error::ServiceExited { tail, .. })
                if attempt < 3
                    && fixed_port.is_none()
                    && tail.to_lowercase().contains("address already in use") =>
            {
                let _ = std::fs::remove_dir_all(run_dir.join(kind.name()));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts one service's container on a free (or the requested) port.
async fn start_container(
    kind: ServiceKind,
    image: String,
    run_id: &str,
    run_dir: &std::path::Path,
    port: Option<u16>,
    progress: &Progress,
) -> Result<(Running, Endpoints), Error> {
    let started = Instant::now();
    progress(&ProgressEvent::ServiceStarting {
        service: format!("{} ({image})", kind.name()),
    });
    let port = match port {
        Some(p) => p,
        None => ports::free_port()?,
    };
    let request = docker::Request {
        run_id,
        run_dir,
        image,
        port,
        timeout: timeout_for(kind),
    };
    let (container, endpoints) = docker::start(kind, request).await?;
    progress(&ProgressEvent::ServiceReady {
        service: kind.name().into(),
        elapsed: started.elapsed(),
    });
    Ok((Running::Container(Box::new(container)), endpoints))
}

/// One running service, whichever provider started it.
pub(crate) enum Running {
    Process(Box<ServiceProcess>),
    Container(Box<ContainerService>),
}

impl Running {
    fn name(&self) -> &str {
        match self {
            Running::Process(p) => p.name,
            Running::Container(c) => c.name,
        }
    }

    /// Stops the service as its stack ends. Its data goes with the run's folder right
    /// after, so Neo4j is killed: its clean shutdown (a checkpoint, seconds of a JVM) would
    /// keep nothing. Postgres's fast shutdown is quick and releases its shared memory.
    async fn stop(&mut self) {
        match self {
            Running::Process(p) if p.name == ServiceKind::Neo4j.name() => {
                p.stop(Duration::ZERO).await
            }
            Running::Process(p) => p.stop(Duration::from_secs(5)).await,
            Running::Container(c) => c.remove().await,
        }
    }

    fn forget(&mut self) {
        match self {
            Running::Process(p) => p.forget(),
            Running::Container(c) => c.forget(),
        }
    }

    fn drop_now(&mut self) {
        match self {
            Running::Process(p) => p.kill_now(),
            Running::Container(c) => c.remove_on_drop(),
        }
    }
}

/// A running stack.
pub struct Stack {
    record: RunRecord,
    services: Vec<Running>,
    docker: Option<testcontainers::bollard::Docker>,
    detached: bool,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            services: Vec::new(),
            ports: BTreeMap::new(),
            images: BTreeMap::new(),
            provider: None,
            progress: progress::silent(),
            install: true,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.record.run_id
    }

    /// The provider that started the services.
    pub fn provider(&self) -> ProviderKind {
        self.record.provider
    }

    /// Container ids of the services, by name (Docker provider).
    pub fn containers(&self) -> Vec<(String, String)> {
        self.record.containers.clone()
    }

    /// Injects a process fault into one service. `Start` and `Restart` return once the
    /// service passes its readiness checks again, on the same port and data.
    pub async fn fault(&mut self, kind: ServiceKind, fault: Fault) -> Result<(), Error> {
        let endpoints = self.record.endpoints.clone();
        let index = self
            .services
            .iter()
            .position(|s| s.name() == kind.name())
            .ok_or(Error::NotInStack(kind.name()))?;
        let timeout = timeout_for(kind);
        match &mut self.services[index] {
            Running::Container(c) => {
                let docker = self
                    .docker
                    .as_ref()
                    .ok_or_else(|| Error::Other("no Docker engine connection".into()))?;
                c.fault(docker, fault).await?;
                if matches!(fault, Fault::Start | Fault::Restart) {
                    let conditions = services::restart_conditions(kind, &endpoints);
                    readiness::wait_all(c.as_mut(), &conditions, timeout).await?;
                }
            }
            Running::Process(p) => {
                p.fault(fault).await?;
                if matches!(fault, Fault::Start | Fault::Restart) {
                    let pid = p.pid;
                    let conditions = services::restart_conditions(kind, &endpoints);
                    readiness::wait_all(p.as_mut(), &conditions, timeout).await?;
                    for entry in &mut self.record.services {
                        if entry.name == kind.name() {
                            *entry = records::ProcessGroup::of(kind.name(), pid);
                        }
                    }
                    self.record.save()?;
                }
            }
        }
        Ok(())
    }

    /// The folder holding every service's data and log.
    /// Records a process group that belongs to the stack without being one of its
    /// services (the fault control API of a detached stack): `harness down` and the
    /// reaper stop it with the stack.
    pub fn adopt(&mut self, name: &str, pid: u32) -> Result<(), Error> {
        self.record
            .services
            .push(records::ProcessGroup::of(name, pid));
        self.record.save()
    }

    pub fn run_dir(&self) -> &std::path::Path {
        &self.record.run_dir
    }

    /// The container id of `kind` (Docker provider).
    pub fn container_id(&self, kind: ServiceKind) -> Option<String> {
        self.services.iter().find_map(|s| match s {
            Running::Container(c) if c.name == kind.name() => Some(c.id.clone()),
            _ => None,
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.record.endpoints
    }

    /// Process-group ids of the services, by name.
    pub fn service_pids(&self) -> Vec<(String, u32)> {
        self.record
            .services
            .iter()
            .map(|g| (g.name.clone(), g.pgid))
            .collect()
    }

    pub fn postgres(&self) -> Result<&PostgresEndpoint, Error> {
        self.record
            .endpoints
            .postgres
            .as_ref()
            .ok_or(Error::NotInStack("postgres"))
    }
    pub fn s3(&self) -> Result<&S3Endpoint, Error> {
        self.record
            .endpoints
            .s3
            .as_ref()
            .ok_or(Error::NotInStack("s3"))
    }
    pub fn neo4j(&self) -> Result<&Neo4jEndpoint, Error> {
        self.record
            .endpoints
            .neo4j
            .as_ref()
            .ok_or(Error::NotInStack("neo4j"))
    }
    pub fn otel(&self) -> Result<&OtelEndpoint, Error> {
        self.record
            .endpoints
            .otel
            .as_ref()
            .ok_or(Error::NotInStack("otel"))
    }

    /// Stops every service and removes the run's folder and record.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
    }

    async fn stop_all(&mut self) {
        futures::future::join_all(self.services.iter_mut().map(Running::stop)).await;
        self.services.clear();
        let _ = std::fs::remove_dir_all(&self.record.run_dir);
        let _ = std::fs::remove_file(RunRecord::path(&self.record.run_id));
    }

    /// Holds the stack for another process once it is detached: it is stopped when that
    /// process ends ([`lease`]).
    pub fn lease(&mut self, lease: lease::Lease) {
        self.record.lease = Some(lease);
    }

    /// Leaves the services running; `harness down` stops them.
    pub fn detach(mut self) -> Result<RunRecord, Error> {
        self.record.detached = true;
        self.record.save()?;
        for s in &mut self.services {
            s.forget();
        }
        self.detached = true;
        Ok(self.record.clone())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.detached || self.services.is_empty() {
            return;
        }
        for s in &mut self.services {
            s.drop_now();
        }
        let _ = std::fs::remove_dir_all(&self.record.run_dir);
        let _ = std::fs::remove_file(RunRecord::path(&self.record.run_id));
    }
}

/// Stops detached stacks, and removes what runs whose owner died left behind: one by id,
/// or all of them.
pub async fn down(run_id: Option<&str>) -> Result<Vec<String>, Error> {
    let records: Vec<RunRecord> = RunRecord::load_all()
        .into_iter()
        .filter(|r| r.detached || !r.owner_alive())
        .filter(|r| run_id.is_none_or(|id| r.run_id == id))
        .collect();
    if let (Some(id), true) = (run_id, records.is_empty()) {
        return Err(Error::NoSuchRun(id.to_owned()));
    }
    let mut stopped = Vec::new();
    for r in records {
        r.tear_down().await;
        stopped.push(r.run_id);
    }
    Ok(stopped)
}

/// Every stack recorded on this machine.
pub fn list() -> Vec<RunRecord> {
    RunRecord::load_all()
        .into_iter()
        .filter(|r| !r.session)
        .collect()
}
