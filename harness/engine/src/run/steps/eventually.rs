//! `eventually`: retry a probe until it holds, waiting `interval` between tries and growing
//! the wait by `backoff` up to `max_interval`. Fails with the probe's last failure.

use std::time::Duration;

use harness_scenario::Eventually;

use super::{Extensions, StepError};
use crate::run::context::Ctx;

pub async fn run(ctx: &mut Ctx, e: &Eventually, ext: &Extensions) -> Result<u32, StepError> {
    let deadline = tokio::time::Instant::now() + e.timeout.0;
    let mut wait = e.interval.map_or(Duration::from_millis(100), |d| d.0);
    let max = e.max_interval.map_or(Duration::from_secs(2), |d| d.0);
    let factor = e.backoff.unwrap_or(1.5);
    let mut attempts = 0;
    loop {
        attempts += 1;
        // A probe may take at most its own timeout, and never past the deadline.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let limit = e.probe.timeout.map_or(remaining, |t| t.0.min(remaining));
        let last = match tokio::time::timeout(limit, super::run(ctx, &e.probe, ext)).await {
            Ok(Ok(_)) => return Ok(attempts),
            Ok(Err(err)) => err,
            Err(_) => StepError::failed("the probe was still running when the timeout passed"),
        };
        if tokio::time::Instant::now() + wait > deadline {
            let timeout = e.timeout.0;
            return Err(last.map_message(|message| {
                format!("still failing after {attempts} tries in {timeout:?}: {message}")
            }));
        }
        tokio::time::sleep(wait).await;
        wait = wait.mul_f64(factor).min(max);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use futures::future::BoxFuture;
    use harness_scenario::Action;
    use serde_json::Value;

    use super::*;
    use crate::run::{context::Redactor, isolation::Isolation, steps::StepHandler};

    /// A capability step that fails until its `n`th call.
    struct Flaky {
        calls: AtomicU32,
        succeed_on: u32,
    }

    impl StepHandler for Flaky {
        fn validate(&self, _: &Value) -> Result<(), String> {
            Ok(())
        }
        fn run<'a>(
            &'a self,
            _: &'a mut Ctx,
            _: &'a Value,
        ) -> BoxFuture<'a, Result<Value, StepError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= self.succeed_on {
                    Ok(Value::Null)
                } else {
                    Err(StepError::failed(format!("not yet ({n})")))
                }
            })
        }
    }

    fn setup(yaml: &str, succeed_on: u32) -> (Ctx, Eventually, Extensions, Arc<Flaky>) {
        let scenario = harness_scenario::parse("t.yaml", yaml).expect("valid");
        let Action::Eventually(e) = scenario.steps[0].action.clone() else {
            panic!("first step is eventually")
        };
        let flaky = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            succeed_on,
        });
        let mut ext = Extensions::default();
        ext.register("x-flaky", flaky.clone());
        let ctx = Ctx::new(
            Arc::new(scenario),
            harness_scenario::Source::new("t.yaml", yaml),
            "t.yaml".into(),
            Default::default(),
            Isolation::default(),
            Redactor::default(),
            reqwest::Client::new(),
            0,
            false,
        );
        (ctx, e, ext, flaky)
    }

    const YAML: &str = "name: t\nsteps:\n  - eventually: { timeout: 2s, interval: 100ms, backoff: 2, max_interval: 400ms, probe: { x-flaky: {} } }\n";

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_until_the_probe_holds() {
        let (mut ctx, e, ext, flaky) = setup(YAML, 4);
        let start = tokio::time::Instant::now();
        let attempts = run(&mut ctx, &e, &ext).await.expect("holds on the 4th try");
        assert_eq!(attempts, 4);
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
        // Waits of 100, 200 and 400 ms between the four tries.
        assert_eq!(start.elapsed(), Duration::from_millis(700));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_timeout_with_the_last_failure() {
        let (mut ctx, e, ext, flaky) = setup(YAML, u32::MAX);
        let err = run(&mut ctx, &e, &ext).await.expect_err("never holds");
        let tries = flaky.calls.load(Ordering::SeqCst);
        // 0, 100, 300, 700, 1100, 1500, 1900 ms: seven tries fit in 2 s.
        assert_eq!(tries, 7);
        assert!(
            err.message()
                .contains(&format!("still failing after {tries} tries")),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains(&format!("not yet ({tries})")),
            "{}",
            err.message()
        );
    }
}
