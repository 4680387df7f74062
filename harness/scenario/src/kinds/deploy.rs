//! `deploy`: a new revision of a Cloud Run service on the scenario's Cloud Run emulator.

use super::*;

/// Deploy a revision of a Cloud Run service (the service is created by its first deploy) on
/// the scenario's Cloud Run emulator, and wait until the revision is ready or has failed.
/// By default the step expects it ready and serving; `expect: { ready: false }` expects it
/// to fail, and then also that the service's traffic is exactly what it was before.
///
/// The document: `{service, revision, ready, reason, message, url, latest_ready,
/// latest_created, traffic: [{revision, percent, tag, url}], tags: {TAG: URL}}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The Cloud Run service.
    pub service: String,
    /// The image reference of the revision (`example/api:v2`).
    pub image: Template,
    /// What runs for the image on the native provider: a binary package of the Cargo
    /// workspace around the scenario file …
    #[serde(default)]
    pub cargo: Option<String>,
    /// … or a command (a string through `sh -c`, or an argv), run in the scenario's folder.
    #[serde(default)]
    pub command: Option<Command>,
    /// The container's arguments (after its program).
    #[serde(default)]
    pub args: Vec<Template>,
    /// The revision's environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, Template>,
    /// Services whose connection settings the revision gets under their usual names;
    /// `env` wins over them by name.
    #[serde(default)]
    pub env_from: Vec<Service>,
    /// Variables of harness's own environment passed into the revision when they are set,
    /// as `docker run --env NAME` does.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// Progressive delivery: the new revision first gets `percent` of the traffic while
    /// `requests` GETs of `path` go through the service over `window`; if more than
    /// `max_error_rate` of the canary's answers are 5xx, all traffic goes back to what
    /// served before (and the step fails), else the new revision gets it all.
    #[serde(default)]
    pub canary: Option<CanaryArgs>,
    /// The revision's name after `SERVICE-` (default: generated, `api-00002-kop`).
    #[serde(default)]
    pub revision: Option<String>,
    /// A tag for the new revision: its own URL, `${cloud_run.SERVICE.tags.TAG}`.
    #[serde(default)]
    pub tag: Option<String>,
    /// `true`: the new revision gets no traffic (the split stays as it was).
    #[serde(default)]
    pub no_traffic: Option<bool>,
    /// Instances kept running while the revision serves (default 0).
    #[serde(default)]
    pub min_instances: Option<u64>,
    /// At most this many instances (default 100).
    #[serde(default)]
    pub max_instances: Option<u64>,
    /// Requests one instance takes at a time (default 80).
    #[serde(default)]
    pub concurrency: Option<u64>,
    /// The startup probe (default: a TCP connect to `PORT`, for up to 240 s).
    #[serde(default)]
    pub startup_probe: Option<ProbeArgs>,
    /// A liveness probe: an instance that fails it is replaced.
    #[serde(default)]
    pub liveness_probe: Option<ProbeArgs>,
    /// How long to wait for the revision to be ready or failed (default 60s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub expect: DeployExpect,
    /// Values to keep from the document (`revision`, `url`, …).
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// The analysis of a canary.
#[derive(Clone, Debug, PartialEq, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct CanaryArgs {
    /// The new revision's share of the traffic during the analysis (1 to 99).
    pub percent: u64,
    /// What the analysis requests (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// How many requests the analysis sends through the service (default 40).
    #[serde(default)]
    pub requests: Option<u64>,
    /// Over how long (default 2s).
    #[serde(default)]
    pub window: Option<Dur>,
    /// The share of the canary's answers that may be 5xx (default 0).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
}

/// A startup or liveness probe: HTTP GET of `path` (2xx or 3xx passes), or a TCP connect
/// to `PORT` when there is no `path`.
#[derive(Clone, Debug, Default, PartialEq, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct ProbeArgs {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub initial_delay: Option<Dur>,
    #[serde(default)]
    pub period: Option<Dur>,
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub failure_threshold: Option<u64>,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct DeployExpect {
    /// `true` (the default): the revision becomes ready and takes its traffic. `false`: it
    /// fails, and the service's traffic is unchanged.
    #[serde(default)]
    pub ready: Option<bool>,
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
}

/// A Cloud Run name: lowercase letters, digits and dashes, starting with a letter.
pub(crate) fn run_name(cx: &mut Cx, n: &Node, what: &str) -> Option<String> {
    let s = string(cx, n)?;
    let ok = s.len() <= 49
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        cx.push(
            Problem::new(n.span, format!("`{s}` is not a valid {what}")).help(
                "lowercase letters, digits and `-`, starting with a letter, at most 49 characters",
            ),
        );
        return None;
    }
    Some(s)
}

