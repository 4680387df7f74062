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
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let last = match tokio::time::timeout(remaining, super::run(ctx, &e.probe, ext)).await {
            Ok(Ok(_)) => return Ok(attempts),
            Ok(Err(err)) => err,
            Err(_) => StepError::failed("the probe was still running when the timeout passed"),
        };
        if tokio::time::Instant::now() + wait > deadline {
            return Err(match last {
                StepError::Failed {
                    message,
                    expected,
                    actual,
                    span,
                } => StepError::Failed {
                    message: format!(
                        "still failing after {attempts} tries in {:?}: {message}",
                        e.timeout.0
                    ),
                    expected,
                    actual,
                    span,
                },
                StepError::Error { message, span } => StepError::Error {
                    message: format!(
                        "still failing after {attempts} tries in {:?}: {message}",
                        e.timeout.0
                    ),
                    span,
                },
            });
        }
        tokio::time::sleep(wait).await;
        wait = wait.mul_f64(factor).min(max);
    }
}
