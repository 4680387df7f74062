//! `fault` and `schedule`: map a fault's arguments onto the scenario's fault proxies of its
//! target, or onto the stack's or a scenario process's process (`run/faults.rs` over
//! `faults/` and `Stack::fault`); nothing else happens here.

use std::{collections::BTreeMap, sync::Arc};

use harness_scenario::kinds::{
    fault::{Fault, FaultStream, ProcessAction},
    schedule::Schedule,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::{
    faults::{
        Bandwidth, HttpFault, Latency, LimitData, ResetPeer, Slicer, SlowClose, Stream, Timeout,
        Toxic, ToxicKind,
    },
    run::{
        context::Ctx,
        faults::{Left, ProcessFaults, ScenarioFaults, StackHandle, Target, signal_group, undo},
    },
    stack::Fault as StackFault,
};

fn ms(d: &harness_scenario::Dur) -> u64 {
    d.0.as_millis() as u64
}

/// The toxic a step asks for, or `None` for `down` and `clear`.
fn toxic(f: &Fault) -> Option<Toxic> {
    let kind = if let Some(l) = &f.latency {
        ToxicKind::Latency(Latency {
            latency: ms(l),
            jitter: f.jitter.as_ref().map_or(0, ms),
        })
    } else if let Some(rate) = f.bandwidth {
        ToxicKind::Bandwidth(Bandwidth { rate })
    } else if let Some(t) = &f.timeout {
        ToxicKind::Timeout(Timeout { timeout: ms(t) })
    } else if let Some(t) = &f.reset_peer {
        ToxicKind::ResetPeer(ResetPeer { timeout: ms(t) })
    } else if let Some(t) = &f.slow_close {
        ToxicKind::SlowClose(SlowClose { delay: ms(t) })
    } else if let Some(s) = &f.slicer {
        ToxicKind::Slicer(Slicer {
            average_size: s.average_size,
            size_variation: s.size_variation,
            delay: s.delay.map_or(0, |d| d.0.as_micros() as u64),
        })
    } else if let Some(bytes) = f.limit_data {
        ToxicKind::LimitData(LimitData { bytes })
    } else {
        return None;
    };
    let stream = match f.stream {
        Some(FaultStream::Upstream) => Stream::Upstream,
        _ => Stream::Downstream,
    };
    let mut t = Toxic::new(stream, kind);
    t.toxicity = f.toxicity.unwrap_or(1.0);
    Some(t)
}

/// What a process fault leaves, for the end of the steps to undo (`None`: nothing).
fn leaves(a: ProcessAction) -> Option<Left> {
    match a {
        ProcessAction::Pause => Some(Left::Paused),
        ProcessAction::Stop | ProcessAction::Kill => Some(Left::Down),
        ProcessAction::Unpause | ProcessAction::Start | ProcessAction::Restart => None,
    }
}

fn stack_fault(a: ProcessAction) -> StackFault {
    match a {
        ProcessAction::Pause => StackFault::Pause,
        ProcessAction::Unpause => StackFault::Unpause,
        ProcessAction::Stop => StackFault::Stop,
        ProcessAction::Kill => StackFault::Kill,
        ProcessAction::Start => StackFault::Start,
        ProcessAction::Restart => StackFault::Restart,
    }
}

/// What applying a fault needs of the scenario, owned, so a `schedule` can apply its faults
/// from a task of its own.
#[derive(Clone)]
pub(crate) struct FaultEnv {
    faults: Option<Arc<ScenarioFaults>>,
    stack: Option<Arc<StackHandle>>,
    process_groups: BTreeMap<String, u32>,
    process_faults: Arc<ProcessFaults>,
}

impl FaultEnv {
    fn of(ctx: &Ctx) -> Self {
        FaultEnv {
            faults: ctx.faults.clone(),
            stack: ctx.stack.clone(),
            process_groups: ctx.process_groups.clone(),
            process_faults: Arc::clone(&ctx.process_faults),
        }
    }
}

/// A process fault (or `clear`'s undoing of one) on a stack service or a scenario process.
async fn process_fault(
    f: &Fault,
    ctx: &FaultEnv,
    action: Option<ProcessAction>,
) -> Result<Value, StepError> {
    let error = |e: String| StepError::error(format!("fault on {}: {e}", f.target_name()));
    let target = match (&f.target, &f.process) {
        (Some(s), _) => Target::Service(*s),
        (None, Some(name)) => {
            let pgid = ctx.process_groups.get(name).copied().ok_or_else(|| {
                error("it runs in a container; process faults reach host processes only".into())
            })?;
            Target::Process(name.clone(), pgid)
        }
        (None, None) => return Err(error("the step names no target".into())),
    };
    let stack = ctx.stack.clone();
    let Some(action) = action else {
        // `clear`: bring it back from whatever a fault left.
        if let Some(state) = ctx.process_faults.left(&target) {
            undo(&target, state, stack.as_deref())
                .await
                .map_err(error)?;
            ctx.process_faults.note(target, None);
        }
        return Ok(json!({"target": f.target_name(), "fault": "clear"}));
    };
    match &target {
        Target::Service(s) => {
            let stack = stack.as_ref().ok_or_else(|| {
                error(format!(
                    "process faults need the stack this run started; an attached stack (`--attach`) cannot `{}` its services",
                    action.name()
                ))
            })?;
            stack.fault(*s, stack_fault(action)).await.map_err(error)?;
        }
        Target::Process(_, pgid) => {
            let signal = match action {
                ProcessAction::Pause => Signal::SIGSTOP,
                ProcessAction::Unpause => Signal::SIGCONT,
                ProcessAction::Stop => Signal::SIGTERM,
                ProcessAction::Kill => Signal::SIGKILL,
                ProcessAction::Start | ProcessAction::Restart => {
                    return Err(error(format!(
                        "`{}` works on stack services",
                        action.name()
                    )));
                }
            };
            signal_group(*pgid, signal).map_err(error)?;
        }
    }
    ctx.process_faults.note(target.clone(), leaves(action));
    if let (Some(d), Some(state)) = (f.duration, leaves(action)) {
        let faults = Arc::clone(&ctx.process_faults);
        faults.after(tokio::spawn({
            let faults = Arc::clone(&faults);
            async move {
                tokio::time::sleep(d.0).await;
                // Once begun, the undoing is not cut short by the end of the steps.
                let inner = Arc::clone(&faults);
                faults.begin(async move {
                    if inner.left(&target) == Some(state)
                        && undo(&target, state, stack.as_deref()).await.is_ok()
                    {
                        inner.note(target, None);
                    }
                });
            }
        }));
    }
    Ok(json!({"target": f.target_name(), "fault": action.name()}))
}

impl Handler for Fault {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        // A scenario process started again needs the scenario's own start-up.
        if let (Some(name), Some(a @ (ProcessAction::Start | ProcessAction::Restart))) =
            (&self.process, self.process_action())
        {
            super::super::processes::start_again(ctx, name, a == ProcessAction::Restart).await?;
            // It is back: nothing of an earlier fault on it is left to undo.
            for stale in ctx.process_faults.targets_named(name) {
                ctx.process_faults.note(stale, None);
            }
            return Ok(Some(
                json!({"target": self.target_name(), "fault": a.name()}),
            ));
        }
        apply(self, &FaultEnv::of(ctx)).await.map(Some)
    }
}