fn canary(cx: &mut Cx, n: &Node) -> Option<CanaryArgs> {
    let g = fields(cx, n, "a canary", CanaryArgs::KEYS)?;
    let percent = req(cx, &g, "percent", "a canary", uint);
    if let Some(p) = percent
        && !(1..=99).contains(&p)
    {
        cx.error(n.span, format!("a canary's `percent` is 1 to 99, not {p}"));
        return None;
    }
    let max_error_rate = opt(cx, &g, "max_error_rate", number);
    if let Some(r) = max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        cx.error(n.span, "`max_error_rate` is a share from 0 to 1");
        return None;
    }
    Some(CanaryArgs {
        percent: percent?,
        path: opt(cx, &g, "path", string),
        requests: opt(cx, &g, "requests", uint),
        window: opt(cx, &g, "window", duration),
        max_error_rate,
    })
}

pub(crate) fn pass_env(cx: &mut Cx, n: &Node) -> Option<Vec<String>> {
    list(cx, n, "`pass_env`", |cx, _, n| string(cx, n))
}

fn probe(cx: &mut Cx, n: &Node) -> Option<ProbeArgs> {
    let g = fields(cx, n, "a probe", ProbeArgs::KEYS)?;
    Some(ProbeArgs {
        path: opt(cx, &g, "path", string),
        initial_delay: opt(cx, &g, "initial_delay", duration),
        period: opt(cx, &g, "period", duration),
        timeout: opt(cx, &g, "timeout", duration),
        failure_threshold: opt(cx, &g, "failure_threshold", uint),
    })
}

impl Kind for Deploy {
    const KEY: &'static str = "deploy";
    const WHAT: &'static str = "a `deploy` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let service = req(cx, &f, "service", Self::WHAT, |cx, n| {
            run_name(cx, n, "service name")
        });
        let image = req(cx, &f, "image", Self::WHAT, template);
        let cargo = opt(cx, &f, "cargo", cargo_package);
        let command_node = opt(cx, &f, "command", command);
        if f.get("cargo").is_some() && f.get("command").is_some() {
            cx.push(
                Problem::new(node.span, "a `deploy` step has at most one of `cargo` and `command`")
                    .help("`cargo: PACKAGE` runs a workspace binary for the image; `command` runs a program"),
            );
        }
        let args = opt(cx, &f, "args", |cx, n| {
            list(cx, n, "`args`", |cx, _, n| template(cx, n))
        })
        .unwrap_or_default();
        let (env, env_from) = env_with_from(cx, &f);
        let pass_env = opt(cx, &f, "pass_env", pass_env).unwrap_or_default();
        let canary = opt(cx, &f, "canary", canary);
        if canary.is_some() && (f.get("no_traffic").is_some() || f.get("tag").is_some()) {
            cx.error(
                node.span,
                "a canary deploy sets the traffic itself: drop `no_traffic` and `tag`",
            );
        }
        let revision = opt(cx, &f, "revision", |cx, n| {
            run_name(cx, n, "revision suffix")
        });
        let tag = opt(cx, &f, "tag", |cx, n| run_name(cx, n, "tag"));
        let no_traffic = opt(cx, &f, "no_traffic", boolean);
        let min_instances = opt(cx, &f, "min_instances", uint);
        let max_instances = opt(cx, &f, "max_instances", uint);
        let concurrency = opt(cx, &f, "concurrency", uint);
        if let (Some(min), Some(max)) = (min_instances, max_instances)
            && min > max
        {
            cx.error(
                node.span,
                format!("`min_instances` ({min}) is above `max_instances` ({max})"),
            );
        }
        let startup_probe = opt(cx, &f, "startup_probe", probe);
        let liveness_probe = opt(cx, &f, "liveness_probe", probe);
        let timeout = opt(cx, &f, "timeout", duration);
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(cx, n, "`expect` of a `deploy` step", DeployExpect::KEYS)?;
            Some(DeployExpect {
                ready: opt(cx, &g, "ready", boolean),
                json: opt(cx, &g, "json", path_matchers).unwrap_or_default(),
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Deploy {
            service: service?,
            image: image?,
            cargo,
            command: command_node,
            args,
            env,
            env_from,
            pass_env,
            canary,
            revision,
            tag,
            no_traffic,
            min_instances,
            max_instances,
            concurrency,
            startup_probe,
            liveness_probe,
            timeout,
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
