//! `telemetry`: expect spans, metrics or logs at the collector.

use super::*;

/// Expect the collector to receive matching signals within a time window.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub signal: Signal,
    /// Attribute filters. `name` matches the span, metric or log body; other keys match
    /// resource or item attributes such as `service.name`.
    #[serde(default, rename = "where")]
    pub filter: BTreeMap<String, Matcher>,
    /// How long to wait for matches (default 10s).
    #[serde(default)]
    pub within: Option<Dur>,
    #[serde(default)]
    pub expect: TelemetryExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Keys)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Spans,
    Metrics,
    Logs,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct TelemetryExpect {
    /// Number of matching items (default: at least one).
    #[serde(default)]
    pub count: Option<Matcher>,
    /// JSONPath into the list of matching items to matcher.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
}

impl Kind for Telemetry {
    const KEY: &'static str = "telemetry";
    const WHAT: &'static str = "a `telemetry` step";
    const SERVICE: Option<Service> = Some(Service::Otel);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let signal = req(cx, &f, "signal", Self::WHAT, |cx, n| {
            let Some(text) = n.as_str() else {
                cx.expected(n, "a signal");
                return None;
            };
            match text {
                "spans" => Some(Signal::Spans),
                "metrics" => Some(Signal::Metrics),
                "logs" => Some(Signal::Logs),
                other => {
                    let mut p = Problem::new(n.span, format!("unknown signal `{other}`"));
                    p = match did_you_mean(other, Signal::KEYS.iter().copied()) {
                        Some(s) => p.help(format!("did you mean `{s}`?")),
                        None => p.help(format!("signals: {}", backticked(Signal::KEYS))),
                    };
                    cx.push(p);
                    None
                }
            }
        });
        let filter = opt(cx, &f, "where", |cx, n| {
            map(cx, n, "`where`", |cx, _, v| matcher(cx, v))
        });
        let within = opt(cx, &f, "within", duration);
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(
                cx,
                n,
                "`expect` of a `telemetry` step",
                TelemetryExpect::KEYS,
            )?;
            let count = opt(cx, &g, "count", matcher);
            let json = opt(cx, &g, "json", path_matchers);
            Some(TelemetryExpect {
                count,
                json: json.unwrap_or_default(),
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Telemetry {
            signal: signal?,
            filter: filter.unwrap_or_default(),
            within,
            expect: expect.unwrap_or_default(),
            capture: capture.unwrap_or_default(),
        })
    }

    fn json_expect(&self) -> &BTreeMap<String, Matcher> {
        &self.expect.json
    }

    fn captures(&self) -> &BTreeMap<String, Capture> {
        &self.capture
    }
}
