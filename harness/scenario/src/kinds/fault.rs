//! `fault`: a network fault on the scenario's own fault proxy of a stack service.

use super::*;

/// A fault on a stack service (`target`) or on a scenario process (`process`).
///
/// A network fault (`down`, `latency`, `bandwidth`, `timeout`, `reset_peer`, `slow_close`,
/// `slicer`, `limit_data`) acts on the connections that reach a stack service through the
/// scenario's fault proxy, `${faults.SERVICE.…}` (the same fields as `${stack.SERVICE.…}`).
/// A process fault (`pause`, `unpause`, `stop`, `kill`, `start`, `restart`) acts on the
/// service itself, on either provider, or on a scenario process (`pause`, `unpause`, `stop`,
/// `kill`). `clear` removes every fault of the target and brings it back. Exactly one of
/// them per step. Every fault of the scenario is removed when its steps end, before the
/// rollbacks: a paused service is unpaused, a stopped or killed one started again.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The stack service.
    #[serde(default)]
    pub target: Option<Service>,
    /// A process of the scenario (a name under `processes`): `pause`, `unpause`, `stop`
    /// and `kill` act on it, network faults on its fault proxy
    /// (`${faults.processes.NAME.url}`).
    #[serde(default)]
    pub process: Option<String>,
    /// A mock of the scenario (a name under `mocks`): network faults act on its fault proxy
    /// (`${faults.mocks.NAME.url}`).
    #[serde(default)]
    pub mock: Option<String>,
    /// `true`: new connections are refused and open ones cut, until `clear` (or `for`).
    #[serde(default)]
    pub down: Option<bool>,
    /// Delay every chunk of data by this long.
    #[serde(default)]
    pub latency: Option<Dur>,
    /// With `latency`: up to this much more or less, per chunk (drawn from the seed).
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// At most this many KB (1000 bytes) per second.
    #[serde(default)]
    pub bandwidth: Option<u64>,
    /// Let no data through, and close the connection after this long (`0s`: hold it open).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Reset the connections (TCP RST) after this long (`0s`: at once).
    #[serde(default)]
    pub reset_peer: Option<Dur>,
    /// Hold a close back by this long.
    #[serde(default)]
    pub slow_close: Option<Dur>,
    /// Write data in small pieces.
    #[serde(default)]
    pub slicer: Option<SlicerArgs>,
    /// Close a connection once this many bytes went through.
    #[serde(default)]
    pub limit_data: Option<u64>,
    /// A fault on each HTTP request through the proxy (of a service's HTTP endpoint).
    #[serde(default)]
    pub http: Option<HttpFaultArgs>,
    /// `true`: remove every fault of the target and bring it up.
    #[serde(default)]
    pub clear: Option<bool>,
    /// `true`: freeze it (SIGSTOP, or `docker pause`): connections hang, nothing is lost.
    #[serde(default)]
    pub pause: Option<bool>,
    /// `true`: thaw it.
    #[serde(default)]
    pub unpause: Option<bool>,
    /// `true`: stop it gracefully (its stop signal, then SIGKILL after a grace period).
    #[serde(default)]
    pub stop: Option<bool>,
    /// `true`: kill it at once (SIGKILL), as a crash would.
    #[serde(default)]
    pub kill: Option<bool>,
    /// `true`: start a stopped or killed service again, and wait until it is ready.
    #[serde(default)]
    pub start: Option<bool>,
    /// `true`: stop it, start it, and wait until it is ready.
    #[serde(default)]
    pub restart: Option<bool>,
    /// Which way the data it slows or stops flows (default `downstream`, towards the client).
    #[serde(default)]
    pub stream: Option<FaultStream>,
    /// The chance it applies to a connection, 0 to 1 (default 1), drawn from the seed.
    #[serde(default)]
    pub toxicity: Option<f64>,
    /// Remove the fault again after this long, while the next steps run.
    #[serde(default, rename = "for")]
    pub duration: Option<Dur>,
}

/// Which way data flows through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultStream {
    /// From the client to the service.
    Upstream,
    /// From the service back to the client.
    Downstream,
}

/// The pieces of the `slicer` fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct SlicerArgs {
    /// Average size of a piece, in bytes.
    pub average_size: u64,
    /// A piece is up to this many bytes larger or smaller (default 0).
    #[serde(default)]
    pub size_variation: u64,
    /// Time between pieces (default 0).
    #[serde(default)]
    pub delay: Option<Dur>,
}

/// An HTTP fault: at least one of `abort`, `delay` and `truncate`.
#[derive(Clone, Copy, Debug, PartialEq, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct HttpFaultArgs {
    /// Answer with this status (100 to 599) instead of forwarding the request.
    #[serde(default)]
    pub abort: Option<u16>,
    /// Hold each request this long before forwarding it.
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Cut each response body after this many bytes, then close the connection.
    #[serde(default)]
    pub truncate: Option<u64>,
    /// The share of requests it applies to, in percent (default 100), drawn from the seed.
    #[serde(default)]
    pub percent: Option<f64>,
}

