//! The scenario runner: load → plan → run → events.
//!
//! [`load`] parses every file (reporting all invalid files at once, before anything
//! starts); [`plan`] checks the chosen stack and capabilities can run them; [`run`] runs the
//! scenarios on one shared stack, `jobs` at a time, each in its own database, bucket and
//! graph label, and emits [`events::Event`]s to a reporter. The runner never prints.

pub mod context;
pub mod error;
pub mod events;
pub mod faults;
pub mod isolation;
pub mod matcher;
pub mod mocks;
pub mod processes;
mod scenario;
pub mod session;
pub mod steps;
pub mod stores;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

pub use self::events::Reporter;
use harness_scenario::{Action, Diagnostics, Problem, Scenario, Service, Source, Span, Step};
use tokio::{sync::mpsc, task::JoinSet};
pub use tokio_util::sync::CancellationToken;

use self::{
    context::Redactor,
    events::{Event, FailedStep, Failure, Location, Phase, Status},
    isolation::Shared,
    steps::Extensions,
};
use crate::{
    error::{Error, ExitCode},
    stack::Endpoints,
};

/// Default time limit of a step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time limit of a scenario.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

/// A parsed scenario and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The path as given (relative paths stay relative, for stable reports).
    pub path: PathBuf,
    pub scenario: Arc<Scenario>,
    pub source: Source,
}

/// The scenario files under `paths` (folders are searched for `*.yaml`/`*.yml`, skipping
/// `snapshots/` folders and names starting with `_`), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if name != "snapshots" && name != "fixtures" {
                    walk(&path, out)?;
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::Other(format!(
                "{} does not exist; name a scenario file or a folder of them",
                p.display()
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The absolute folder of a scenario file, through any symlink: the working folder of its
/// processes and `exec` steps, and what its relative paths start from. A bare file name
/// (`healthz.yaml`), `./healthz.yaml` and a path through a symlink all give the same
/// folder.
pub fn scenario_dir(path: &Path) -> PathBuf {
    let file = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    file.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A path as a message shows it: relative to the current folder when it lies inside it.
pub fn shown_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

/// Parses every file; all invalid files are returned together.
pub fn load(files: &[PathBuf]) -> Result<Vec<Loaded>, Vec<Diagnostics>> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                bad.push(Diagnostics::new(
                    Source::new(name, ""),
                    vec![Problem::new(
                        Span::default(),
                        format!("could not read the file: {e}"),
                    )],
                ));
                continue;
            }
        };
        if path
            .file_name()
            .is_some_and(|n| n == harness_scenario::SHARED_FILE)
        {
            bad.push(Diagnostics::new(
                Source::new(name, String::from_utf8_lossy(&bytes).into_owned()),
                vec![
                    Problem::new(
                        Span::default(),
                        "this file holds the shared defaults of its folder's scenarios; it is not a scenario itself",
                    )
                    .help("name a scenario file of the folder, or the folder: each file is checked with these defaults"),
                ],
            ));
            continue;
        }
        // The folder's shared defaults, if it has them.
        let shared_path = path.with_file_name(harness_scenario::SHARED_FILE);
        let shared = match std::fs::read(&shared_path) {
            Ok(b) => Some((shared_path.display().to_string(), b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                bad.push(Diagnostics::new(
                    Source::new(shared_path.display().to_string(), ""),
                    vec![Problem::new(
                        Span::default(),
                        format!("could not read the folder's shared defaults: {e}"),
                    )],
                ));
                continue;
            }
        };
        let shared = shared.as_ref().map(|(n, b)| (n.as_str(), b.as_slice()));
        match harness_scenario::parse_files(&name, &bytes, shared) {
            Ok((s, source)) => ok.push(Loaded {
                path: path.clone(),
                source,
                scenario: Arc::new(s),
            }),
            Err(d) => bad.push(d),
        }
    }
    if bad.is_empty() { Ok(ok) } else { Err(bad) }
}

/// Services the scenarios need.
pub fn services(scenarios: &[Loaded]) -> BTreeSet<Service> {
    scenarios
        .iter()
        .flat_map(|l| l.scenario.stack.iter().copied())
        .collect()
}

/// Whether the stack of these endpoints runs `service`.
pub fn serves(endpoints: &Endpoints, service: Service) -> bool {
    match service {
        Service::Postgres => endpoints.postgres.is_some(),
        Service::S3 => endpoints.s3.is_some(),
        Service::Neo4j => endpoints.neo4j.is_some(),
        Service::Otel => endpoints.otel.is_some(),
    }
}

