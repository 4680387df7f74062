//! `eventually`: retry a probe step until it holds or the timeout passes.

use super::*;
use crate::decode::steps::step;

/// Retry `probe` until it holds, waiting `interval` (growing by `backoff`) between tries.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Eventually {
    pub timeout: Dur,
    /// First wait between tries (default 100ms).
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Factor applied to the wait after each try (default 1.5).
    #[serde(default)]
    pub backoff: Option<f64>,
    /// Longest wait between tries (default 2s).
    #[serde(default)]
    pub max_interval: Option<Dur>,
    pub probe: Box<Step>,
}

impl Kind for Eventually {
    const KEY: &'static str = "eventually";
    const WHAT: &'static str = "an `eventually` step";

    fn service(&self) -> Option<Service> {
        self.probe.action.service()
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let timeout = req(cx, &f, "timeout", Self::WHAT, duration);
        let interval = opt(cx, &f, "interval", duration);
        let backoff = opt(cx, &f, "backoff", |cx, n| {
            let b = number(cx, n)?;
            if (1.0..=10.0).contains(&b) {
                Some(b)
            } else {
                cx.error(n.span, "`backoff` is a factor from 1 to 10");
                None
            }
        });
        let max_interval = opt(cx, &f, "max_interval", duration);
        let probe = req(cx, &f, "probe", Self::WHAT, |cx, n| {
            let s = step(cx, n)?;
            if let Action::Eventually(_) = s.action {
                cx.error(
                    n.span,
                    "an `eventually` probe cannot itself be `eventually`",
                );
                return None;
            }
            Some(s)
        });
        Some(Eventually {
            timeout: timeout?,
            interval,
            backoff,
            max_interval,
            probe: Box::new(probe?),
        })
    }
}