/// The keys that each name what a `fault` step does.
pub const FAULT_ACTIONS: [&str; 16] = [
    "down",
    "latency",
    "bandwidth",
    "timeout",
    "reset_peer",
    "slow_close",
    "slicer",
    "limit_data",
    "http",
    "clear",
    "pause",
    "unpause",
    "stop",
    "kill",
    "start",
    "restart",
];

/// The network faults: they act on the scenario's proxy of a stack service.
pub const NETWORK_FAULTS: [&str; 9] = [
    "down",
    "latency",
    "bandwidth",
    "timeout",
    "reset_peer",
    "slow_close",
    "slicer",
    "limit_data",
    "http",
];

/// The process faults.
pub const PROCESS_ACTIONS: [&str; 6] = ["pause", "unpause", "stop", "kill", "start", "restart"];

/// What a process fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcessAction {
    Pause,
    Unpause,
    Stop,
    Kill,
    Start,
    Restart,
}

impl ProcessAction {
    pub fn name(self) -> &'static str {
        match self {
            ProcessAction::Pause => "pause",
            ProcessAction::Unpause => "unpause",
            ProcessAction::Stop => "stop",
            ProcessAction::Kill => "kill",
            ProcessAction::Start => "start",
            ProcessAction::Restart => "restart",
        }
    }
}

impl Fault {
    /// The process fault the step asks for, if it is one.
    pub fn process_action(&self) -> Option<ProcessAction> {
        [
            (self.pause, ProcessAction::Pause),
            (self.unpause, ProcessAction::Unpause),
            (self.stop, ProcessAction::Stop),
            (self.kill, ProcessAction::Kill),
            (self.start, ProcessAction::Start),
            (self.restart, ProcessAction::Restart),
        ]
        .into_iter()
        .find_map(|(on, a)| (on == Some(true)).then_some(a))
    }

    /// Whether it acts on the scenario's fault proxy of its target.
    pub fn is_network(&self) -> bool {
        self.process_action().is_none() && self.clear != Some(true)
    }

    /// What it acts on, as messages name it: `postgres`, `process api` or `mock billing`.
    pub fn target_name(&self) -> String {
        match (&self.target, &self.process, &self.mock) {
            (Some(t), _, _) => t.name().to_owned(),
            (None, Some(p), _) => format!("process {p}"),
            (None, None, Some(m)) => format!("mock {m}"),
            (None, None, None) => "nothing".to_owned(),
        }
    }
}

impl Kind for Fault {
    const KEY: &'static str = "fault";
    const WHAT: &'static str = "a `fault` step";

