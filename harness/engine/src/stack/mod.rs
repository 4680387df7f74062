//! A stack: the set of real services one run uses, started in parallel by a provider, with
//! typed endpoints and ready clients. Dropping a stack (or calling [`Stack::shutdown`])
//! stops every service and removes its folder; [`Stack::detach`] leaves it running for
//! `harness down` to stop later.

pub mod native;
pub mod ports;
pub mod readiness;
pub mod state;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use self::native::{
    neo4j::Neo4jEndpoint,
    object_store::S3Endpoint,
    otel::{CollectorOutput, OtelEndpoint, ReceivedSpan},
    postgres::PostgresEndpoint,
};
use self::{native::process::ServiceProcess, state::RunRecord};
use crate::{
    error::{Error, IoContext},
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

/// Chooses the services of a stack.
pub struct StackBuilder {
    services: Vec<ServiceKind>,
    ports: BTreeMap<ServiceKind, u16>,
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
    /// Whether missing runtimes are installed (default) or reported as an error.
    pub fn install_missing(mut self, install: bool) -> Self {
        self.install = install;
        self
    }

    /// Reaps orphans, installs what is missing, and starts every service in parallel.
    pub async fn start(self) -> Result<Stack, Error> {
        for run in state::reap().await {
            (self.progress)(&ProgressEvent::Reaped { run_id: run });
        }
        let mut fixed = BTreeMap::new();
        for (kind, port) in &self.ports {
            fixed.insert(*kind, ports::check_requested(kind.name(), *port)?);
        }
        let installed = self.runtimes().await?;
        let run_id = format!("{}-{}", std::process::id(), random_id(6));
        let run_dir = home::run_data_root().join(&run_id);
        let record = RunRecord {
            run_id: run_id.clone(),
            owner_pid: std::process::id(),
            owner_start: state::start_ticks(std::process::id()).unwrap_or(0),
            run_dir: run_dir.clone(),
            ..RunRecord::default()
        };
        record.save()?;
        let mut stack = Stack {
            record,
            processes: Vec::new(),
            detached: false,
        };
        create_run_dir(&run_dir)?;
        let record = Arc::new(std::sync::Mutex::new(stack.record.clone()));
        let starts = installed.into_iter().map(|rt| {
            let (run_dir, progress, record) =
                (run_dir.clone(), self.progress.clone(), record.clone());
            let port = fixed.get(&rt.kind).copied();
            async move { start_service(&run_dir, rt, port, &progress, &record).await }
        });
        let results = futures::future::join_all(starts).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok((process, endpoints)) => {
                    stack.processes.push(process);
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
        if let Some(e) = first_error {
            stack.shutdown().await;
            return Err(e);
        }
        stack.record.save()?;
        Ok(stack)
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

fn create_run_dir(dir: &PathBuf) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let root = home::run_data_root();
    std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    // Services that run as an unprivileged user must be able to reach their folder.
    for d in [&root, dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .ctx(|| format!("chmod {}", d.display()))?;
    }
    Ok(())
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
) -> Result<(ServiceProcess, Endpoints), Error> {
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
        let mut endpoints = Endpoints::default();
        let result = match kind {
            ServiceKind::Postgres => native::postgres::start(run_dir, &rt, port, timeout)
                .await
                .map(|(p, e)| (p, endpoints.postgres = Some(e))),
            ServiceKind::S3 => native::object_store::start(run_dir, &rt, port, timeout)
                .await
                .map(|(p, e)| (p, endpoints.s3 = Some(e))),
            ServiceKind::Neo4j => native::neo4j::start(run_dir, &rt, port, timeout)
                .await
                .map(|(p, e)| (p, endpoints.neo4j = Some(e))),
            ServiceKind::Otel => native::otel::start(run_dir, &rt, port, timeout)
                .await
                .map(|(p, e)| (p, endpoints.otel = Some(e))),
        };
        match result {
            Ok((process, ())) => {
                if let Ok(mut r) = record.lock() {
                    r.services.push((kind.name().into(), process.pid));
                    let _ = r.save();
                }
                progress(&ProgressEvent::ServiceReady {
                    service: kind.name().into(),
                    elapsed: started.elapsed(),
                });
                return Ok((process, endpoints));
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

/// A running stack.
pub struct Stack {
    record: RunRecord,
    processes: Vec<ServiceProcess>,
    detached: bool,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder {
            services: Vec::new(),
            ports: BTreeMap::new(),
            progress: progress::silent(),
            install: true,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.record.run_id
    }

    /// The folder holding every service's data and log.
    pub fn run_dir(&self) -> &std::path::Path {
        &self.record.run_dir
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.record.endpoints
    }

    /// Process-group ids of the services, by name.
    pub fn service_pids(&self) -> Vec<(String, u32)> {
        self.record.services.clone()
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
        for p in &mut self.processes {
            p.stop(Duration::from_secs(5)).await;
        }
        self.processes.clear();
        let _ = std::fs::remove_dir_all(&self.record.run_dir);
        let _ = std::fs::remove_file(RunRecord::path(&self.record.run_id));
    }

    /// Leaves the services running; `harness down` stops them.
    pub fn detach(mut self) -> Result<RunRecord, Error> {
        self.record.detached = true;
        self.record.save()?;
        for p in &mut self.processes {
            p.forget();
        }
        self.detached = true;
        Ok(self.record.clone())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.detached || self.processes.is_empty() {
            return;
        }
        for p in &mut self.processes {
            p.kill_now();
        }
        let _ = std::fs::remove_dir_all(&self.record.run_dir);
        let _ = std::fs::remove_file(RunRecord::path(&self.record.run_id));
    }
}

/// Stops detached stacks: one by id, or all of them.
pub async fn down(run_id: Option<&str>) -> Result<Vec<String>, Error> {
    let records: Vec<RunRecord> = RunRecord::load_all()
        .into_iter()
        .filter(|r| r.detached)
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
}
