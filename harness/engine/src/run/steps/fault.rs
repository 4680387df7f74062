//! `fault`: maps the step's arguments onto the scenario's fault proxies of its target
//! (`run/faults.rs` over `faults/`); nothing else happens here.

use std::sync::Arc;

use harness_scenario::kinds::fault::{Fault, FaultStream};
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::{
    faults::{
        Bandwidth, Latency, LimitData, ResetPeer, Slicer, SlowClose, Stream, Timeout, Toxic,
        ToxicKind,
    },
    run::context::Ctx,
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

impl Handler for Fault {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let Some(faults) = ctx.faults.clone() else {
            return Err(StepError::error(format!(
                "{} has no fault proxy in this scenario",
                self.target.name()
            )));
        };
        let proxies = faults.of(self.target);
        let error = |e: String| StepError::error(format!("fault on {}: {e}", self.target.name()));
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
            let target = self.target;
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
            "target": self.target.name(),
            "fault": what,
            "proxies": listen,
        })))
    }
}