/// Checks that every step kind has a provider and the stack has every service needed.
pub fn plan(
    scenarios: &[Loaded],
    endpoints: &Endpoints,
    ext: &Extensions,
) -> Result<(), Vec<Diagnostics>> {
    let mut all = Vec::new();
    for l in scenarios {
        let mut problems = Vec::new();
        for step in l
            .scenario
            .steady_state
            .iter()
            .chain(&l.scenario.steps)
            .chain(&l.scenario.rollbacks)
        {
            check_extension(step, ext, &mut problems);
        }
        for svc in &l.scenario.stack {
            let present = serves(endpoints, *svc);
            if !present {
                problems.push(Problem::new(
                    l.scenario.span,
                    format!("the stack has no {}", svc.name()),
                ));
            }
        }
        if !problems.is_empty() {
            all.push(Diagnostics::new(l.source.clone(), problems));
        }
    }
    if all.is_empty() { Ok(()) } else { Err(all) }
}

fn check_extension(step: &Step, ext: &Extensions, problems: &mut Vec<Problem>) {
    match &step.action {
        Action::Reserved(r) => problems.push(
            Problem::new(
                step.span,
                format!("step kind `{}` is not available yet", r.kind),
            )
            .also(r.span, format!("comes with {}", r.capability))
            .help(format!(
                "`{}` is reserved for {}, which this version of harness does not have; \
                 `harness validate` accepts the file, `harness run` refuses it",
                r.kind, r.capability
            )),
        ),
        Action::Extension(x) => match ext.get(&x.kind) {
            None => problems.push(
                Problem::new(step.span, format!("no handler provides the experimental step kind `{}`", x.kind))
                    .also(x.span, "its arguments")
                    .help("`x-` kinds are provided by handlers registered with the runner (`RunOptions::extensions`)"),
            ),
            Some(h) => {
                if let Err(msg) = h.validate(&x.args) {
                    problems.push(Problem::new(x.span, msg));
                }
            }
        },
        Action::Eventually(e) => check_extension(&e.probe, ext, problems),
        _ => {}
    }
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub seed: u64,
    /// Keep a failed scenario's database, bucket and graph label.
    pub keep: bool,
    pub update_snapshots: bool,
    pub extensions: Extensions,
    /// Prebuilt binaries for `cargo:` packages (else they are built with cargo).
    pub bin_dir: Option<PathBuf>,
    /// Told about long waits (building `cargo:` binaries).
    pub progress: crate::progress::Progress,
    /// The run id of a Docker-provider stack: `cargo:` processes that have an image (the
    /// sample apps) run as containers labelled with it. Set by the session.
    pub containers: Option<String>,
    /// Cancelled on SIGINT/SIGTERM: running steps stop, scenarios not yet started are not
    /// started, and every scenario still cleans up its processes, mocks and isolation.
    pub cancel: CancellationToken,
    /// The stack this run started, for process faults on its services (none when attached).
    pub stack: Option<Arc<faults::StackHandle>>,
    /// `harness drill --target`: the drills act on the target's own database, not on the
    /// scenario's copy, and destroy it only when allowed.
    pub drill_target: Option<crate::drills::Target>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: 4,
            seed: 0,
            keep: false,
            update_snapshots: false,
            extensions: Extensions::default(),
            bin_dir: std::env::var_os("HARNESS_BIN_DIR").map(PathBuf::from),
            progress: crate::progress::silent(),
            containers: None,
            cancel: CancellationToken::new(),
            stack: None,
            drill_target: None,
        }
    }
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    /// With `--keep` and a scenario that did not pass: the stack left running for
    /// inspection (stop it with `harness down RUN_ID`).
    pub kept_stack: Option<String>,
}

impl Summary {
    /// 0 all passed, 1 a scenario failed, 3 a scenario could not run (environment).
    pub fn exit_code(&self) -> ExitCode {
        if self.failed > 0 {
            ExitCode::Failed
        } else if self.errored > 0 {
            ExitCode::Environment
        } else {
            ExitCode::Ok
        }
    }
}

/// Sends events to the reporter after redacting every string in them.
#[derive(Clone)]
pub(super) struct Emitter {
    pub(super) tx: mpsc::UnboundedSender<Event>,
    pub(super) redactor: Redactor,
}

