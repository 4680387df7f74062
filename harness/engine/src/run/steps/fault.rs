//! `fault`: maps the step's arguments onto the scenario's fault proxies of its target
//! (`run/faults.rs` over `faults/`); nothing else happens here.

use std::sync::Arc;

use harness_scenario::kinds::fault::{Fault, FaultStream, ProcessAction};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::{
    faults::{
        Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, Stream, Timeout, Toxic,
        ToxicKind,
    },
    run::{
        context::Ctx,
        faults::{Left, Target, signal_group, undo},
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

/// A process fault (or `clear`'s undoing of one) on a stack service or a scenario process.
async fn process_fault(
    f: &Fault,
    ctx: &mut Ctx,
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
                if faults.left(&target) == Some(state)
                    && undo(&target, state, stack.as_deref()).await.is_ok()
                {
                    faults.note(target, None);
                }
            }
        }));
    }
    Ok(json!({"target": f.target_name(), "fault": action.name()}))
}

impl Handler for Fault {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let action = self.process_action();
        if action.is_some() || self.process.is_some() {
            return process_fault(self, ctx, action).await.map(Some);
        }
        let Some(service) = self.target else {
            return Err(StepError::error("the step names no target"));
        };
        if self.clear == Some(true) {
            // A service both proxied and paused is brought back from both.
            process_fault(self, ctx, None).await?;
            if ctx.faults.is_none() {
                return Ok(Some(json!({"target": service.name(), "fault": "clear"})));
            }
        }
        let Some(faults) = ctx.faults.clone() else {
            return Err(StepError::error(format!(
                "{} has no fault proxy in this scenario",
                service.name()
            )));
        };
        let proxies = faults.of(service);
        let error = |e: String| StepError::error(format!("fault on {}: {e}", service.name()));
        let what;
        if self.clear == Some(true) {
            what = "clear".to_owned();
            for p in proxies {
                p.reset().await.map_err(|e| error(e.to_string()))?;
            }
        } else if self.down == Some(true) {
            what = "down".to_owned();
            for p in proxies {
                p.set_enabled(false)
                    .await
                    .map_err(|e| error(e.to_string()))?;
            }
        } else if let Some(t) = toxic(self) {
            what = t.name.clone();
            for p in proxies {
                // The same fault again changes it.
                if p.add(t.clone()).is_err() {
                    p.update(t.clone()).map_err(|e| error(e.to_string()))?;
                }
            }
        } else {
            return Err(error("the step names no fault".into()));
        }
        if let Some(d) = self.duration {
            let target = service;
            let name = what.clone();
            let scenario = Arc::clone(&faults);
            faults.after(tokio::spawn(async move {
                tokio::time::sleep(d.0).await;
                for p in scenario.of(target) {
                    if name == "down" {
                        let _ = p.set_enabled(true).await;
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
        Ok(Some(json!({
            "target": service.name(),
            "fault": what,
            "proxies": listen,
        })))
    }
}
