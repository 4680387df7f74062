//! One scenario's life on the run's shared stack: isolation, vars, mocks and processes;
//! the steady state, the steps, the rollbacks and the steady state again; mock call
//! checks; then cleanup. Every step is raced against its timeout and the run's
//! cancellation, and every outcome becomes an event.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use harness_scenario::{Action, Span, Step};

use super::{
    Emitter, Loaded, RunOptions, SCENARIO_TIMEOUT, STEP_TIMEOUT,
    context::Ctx,
    events::{Event, FailedStep, Failure, Location, Phase, Status},
    isolation::{self, Shared},
    mocks, ms, processes, scenario_dir,
    steps::{self, StepError},
};

pub(super) struct ScenarioRun {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) loaded: Loaded,
    pub(super) shared: Arc<Shared>,
    pub(super) builds: Arc<processes::Builds>,
    pub(super) endpoints: crate::stack::Endpoints,
    pub(super) options: RunOptions,
    pub(super) emitter: Emitter,
    pub(super) http: reqwest::Client,
    pub(super) groups: crate::stack::records::Groups,
    /// The fault proxies' decisions, taken when the steps end.
    pub(super) decisions: std::sync::Mutex<Vec<crate::faults::Decision>>,
    /// What the scheduler already holds of the shared stack for it (else it waits here).
    pub(super) held: Option<Vec<super::faults::Held>>,
}

impl ScenarioRun {
    fn location(&self, span: Span) -> Location {
        // A span may point into the folder's shared defaults rather than the file.
        let (file, line, column, local) = self.loaded.source.position(span);
        Location {
            file: file.to_owned(),
            line,
            column,
            offset: local.offset,
            len: local.len,
        }
    }

    fn failure(&self, e: &StepError, fallback: Span) -> Failure {
        let (expected, actual) = match e {
            StepError::Failed {
                expected, actual, ..
            } => (expected.clone(), actual.clone()),
            StepError::Error { .. } => (None, None),
        };
        Failure {
            message: e.message().to_owned(),
            expected,
            actual,
            location: self.location(e.span().unwrap_or(fallback)),
        }
    }