impl Emitter {
    /// Redaction fails closed: an event that does not survive the round trip through its
    /// redacted JSON form is never sent raw.
    pub(super) fn emit(&self, event: Event) {
        if let Some(redacted) = redact_event(&self.redactor, &event) {
            let _ = self.tx.send(redacted);
        }
    }
}

/// The event with every secret replaced, or `None` when it cannot be redacted.
fn redact_event(redactor: &Redactor, event: &Event) -> Option<Event> {
    let mut value = serde_json::to_value(event).ok()?;
    redactor.redact_value(&mut value);
    serde_json::from_value(value).ok()
}

/// Runs the scenarios against the stack's endpoints. `secrets` are values to redact from
/// the start (the stack's generated credentials).
pub async fn run(
    scenarios: Vec<Loaded>,
    endpoints: &Endpoints,
    secrets: Vec<String>,
    options: RunOptions,
    reporter: &mut dyn Reporter,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let redactor = Redactor::default();
    for s in secrets {
        redactor.add(s);
    }
    // Leftovers of killed runs are swept only on a stack of this machine.
    let on_this_machine = crate::stack::external::guard(endpoints, false).is_ok();
    let shared = Arc::new(Shared::connect(endpoints, on_this_machine).await?);
    let builds = Arc::new(
        processes::Builds::new(options.bin_dir.clone()).in_containers(options.containers.clone()),
    );
    // Build what the scenarios run before any clock starts, so a first build never eats a
    // step's timeout. A failure shows again, with its output, in the step that needs it.
    for (dir, package) in cargo_packages(&scenarios) {
        (options.progress)(&crate::progress::ProgressEvent::Building {
            package: package.clone(),
        });
        let build = async {
            let _ = builds.binary(&dir, &package).await;
            let _ = builds.image(&dir, &package).await;
        };
        tokio::select! {
            () = build => {}
            () = options.cancel.cancelled() => {
                return Err(Error::Interrupted(format!("build {package}")));
            }
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let emitter = Emitter {
        tx,
        redactor: redactor.clone(),
    };
    let run_id = isolation::run_tag();
    emitter.emit(Event::RunStarted {
        run_id: run_id.clone(),
        scenarios: scenarios.len(),
        jobs: options.jobs.max(1),
        seed: options.seed,
    });
    let http = reqwest::Client::builder()
        .timeout(STEP_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
    let jobs = options.jobs.max(1);
    // What a killed run left (a stack start does this too; an attached run starts none).
    for run in crate::stack::reaper::reap().await {
        (options.progress)(&crate::progress::ProgressEvent::Reaped { run_id: run });
    }
    let groups = crate::stack::records::Groups::create()?;
    // Each scenario is its own task, so a panic fails that scenario, not the run, and a
    // step that blocks its thread does not stall every other scenario.
    // On a shared stack, a free slot goes to the first pending scenario that can start now
    // (the services it uses are not taken away, nor those it takes away in use), so a
    // scenario waiting for another one's outage to end does not hold a slot meanwhile.
    let mut pending: std::collections::VecDeque<(usize, Loaded)> =
        scenarios.into_iter().enumerate().collect();
    let mut tasks = JoinSet::new();
    let mut names = std::collections::HashMap::new();
    let mut statuses = Vec::new();
    loop {
        while tasks.len() < jobs {
            let next = match &options.stack {
                None => pending.pop_front().map(|p| (p, None)),
                Some(h) => {
                    let ready = pending.iter().enumerate().find_map(|(i, (_, l))| {
                        let sc = &l.scenario;
                        h.try_hold(&sc.stack, &sc.services_taken_away())
                            .map(|held| (i, held))
                    });
                    match ready {
                        Some((i, held)) => pending.remove(i).map(|p| (p, Some(held))),
                        // Nothing can start before a running scenario ends.
                        None if !tasks.is_empty() => None,
                        None => pending.pop_front().map(|p| (p, None)),
                    }
                }
            };
            let Some(((index, loaded), held)) = next else {
                break;
            };
            let about = (index, loaded.clone());
            let scenario_run = scenario::ScenarioRun {
                index,
                id: format!("{run_id}-{index}"),
                loaded,
                shared: Arc::clone(&shared),
                builds: Arc::clone(&builds),
                endpoints: endpoints.clone(),
                options: options.clone(),
                emitter: emitter.clone(),
                http: http.clone(),
                groups: groups.clone(),
                decisions: Default::default(),
                held,
            };
            let handle = tasks.spawn(scenario_run.run());
            names.insert(handle.id(), about);
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            Some(joined) = tasks.join_next_with_id() => match joined {
                Ok((id, status)) => {
                    names.remove(&id);
                    statuses.push(status);
                }
                Err(e) => {
                    if let Some((index, loaded)) = names.remove(&e.id()) {
                        emitter.emit(crashed(index, &loaded, e));
                    }
                    statuses.push(Status::Error);
                }
            },
            Some(e) = rx.recv() => reporter.event(&e),
        }
    }
    while let Ok(e) = rx.try_recv() {
        reporter.event(&e);
    }
    shared.finish_cleanups().await;
    groups.finish();
    let summary = Summary {
        passed: statuses.iter().filter(|s| **s == Status::Passed).count(),
        failed: statuses.iter().filter(|s| **s == Status::Failed).count(),
        errored: statuses.iter().filter(|s| **s == Status::Error).count(),
        kept_stack: None,
    };
    emitter.emit(Event::RunFinished {
        passed: summary.passed,
        failed: summary.failed,
        errored: summary.errored,
        duration_ms: ms(started.elapsed()),
    });
    while let Ok(e) = rx.try_recv() {
        reporter.event(&e);
    }
    reporter
        .finish()
        .map_err(|e| Error::io("write a report", e))?;
    Ok(summary)
}

/// The report of a scenario whose task panicked (a bug in harness).
fn crashed(index: usize, loaded: &Loaded, e: tokio::task::JoinError) -> Event {
    let why = if e.is_panic() {
        let payload = e.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    } else {
        "it was cancelled".into()
    };
    let (file, line, column, local) = loaded.source.position(loaded.scenario.span);
    let failure = Failure {
        message: format!(
            "harness stopped this scenario: {why} (a bug in harness; please report it)"
        ),
        expected: None,
        actual: None,
        location: Location {
            file: file.to_owned(),
            line,
            column,
            offset: local.offset,
            len: local.len,
        },
    };
    Event::ScenarioFinished {
        scenario: index,
        name: loaded.scenario.name.clone(),
        file: loaded.source.name.clone(),
        status: Status::Error,
        duration_ms: 0.0,
        setup_ms: 0.0,
        failed_step: Some(FailedStep {
            phase: Phase::Steps,
            index: 0,
            step: "scenario".into(),
            kind: "scenario".into(),
            failure,
        }),
        rollback_failures: Vec::new(),
        kept: None,
        fault_decisions: Vec::new(),
        drill: None,
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `(scenario folder, package)` of every `cargo:` process and exec step.
fn cargo_packages(scenarios: &[Loaded]) -> BTreeSet<(PathBuf, String)> {
    fn from_step(step: &Step, dir: &Path, out: &mut BTreeSet<(PathBuf, String)>) {
        match &step.action {
            Action::Exec(e) => {
                if let Some(p) = &e.cargo {
                    out.insert((dir.to_path_buf(), p.clone()));
                }
            }
            Action::Eventually(e) => from_step(&e.probe, dir, out),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for l in scenarios {
        let dir = scenario_dir(&l.path);
        for p in &l.scenario.processes {
            if let Some(c) = &p.cargo {
                out.insert((dir.clone(), c.clone()));
            }
        }
        let sc = &l.scenario;
        for step in sc.steady_state.iter().chain(&sc.steps).chain(&sc.rollbacks) {
            from_step(step, &dir, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_that_cannot_be_redacted_is_dropped_not_sent_raw() {
        let redactor = Redactor::default();
        // A secret that is also the text of a typed field: redacting it breaks the event.
        redactor.add("steps");
        let event = Event::StepFinished {
            scenario: 0,
            phase: Phase::Steps,
            index: 0,
            name: "print steps".into(),
            kind: "exec".into(),
            location: Location::default(),
            duration_ms: 0.0,
            status: Status::Passed,
            attempts: 1,
            failure: None,
        };
        assert!(redact_event(&redactor, &event).is_none());
        let plain = Redactor::default();
        assert!(
            redact_event(&plain, &event).is_some(),
            "a normal event passes"
        );
    }
}