    fn service(&self) -> Option<Service> {
        self.target
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let target = opt(cx, &f, "target", service_node);
        let process = opt(cx, &f, "process", name);
        let mock = opt(cx, &f, "mock", name);
        let given: Vec<&Node> = ["target", "process", "mock"]
            .iter()
            .filter_map(|k| f.get(k))
            .collect();
        match given.as_slice() {
            [] => cx.push(
                Problem::new(node.span, "a `fault` step needs `target`, `process` or `mock`")
                    .help("`target: SERVICE` for a stack service, `process: NAME` for a scenario process, `mock: NAME` for a mock"),
            ),
            [_] => {}
            [_, second, ..] => {
                cx.error(
                    second.span,
                    "a `fault` step has one of `target`, `process` and `mock`",
                );
            }
        }
        let present: Vec<&str> = FAULT_ACTIONS
            .iter()
            .copied()
            .filter(|k| f.get(k).is_some())
            .collect();
        if present.len() != 1 {
            cx.push(
                Problem::new(
                    node.span,
                    format!(
                        "a `fault` step has exactly one of {}",
                        backticked(&FAULT_ACTIONS)
                    ),
                )
                .help("`down: true` takes the service away; `clear: true` brings it back"),
            );
        }
        let flag = |cx: &mut Cx, n: &Node| {
            let b = boolean(cx, n)?;
            if !b {
                cx.error(n.span, "write `true`, or leave the key out");
                return None;
            }
            Some(b)
        };
        let down = opt(cx, &f, "down", flag);
        let clear = opt(cx, &f, "clear", flag);
        let pause = opt(cx, &f, "pause", flag);
        let unpause = opt(cx, &f, "unpause", flag);
        let stop = opt(cx, &f, "stop", flag);
        let kill = opt(cx, &f, "kill", flag);
        let start = opt(cx, &f, "start", flag);
        let restart = opt(cx, &f, "restart", flag);
        let network = present.first().is_some_and(|k| NETWORK_FAULTS.contains(k));
        if f.get("mock").is_some() {
            for key in PROCESS_ACTIONS {
                if let Some(n) = f.get(key) {
                    cx.push(
                        Problem::new(n.span, format!("`{key}` does not go with `mock`"))
                            .help("a mock takes the network faults, on its proxy (`${faults.mocks.NAME.url}`), and `clear`"),
                    );
                }
            }
        }
        if !network && present.len() == 1 {
            for key in ["stream", "toxicity"] {
                if let Some(n) = f.get(key) {
                    cx.error(n.span, format!("`{key}` goes with a network fault"));
                }
            }
        }
        if let Some(n) = f.get("for")
            && let Some(k) = present
                .first()
                .filter(|k| ["unpause", "start", "restart"].contains(k))
        {
            cx.error(n.span, format!("`for` does not go with `{k}`"));
        }
        let latency = opt(cx, &f, "latency", duration);
        let jitter = opt(cx, &f, "jitter", duration);
        if let Some(n) = f.get("jitter")
            && f.get("latency").is_none()
        {
            cx.error(n.span, "`jitter` goes with `latency`");
        }
        let bandwidth = opt(cx, &f, "bandwidth", uint);
        let timeout = opt(cx, &f, "timeout", duration);
        let reset_peer = opt(cx, &f, "reset_peer", duration);
        let slow_close = opt(cx, &f, "slow_close", duration);
        let slicer = opt(cx, &f, "slicer", |cx, n| {
            let g = fields(cx, n, "`slicer`", SlicerArgs::KEYS)?;
            let average_size = req(cx, &g, "average_size", "`slicer`", uint);
            let size_variation = opt(cx, &g, "size_variation", uint);
            let delay = opt(cx, &g, "delay", duration);
            Some(SlicerArgs {
                average_size: average_size?,
                size_variation: size_variation.unwrap_or(0),
                delay,
            })
        });
        let limit_data = opt(cx, &f, "limit_data", uint);
        let http = opt(cx, &f, "http", |cx, n| {
            let g = fields(cx, n, "`http`", HttpFaultArgs::KEYS)?;
            let abort = opt(cx, &g, "abort", uint).and_then(|code| {
                match u16::try_from(code).ok().filter(|c| (100..=599).contains(c)) {
                    Some(c) => Some(c),
                    None => {
                        if let Some(n) = g.get("abort") {
                            cx.error(n.span, "an HTTP status is from 100 to 599");
                        }
                        None
                    }
                }
            });
            let delay = opt(cx, &g, "delay", duration);
            let truncate = opt(cx, &g, "truncate", uint);
            let percent = opt(cx, &g, "percent", |cx, n| {
                number_within(
                    cx,
                    n,
                    100.0,
                    "a percentage from 0 to 100",
                    "`percent` is from 0 to 100",
                )
            });
            if ["abort", "delay", "truncate"]
                .iter()
                .all(|k| g.get(k).is_none())
            {
                cx.push(
                    Problem::new(n.span, "an `http` fault needs `abort`, `delay` or `truncate`")
                        .help("`abort: 503` answers 503 instead of forwarding; `percent: 50` does it to half the requests"),
                );
                return None;
            }
            if g.get("abort").is_some() && g.get("truncate").is_some() {
                if let Some(t) = g.get("truncate") {
                    cx.error(
                        t.span,
                        "`truncate` cuts a response that `abort` never forwards",
                    );
                }
                return None;
            }
            Some(HttpFaultArgs {
                abort,
                delay,
                truncate,
                percent,
            })
        });
        if f.get("http").is_some() {
            for key in ["stream", "toxicity"] {
                if let Some(n) = f.get(key) {
                    cx.error(
                        n.span,
                        format!("`{key}` does not go with `http` (it has `percent`)"),
                    );
                }
            }
        }
        let stream = opt(cx, &f, "stream", |cx, n| match name(cx, n)?.as_str() {
            "upstream" => Some(FaultStream::Upstream),
            "downstream" => Some(FaultStream::Downstream),
            other => {
                let p =
                    Problem::new(n.span, format!("unknown stream `{other}`")).label("not a stream");
                cx.push(match did_you_mean(other, ["upstream", "downstream"]) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help("`upstream` (to the service) or `downstream` (back)"),
                });
                None
            }
        });
        let toxicity = opt(cx, &f, "toxicity", |cx, n| {
            number_within(
                cx,
                n,
                1.0,
                "a number from 0 to 1",
                "`toxicity` is a chance, from 0 to 1",
            )
        });
        let duration = opt(cx, &f, "for", duration);
        if let Some(n) = f.get("for")
            && f.get("clear").is_some()
        {
            cx.error(n.span, "`for` does not go with `clear`");
        }
        if present.len() != 1 || (target.is_none() && process.is_none() && mock.is_none()) {
            return None;
        }
        Some(Fault {
            target,
            process,
            mock,
            pause,
            unpause,
            stop,
            kill,
            start,
            restart,
            down,
            latency,
            jitter,
            bandwidth,
            timeout,
            reset_peer,
            slow_close,
            slicer,
            limit_data,
            http,
            clear,
            stream,
            toxicity,
            duration,
        })
    }
}

/// A number from 0 to `max`: `expected` names the type when it is not a number, `outside`
/// says what is wrong when it is out of range.
fn number_within(cx: &mut Cx, n: &Node, max: f64, expected: &str, outside: &str) -> Option<f64> {
    let v = match n.value {
        NodeValue::Int(i) => i as f64,
        NodeValue::Float(x) => x,
        _ => {
            cx.expected(n, expected);
            return None;
        }
    };
    if (0.0..=max).contains(&v) {
        Some(v)
    } else {
        cx.error(n.span, outside);
        None
    }
}
