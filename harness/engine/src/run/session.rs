//! One `harness run`: find and parse the files, bring up (or attach to) a stack with the
//! services they need, plan, run, and stop the stack. Shared by the CLI and the nextest
//! harness so both behave the same.

use std::path::PathBuf;

use harness_scenario::{Diagnostics, Service};

use super::{Loaded, RunOptions, Summary, discover, events::Reporter, load, plan, services};
use crate::{
    error::Error,
    progress::Progress,
    stack::{Endpoints, ProviderKind, ServiceKind, Stack},
};

/// Where the stack comes from.
#[derive(Clone, Debug, Default)]
pub enum StackSource {
    /// Start the services the scenarios need with the default provider
    /// (`HARNESS_PROVIDER`, else native), and stop them afterwards.
    #[default]
    Start,
    /// The same, with this provider.
    StartWith(ProviderKind),
    /// Use a stack started with `harness up --detach` (its run id).
    Attach(String),
    /// Use these endpoints of a stack someone else runs (`harness drill --target`), checked
    /// by the caller: never started, stopped or recorded.
    Endpoints(Box<Endpoints>),
}

/// Why a session did not produce a summary.
#[derive(Debug)]
pub enum SessionError {
    /// Some files are not valid scenarios (exit 2; nothing was started).
    Invalid(Vec<Diagnostics>),
    /// The stack could not be started or reached (exit 3), or a path is bad (exit 2).
    Env(Error),
}

impl From<Error> for SessionError {
    fn from(e: Error) -> Self {
        SessionError::Env(e)
    }
}

/// Parses everything under `paths`; invalid files are reported together.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Loaded>, SessionError> {
    let files = discover(paths).map_err(|e| match e {
        Error::Other(m) => SessionError::Env(Error::BadInput(m)),
        other => SessionError::Env(other),
    })?;
    if files.is_empty() {
        return Err(SessionError::Env(Error::BadInput(format!(
            "find scenarios: no *.yaml files under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))));
    }
    load(&files).map_err(SessionError::Invalid)
}

/// Whether these scenarios can run on a stack that other runs use at the same time: none
/// takes a stack service away (kills, pauses or stops one, or changes what every database
/// of the server shares), and the stack has every service they need.
pub fn can_share_stack(scenarios: &[Loaded], endpoints: &Endpoints) -> bool {
    scenarios.iter().all(|l| {
        !l.scenario.faults_stack_processes()
            && l.scenario
                .stack
                .iter()
                .all(|s| super::serves(endpoints, *s))
    })
}

/// Whether the files under `paths` can run on the recorded stack `run_id` while other runs
/// use it ([`can_share_stack`]); false when they do not load or the stack is not recorded.
pub fn can_share_recorded(paths: &[PathBuf], run_id: &str) -> bool {
    let Ok(loaded) = load_paths(paths) else {
        return false;
    };
    crate::stack::list()
        .into_iter()
        .find(|r| r.run_id == run_id)
        .is_some_and(|r| can_share_stack(&loaded, &r.endpoints))
}

/// Values the stack generated that must never appear in output.
pub fn stack_secrets(e: &Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pg) = &e.postgres {
        out.push(pg.password.expose().to_owned());
        out.push(pg.url.expose().to_owned());
    }
    if let Some(s3) = &e.s3 {
        out.push(s3.secret_access_key.expose().to_owned());
    }
    if let Some(n) = &e.neo4j {
        out.push(n.password.expose().to_owned());
    }
    out
}

/// Runs loaded scenarios on a stack from `source`. `extra` adds services no scenario asks
/// for (the collector for `--trace otlp`); `make_reporter` is called once the endpoints are
/// known.
pub async fn run_loaded<F>(
    scenarios: Vec<Loaded>,
    source: &StackSource,
    options: RunOptions,
    progress: Progress,
    extra: &[Service],
    make_reporter: F,
) -> Result<Summary, SessionError>
where
    F: FnOnce(&Endpoints) -> Result<Box<dyn Reporter>, Error>,
{
    let mut needed = services(&scenarios);
    needed.extend(extra.iter().copied());
    let (stack, endpoints) = match source {
        StackSource::Start | StackSource::StartWith(_) => {
            let mut builder = Stack::builder().progress(progress);
            if let StackSource::StartWith(p) = source {
                builder = builder.provider(*p);
            }
            for s in &needed {
                builder = builder.service(kind(*s));
            }
            if needed.is_empty() {
                (None, Endpoints::default())
            } else {
                // A signal during start-up drops the half-started stack, whose guards stop
                // every service that was already running.
                let stack = tokio::select! {
                    s = builder.start() => s?,
                    () = options.cancel.cancelled() => {
                        return Err(SessionError::Env(Error::Interrupted("start the stack".into())));
                    }
                };
                let endpoints = stack.endpoints().clone();
                (Some(stack), endpoints)
            }
        }
        StackSource::Attach(run_id) => {
            let record = crate::stack::list()
                .into_iter()
                .find(|r| &r.run_id == run_id)
                .ok_or_else(|| Error::NoSuchRun(run_id.clone()))?;
            // The record may have changed since `harness up`: check it again.
            crate::stack::external::guard(&record.endpoints, record.allow_remote)?;
            (None, record.endpoints)
        }
        StackSource::Endpoints(e) => (None, (**e).clone()),
    };
    let mut options = options;
    let docker_run = match (&stack, source) {
        (Some(s), _) if s.provider() == ProviderKind::Docker => Some(s.run_id().to_owned()),
        (None, StackSource::Attach(id)) => crate::stack::list()
            .into_iter()
            .find(|r| &r.run_id == id && r.provider == ProviderKind::Docker)
            .map(|r| r.run_id),
        _ => None,
    };
    options.containers = docker_run;
    // Process faults reach the stack through this; it comes back out after the run.
    let stack = stack.map(super::faults::StackHandle::new);
    options.stack = stack.clone();
    let keep = options.keep;
    let cancel = options.cancel.clone();
    let mut outcome = match plan(&scenarios, &endpoints, &options.extensions) {
        Err(d) => Err(SessionError::Invalid(d)),
        Ok(()) => match make_reporter(&endpoints) {
            Ok(mut reporter) => super::run(
                scenarios,
                &endpoints,
                stack_secrets(&endpoints),
                options,
                reporter.as_mut(),
            )
            .await
            .map_err(SessionError::Env),
            Err(e) => Err(SessionError::Env(e)),
        },
    };
    let stack = match stack {
        Some(handle) => handle.take().await,
        None => None,
    };
    if let Some(stack) = stack {
        let inspect =
            keep && !cancel.is_cancelled() && matches!(&outcome, Ok(s) if s.failed + s.errored > 0);
        if inspect {
            // What `--keep` kept (databases, buckets, labels) lives in this stack.
            let record = stack.detach()?;
            if let Ok(summary) = outcome.as_mut() {
                summary.kept_stack = Some(record.run_id);
            }
        } else {
            stack.shutdown().await;
        }
    }
    if cancel.is_cancelled() && outcome.is_ok() {
        return Err(SessionError::Env(Error::Interrupted(
            "run the scenarios".into(),
        )));
    }
    outcome
}

pub(crate) fn kind(s: Service) -> ServiceKind {
    match s {
        Service::Postgres => ServiceKind::Postgres,
        Service::S3 => ServiceKind::S3,
        Service::Neo4j => ServiceKind::Neo4j,
        Service::Otel => ServiceKind::Otel,
    }
}