impl Handler for Schedule {
    type Output = Value;

    /// Starts the timeline and returns: each fault is applied at its `at` by a task that
    /// the end of the steps stops; one that fails is reported then.
    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let env = FaultEnv::of(ctx);
        let started = tokio::time::Instant::now();
        let mut shown = Vec::new();
        for t in &self.0 {
            let (fault, offset, span, env2) = (t.fault.clone(), t.at.0, t.span, env.clone());
            shown
                .push(json!({"at_ms": t.at.0.as_millis() as u64, "target": t.fault.target_name()}));
            env.process_faults.after(tokio::spawn(async move {
                tokio::time::sleep_until(started + offset).await;
                // Once begun, a fault is applied whole (and then undone with the rest).
                let faults = Arc::clone(&env2.process_faults);
                faults.begin(async move {
                    if let Err(e) = apply(&fault, &env2).await {
                        env2.process_faults.failed(
                            format!(
                                "the fault scheduled at {offset:?} on {}: {}",
                                fault.target_name(),
                                e.message()
                            ),
                            span,
                        );
                    }
                });
            }));
        }
        Ok(Some(json!({ "scheduled": shown })))
    }
}

/// What a network fault acts on: the proxies of a stack service, or the one of a scenario
/// process or mock (`processes.NAME` / `mocks.NAME`).
#[derive(Clone)]
enum Fronted {
    Service(harness_scenario::Service),
    Named(String),
}