    pub(super) async fn run(mut self) -> Status {
        let started = Instant::now();
        let sc = Arc::clone(&self.loaded.scenario);
        self.emitter.emit(Event::ScenarioStarted {
            scenario: self.index,
            name: sc.name.clone(),
            file: self.loaded.source.name.clone(),
        });
        let dir = scenario_dir(&self.loaded.path);
        let cancel = self.options.cancel.clone();
        // A scenario that takes a stack service away runs alone among those using it.
        let _held = match (self.held.take(), &self.options.stack) {
            (Some(held), _) => held,
            (None, Some(h)) => h.hold(&sc.stack, &sc.services_taken_away()).await,
            (None, None) => Vec::new(),
        };
        if cancel.is_cancelled() {
            let failure = self.failure(&interrupted(), sc.span);
            return self.finish(
                started,
                0.0,
                Some(self.setup_failure(failure)),
                Vec::new(),
                None,
                None,
            );
        }
        let setup_started = Instant::now();
        let iso = self.shared.prepare(&self.id, &sc, &dir).await;
        let setup_ms = ms(setup_started.elapsed());
        let iso = match iso {
            Ok(iso) => iso,
            Err(message) => {
                let failure = self.failure(&StepError::error(message), sc.span);
                return self.finish(
                    started,
                    setup_ms,
                    Some(self.setup_failure(failure)),
                    Vec::new(),
                    None,
                    None,
                );
            }
        };
        let mut ctx = Ctx::new(
            Arc::clone(&sc),
            self.loaded.source.clone(),
            self.loaded.path.clone(),
            self.endpoints.clone(),
            iso,
            self.emitter.redactor.clone(),
            self.http.clone(),
            self.options.seed.wrapping_add(self.index as u64),
            self.options.update_snapshots,
        );
        ctx.builds = Arc::clone(&self.builds);
        ctx.stack = self.options.stack.clone();
        ctx.drill.target = self.options.drill_target.clone();
        ctx.groups = Some(self.groups.clone());
        let mut iso_guard = isolation::IsolationGuard::new(Arc::clone(&self.shared), &ctx.iso);
        let mut failed: Option<FailedStep> = None;
        let mut rollback_failures = Vec::new();
        let mut running_mocks = Vec::new();
        if sc.uses_supabase
            && let Err(e) = ctx.start_supabase().await
        {
            failed = Some(self.setup_failure(self.failure(&e, sc.span)));
        }
        match if failed.is_none() {
            ctx.resolve_vars()
        } else {
            Ok(())
        } {
            Ok(()) if failed.is_some() => {}
            Ok(()) => match mocks::start(&mut ctx, &sc.mocks).await {
                Ok(m) => running_mocks = m,
                Err(e) => failed = Some(self.setup_failure(self.failure(&e, sc.span))),
            },
            Err(e) => failed = Some(self.setup_failure(self.failure(&e, sc.span))),
        }
        let proxied = !sc.fault_targets.is_empty()
            || !sc.fault_processes.is_empty()
            || !sc.fault_mocks.is_empty();
        if failed.is_none() && proxied {
            // Before the processes, which are given the proxies' addresses; the mocks'
            // proxies now, the processes' as each starts.
            let started =
                super::faults::ScenarioFaults::start(&ctx.endpoints, &sc.fault_targets, ctx.seed)
                    .await;
            let started = match started {
                Ok(f) => {
                    let mut result = Ok(f);
                    for name in &sc.fault_mocks {
                        let port = ctx
                            .mocks
                            .get(name)
                            .and_then(|url| url.rsplit(':').next())
                            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
                        if let (Ok(f), Some(port)) = (&result, port)
                            && let Err(e) = f.front("mocks", name, port).await
                        {
                            result = Err(e);
                        }
                    }
                    result
                }
                Err(e) => Err(e),
            };
            match started {
                Ok(f) => ctx.faults = Some(Arc::new(f)),
                Err(message) => {
                    failed =
                        Some(self.setup_failure(self.failure(&StepError::error(message), sc.span)))
                }
            }
        }
        if failed.is_none() {
            let started_at = Instant::now();
            let start = tokio::select! {
                r = processes::start(&mut ctx, &sc.processes) => r,
                () = cancel.cancelled() => Err(("(all)".to_owned(), interrupted())),
            };
            match start {
                Ok(p) => ctx.running = p,
                Err((name, e)) => {
                    failed = Some(self.process_failure(&name, &e, ms(started_at.elapsed())))
                }
            }
        }
        let deadline = tokio::time::Instant::now() + sc.timeout.map_or(SCENARIO_TIMEOUT, |d| d.0);

        if failed.is_none() {
            failed = self
                .phase(
                    &mut ctx,
                    Phase::SteadyStateBefore,
                    &sc.steady_state,
                    Some(deadline),
                )
                .await;
        }
        let steps_failure = if failed.is_none() {
            self.phase(&mut ctx, Phase::Steps, &sc.steps, Some(deadline))
                .await
        } else {
            self.skip(Phase::Steps, &sc.steps);
            None
        };
        failed = failed.or(steps_failure);
        // Every fault goes before the rollbacks, whatever ended the steps; first what a
        // schedule still had to come.
        ctx.process_faults.settle().await;
        if let Some(f) = &ctx.faults {
            f.clear_all().await;
            *self.decisions.lock().unwrap_or_else(|e| e.into_inner()) = f.decisions.log();
        }
        // A scheduled fault that could not be applied fails its `schedule` step.
        for (message, at) in ctx.process_faults.take_failures() {
            let index = sc.steps.iter().position(|s| match &s.action {
                harness_scenario::Action::Schedule(x) => x.0.iter().any(|t| t.span == at),
                _ => false,
            });
            if let (Some(index), None) = (index, &failed) {
                let step = &sc.steps[index];
                failed = Some(FailedStep {
                    phase: Phase::Steps,
                    index,
                    step: step.display_name(index),
                    kind: "schedule".into(),
                    failure: self.failure(&StepError::failed(message), at),
                });
            }
        }
        let undone = ctx.process_faults.undo_all(ctx.stack.as_deref()).await;
        if !undone.is_empty() && failed.is_none() {
            let e = StepError::error(format!("faults: {}", undone.join("; ")));
            failed = Some(self.setup_failure(self.failure(&e, sc.span)));
        }
        // Rollbacks always run, each one, whatever happened before (unless the run was
        // interrupted: then only the cleanup below runs).
        for (i, step) in sc.rollbacks.iter().enumerate() {
            if cancel.is_cancelled() {
                self.skip(Phase::Rollbacks, &sc.rollbacks[i..]);
                break;
            }
            // A rollback undoes what a step did, with what that step captured; when the
            // capture was never taken, there is nothing of it to undo.
            let missing: Vec<&str> = sc
                .captures_used
                .get(&(harness_scenario::Phase::Rollbacks, i))
                .into_iter()
                .flatten()
                .filter(|c| !ctx.captures.contains_key(*c))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                self.skip_with_note(i, step, &missing);
                continue;
            }
            if let Err(f) = self.step(&mut ctx, Phase::Rollbacks, i, step, None).await {
                rollback_failures.push(f);
            }
        }
        if cancel.is_cancelled() {
            self.skip(Phase::SteadyStateAfter, &sc.steady_state);
        } else if !sc.steady_state.is_empty() {
            let after = self
                .phase(&mut ctx, Phase::SteadyStateAfter, &sc.steady_state, None)
                .await;
            failed = failed.or(after);
        }
        for m in &running_mocks {
            if let Some(want) = m.expect_calls {
                let got = m.calls().await as u64;
                if got != want {
                    let e = StepError::Failed {
                        message: format!(
                            "mock `{}` received {got} matching calls, expected {want}{}",
                            m.name,
                            mocks::unmatched_notes(std::slice::from_ref(m)).await
                        ),
                        expected: Some(want.to_string()),
                        actual: Some(got.to_string()),
                        span: Some(m.span),
                    };
                    let failure = self.failure(&e, m.span);
                    self.emitter.emit(Event::StepFinished {
                        scenario: self.index,
                        phase: Phase::Verify,
                        index: 0,
                        name: format!("mock {}", m.name),
                        kind: "mock".into(),
                        location: failure.location.clone(),
                        duration_ms: 0.0,
                        status: Status::Failed,
                        attempts: 1,
                        failure: Some(failure.clone()),
                    });
                    failed = failed.or(Some(FailedStep {
                        phase: Phase::Verify,
                        index: 0,
                        step: format!("mock {}", m.name),
                        kind: "mock".into(),
                        failure,
                    }));
                }
            }
        }
        // A request that matched no stub got a 404, which is often why a step failed.
        if let Some(f) = &mut failed
            && !matches!(f.phase, Phase::Setup | Phase::Verify)
        {
            f.failure
                .message
                .push_str(&mocks::unmatched_notes(&running_mocks).await);
        }
        drop(running_mocks);
        let is_bad = failed.is_some() || !rollback_failures.is_empty();
        let keeping = is_bad && self.options.keep && !cancel.is_cancelled();
        // The processes' logs usually say why a step failed: their tails go with the
        // failure, and `--keep` keeps the logs whole.
        let logs_in = keeping.then(|| crate::home::home().join("kept").join(&ctx.iso.id));
        if let Some(f) = &mut failed
            && !ctx.running.is_empty()
            && !matches!(f.phase, Phase::Setup)
        {
            let notes = processes::log_notes(&ctx.running, logs_in.as_deref());
            // (Redacted with the event that carries it.)
            f.failure.message.push_str(&notes);
        }
        processes::stop(std::mem::take(&mut ctx.running), logs_in.as_deref()).await;
        // A drill's writer stops before the database goes; its backups go with the drill.
        ctx.drill.close().await;
        let drill = ctx.drill.report.take().map(Box::new);
        if let Some(s) = ctx.supabase.take() {
            s.shutdown().await;
        }
        if let Some(c) = ctx.cloud_run.take() {
            c.shutdown().await;
            let dir = c.log_dir().to_path_buf();
            if let Some(kept) = &logs_in {
                let _ = std::fs::create_dir_all(kept);
                let _ = std::fs::rename(&dir, kept.join("cloud-run"));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        let kept = if keeping {
            Some(describe_kept(&ctx.iso))
        } else {
            self.shared.cleanup(&ctx.iso).await;
            None
        };
        iso_guard.disarm();
        self.finish(started, setup_ms, failed, rollback_failures, kept, drill)
    }

    /// A process that does not start is a failure of the system under test, not of the
    /// environment.
    fn process_failure(&self, name: &str, e: &StepError, duration_ms: f64) -> FailedStep {
        let failure = self.failure(e, self.loaded.scenario.span);
        let status = match e {
            StepError::Failed { .. } => Status::Failed,
            StepError::Error { .. } => Status::Error,
        };
        let step = format!("start process {name}");
        self.emitter.emit(Event::StepFinished {
            scenario: self.index,
            phase: Phase::Setup,
            index: 0,
            name: step.clone(),
            kind: "process".into(),
            location: failure.location.clone(),
            duration_ms,
            status,
            attempts: 1,
            failure: Some(failure.clone()),
        });
        FailedStep {
            phase: Phase::Setup,
            index: 0,
            step,
            kind: "process".into(),
            failure,
        }
    }

    fn setup_failure(&self, failure: Failure) -> FailedStep {
        self.emitter.emit(Event::StepFinished {
            scenario: self.index,
            phase: Phase::Setup,
            index: 0,
            name: "setup".into(),
            kind: "setup".into(),
            location: failure.location.clone(),
            duration_ms: 0.0,
            status: Status::Error,
            attempts: 1,
            failure: Some(failure.clone()),
        });
        FailedStep {
            phase: Phase::Setup,
            index: 0,
            step: "setup".into(),
            kind: "setup".into(),
            failure,
        }
    }

    fn finish(
        &self,
        started: Instant,
        setup_ms: f64,
        failed: Option<FailedStep>,
        rollback_failures: Vec<FailedStep>,
        kept: Option<String>,
        drill: Option<Box<crate::drills::DrillReport>>,
    ) -> Status {
        let status = match &failed {
            // Harness could not set the scenario up: an environment error. A process that
            // exits or never gets ready is a failure of the system under test.
            Some(f)
                if f.phase == Phase::Setup
                    && (f.kind != "process" || f.failure.expected.is_none()) =>
            {
                Status::Error
            }
            // A step that could not be carried out still fails the scenario: the scenario
            // asked for something the system could not do.
            Some(_) => Status::Failed,
            None if !rollback_failures.is_empty() => Status::Failed,
            None => Status::Passed,
        };
        self.emitter.emit(Event::ScenarioFinished {
            scenario: self.index,
            name: self.loaded.scenario.name.clone(),
            file: self.loaded.source.name.clone(),
            status,
            duration_ms: ms(started.elapsed()),
            setup_ms,
            failed_step: failed,
            rollback_failures,
            kept,
            fault_decisions: std::mem::take(
                &mut *self.decisions.lock().unwrap_or_else(|e| e.into_inner()),
            ),
            drill,
        });
        status
    }

    /// Runs steps in order until one fails; the rest are reported as skipped.
    async fn phase(
        &self,
        ctx: &mut Ctx,
        phase: Phase,
        steps: &[Step],
        deadline: Option<tokio::time::Instant>,
    ) -> Option<FailedStep> {
        for (i, step) in steps.iter().enumerate() {
            if let Err(f) = self.step(ctx, phase, i, step, deadline).await {
                self.skip(phase, &steps[i + 1..]);
                return Some(f);
            }
        }
        None
    }

    fn skip(&self, phase: Phase, steps: &[Step]) {
        let offset = match phase {
            Phase::Steps => self.loaded.scenario.steps.len() - steps.len(),
            _ => 0,
        };
        for (i, step) in steps.iter().enumerate() {
            self.emitter.emit(Event::StepFinished {
                scenario: self.index,
                phase,
                index: offset + i,
                name: step.display_name(offset + i),
                kind: step.action.kind().to_owned(),
                location: self.location(step.span),
                duration_ms: 0.0,
                status: Status::Skipped,
                attempts: 0,
                failure: None,
            });
        }
    }

    /// Reports a rollback as skipped because the captures it uses were never taken.
    fn skip_with_note(&self, index: usize, step: &Step, missing: &[&str]) {
        let names = missing
            .iter()
            .map(|c| format!("`${{captures.{c}}}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!(
            "skipped: it uses {names}, which no step captured (the step that captures it \
             failed or did not run), so there is nothing of it to undo"
        );
        self.emitter.emit(Event::StepFinished {
            scenario: self.index,
            phase: Phase::Rollbacks,
            index,
            name: step.display_name(index),
            kind: step.action.kind().to_owned(),
            location: self.location(step.span),
            duration_ms: 0.0,
            status: Status::Skipped,
            attempts: 0,
            failure: Some(Failure {
                message,
                expected: None,
                actual: None,
                location: self.location(step.span),
            }),
        });
    }

    async fn step(
        &self,
        ctx: &mut Ctx,
        phase: Phase,
        index: usize,
        step: &Step,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), FailedStep> {
        let started = Instant::now();
        // harness's own leak trial (benches/leaks.sh) ends runs with a panic this way.
        if std::env::var("HARNESS_DEBUG_PANIC_IN_STEP").is_ok_and(|n| n == step.display_name(index))
        {
            panic!(
                "HARNESS_DEBUG_PANIC_IN_STEP names step `{}`",
                step.display_name(index)
            );
        }
        let mut limit = step.timeout.map_or_else(|| default_timeout(step), |d| d.0);
        let mut scenario_limit = false;
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(tokio::time::Instant::now());
            if left < limit {
                limit = left;
                scenario_limit = true;
            }
        }
        let timed = tokio::time::timeout(limit, steps::run(ctx, step, &self.options.extensions));
        let result = match tokio::select! {
            r = timed => r,
            () = self.options.cancel.cancelled() => Ok(Err(interrupted())),
        } {
            Ok(r) => r,
            Err(_) => Err(StepError::Failed {
                message: if scenario_limit {
                    "the scenario's timeout passed during this step".into()
                } else {
                    format!("step timed out after {limit:?}")
                },
                expected: Some(format!("done within {limit:?}")),
                actual: Some("still running".into()),
                span: Some(step.span),
            }),
        };
        let (status, attempts, failure) = match &result {
            Ok(n) => (Status::Passed, *n, None),
            Err(e @ StepError::Failed { .. }) => {
                (Status::Failed, 1, Some(self.failure(e, step.span)))
            }
            Err(e @ StepError::Error { .. }) => {
                (Status::Failed, 1, Some(self.failure(e, step.span)))
            }
        };
        self.emitter.emit(Event::StepFinished {
            scenario: self.index,
            phase,
            index,
            name: step.display_name(index),
            kind: step.action.kind().to_owned(),
            location: self.location(step.span),
            duration_ms: ms(started.elapsed()),
            status,
            attempts,
            failure: failure.clone(),
        });
        match failure {
            None => Ok(()),
            Some(failure) => Err(FailedStep {
                phase,
                index,
                step: step.display_name(index),
                kind: step.action.kind().to_owned(),
                failure,
            }),
        }
    }
}

/// What a step or setup that a signal stopped reports.
fn interrupted() -> StepError {
    StepError::error("interrupted by a signal; the scenario was cleaned up")
}

/// A step's time limit when it sets none: `eventually` gets its own timeout plus the time
/// one more probe may take, so its own timeout is what decides.
fn default_timeout(step: &Step) -> Duration {
    match &step.action {
        Action::Eventually(e) => e.timeout.0 + e.probe.timeout.map_or(STEP_TIMEOUT, |d| d.0),
        _ => STEP_TIMEOUT,
    }
}

fn describe_kept(iso: &isolation::Isolation) -> String {
    let mut parts = Vec::new();
    if let Some(db) = &iso.database {
        parts.push(format!("database {db}"));
    }
    if let Some(b) = &iso.bucket {
        parts.push(format!("bucket {b}"));
    }
    if let Some(l) = &iso.graph_label {
        parts.push(format!("graph label {l}"));
    }
    parts.join(", ")
}
