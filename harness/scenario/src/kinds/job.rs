//! `job`: create or update a Cloud Run job on the scenario's emulator, execute it, and wait.

use super::{
    deploy::{pass_env, run_name},
    *,
};

/// Create or update a Cloud Run job on the scenario's Cloud Run emulator, execute it and
/// wait for the execution to finish. By default every task must succeed;
/// `expect: { succeeded: false }` expects the execution to fail.
///
/// The document: `{job, execution, succeeded, message, tasks, succeeded_count,
/// failed_count, retried_count, cancelled_count, duration_ms, task_results: [{index,
/// exit_code, retried}]}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The job's name.
    pub name: String,
    /// The image reference of its tasks.
    pub image: Template,
    /// What runs for the image on the native provider: a binary package of the workspace …
    #[serde(default)]
    pub cargo: Option<String>,
    /// … or a command (a string through `sh -c`, or an argv), run in the scenario's folder.
    #[serde(default)]
    pub command: Option<Command>,
    /// The container's arguments.
    #[serde(default)]
    pub args: Vec<Template>,
    /// The tasks' environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, Template>,
    /// Services whose connection settings the tasks get under their usual names.
    #[serde(default)]
    pub env_from: Vec<Service>,
    /// Variables of harness's own environment passed into the tasks when they are set.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// How many tasks an execution runs (default 1).
    #[serde(default)]
    pub tasks: Option<u64>,
    /// How many run at once (default: all).
    #[serde(default)]
    pub parallelism: Option<u64>,
    /// Attempts after the first that a failed task gets (default 3).
    #[serde(default)]
    pub max_retries: Option<u64>,
    /// The time limit of one task attempt (default 10m).
    #[serde(default)]
    pub task_timeout: Option<Dur>,
    /// How long to wait for the execution (default 5m).
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub expect: JobExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct JobExpect {
    /// `true` (the default): every task succeeds. `false`: the execution fails.
    #[serde(default)]
    pub succeeded: Option<bool>,
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
}

impl Kind for Job {
    const KEY: &'static str = "job";
    const WHAT: &'static str = "a `job` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let name = req(cx, &f, "name", Self::WHAT, |cx, n| {
            run_name(cx, n, "job name")
        });
        let image = req(cx, &f, "image", Self::WHAT, template);
        let cargo = opt(cx, &f, "cargo", cargo_package);
        let command_node = opt(cx, &f, "command", command);
        if f.get("cargo").is_some() && f.get("command").is_some() {
            cx.push(
                Problem::new(node.span, "a `job` step has at most one of `cargo` and `command`")
                    .help("`cargo: PACKAGE` runs a workspace binary for the image; `command` runs a program"),
            );
        }
        let args = opt(cx, &f, "args", |cx, n| {
            list(cx, n, "`args`", |cx, _, n| template(cx, n))
        })
        .unwrap_or_default();
        let (env, env_from) = env_with_from(cx, &f);
        let pass_env = opt(cx, &f, "pass_env", pass_env).unwrap_or_default();
        let tasks = opt(cx, &f, "tasks", uint);
        if tasks == Some(0) {
            cx.error(node.span, "`tasks` is at least 1");
        }
        let parallelism = opt(cx, &f, "parallelism", uint);
        let max_retries = opt(cx, &f, "max_retries", uint);
        let task_timeout = opt(cx, &f, "task_timeout", duration);
        let timeout = opt(cx, &f, "timeout", duration);
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(cx, n, "`expect` of a `job` step", JobExpect::KEYS)?;
            Some(JobExpect {
                succeeded: opt(cx, &g, "succeeded", boolean),
                json: opt(cx, &g, "json", path_matchers).unwrap_or_default(),
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Job {
            name: name?,
            image: image?,
            cargo,
            command: command_node,
            args,
            env,
            env_from,
            pass_env,
            tasks,
            parallelism,
            max_retries,
            task_timeout,
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