fn proxies_of(faults: &ScenarioFaults, which: &Fronted) -> Vec<Arc<crate::faults::Proxy>> {
    match which {
        Fronted::Service(s) => faults.shared_of(*s),
        Fronted::Named(key) => faults.named(key).into_iter().collect(),
    }
}

/// Applies one fault.
async fn apply(this: &Fault, ctx: &FaultEnv) -> Result<Value, StepError> {
    let action = this.process_action();
    if action.is_some() {
        return process_fault(this, ctx, action).await;
    }
    let shown = this.target_name();
    let which = match (&this.target, &this.process, &this.mock) {
        (Some(s), _, _) => Fronted::Service(*s),
        (None, Some(p), _) => Fronted::Named(format!("processes.{p}")),
        (None, None, Some(m)) => Fronted::Named(format!("mocks.{m}")),
        (None, None, None) => return Err(StepError::error("the step names no target")),
    };
    if this.clear == Some(true) && this.mock.is_none() {
        // A target both proxied and paused is brought back from both.
        process_fault(this, ctx, None).await?;
    }
    let proxies = ctx
        .faults
        .as_ref()
        .map(|f| proxies_of(f, &which))
        .unwrap_or_default();
    if this.clear == Some(true) && proxies.is_empty() {
        return Ok(json!({"target": shown, "fault": "clear"}));
    }
    let Some(faults) = ctx.faults.clone().filter(|_| !proxies.is_empty()) else {
        return Err(StepError::error(format!(
            "{shown} has no fault proxy in this scenario"
        )));
    };
    let error = |e: String| StepError::error(format!("fault on {shown}: {e}"));
    let what;
    if this.clear == Some(true) {
        what = "clear".to_owned();
        for p in &proxies {
            p.reset().await.map_err(|e| error(e.to_string()))?;
        }
    } else if this.down == Some(true) {
        what = "down".to_owned();
        for p in &proxies {
            p.set_enabled(false)
                .await
                .map_err(|e| error(e.to_string()))?;
        }
    } else if let Some(h) = &this.http {
        what = "http".to_owned();
        let fronted: Vec<Arc<crate::faults::Proxy>> = match &which {
            Fronted::Service(s) => faults.http_of(*s),
            Fronted::Named(_) => proxies.clone(),
        };
        if fronted.is_empty() {
            return Err(error(
                "nothing of it behind the fault proxy speaks HTTP; an `http` fault needs an HTTP endpoint (s3, otel's otlp_http, neo4j's http_url)".into(),
            ));
        }
        let fault = HttpFault {
            abort: h.abort,
            delay: h.delay.as_ref().map_or(0, ms),
            truncate: h.truncate,
            rate: h.percent.unwrap_or(100.0) / 100.0,
        };
        for p in fronted {
            p.set_http(Some(fault)).map_err(|e| error(e.to_string()))?;
        }
        // Setting it closed the open connections: a moment for clients to see them closed,
        // so the next request opens a new one instead of failing on a pooled one.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    } else if let Some(t) = toxic(this) {
        what = t.name.clone();
        for p in &proxies {
            // The same fault again changes it.
            if p.add(t.clone()).is_err() {
                p.update(t.clone()).map_err(|e| error(e.to_string()))?;
            }
        }
    } else {
        return Err(error("the step names no fault".into()));
    }
    if let Some(d) = this.duration {
        let target = which.clone();
        let name = what.clone();
        let scenario = Arc::clone(&faults);
        faults.after(tokio::spawn(async move {
            tokio::time::sleep(d.0).await;
            for p in proxies_of(&scenario, &target) {
                if name == "down" {
                    let _ = p.set_enabled(true).await;
                } else if name == "http" {
                    let _ = p.set_http(None);
                } else {
                    let _ = p.remove(&name);
                }
            }
        }));
    }
    let listen: Vec<String> = proxies
        .iter()
        .map(|p| p.listen_addr().to_string())
        .collect();
    Ok(json!({
        "target": shown,
        "fault": what,
        "proxies": listen,
    }))
}
