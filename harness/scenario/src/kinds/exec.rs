//! `exec`: a local command (argv or `sh -c`), or a workspace binary.

use super::*;

/// A local command. A string runs through `sh -c`; a list is the argv.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The program: a string runs through `sh -c`, a list is the argv.
    #[serde(default)]
    pub command: Option<Command>,
    /// Or a binary of the Cargo workspace around the scenario file, built once per run.
    #[serde(default)]
    pub cargo: Option<String>,
    /// Arguments after the program (with `cargo`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables added to harness's own.
    #[serde(default)]
    pub env: BTreeMap<String, Template>,
    /// Services whose connection settings the command gets under their usual names, as
    /// for a process; `env` wins over them by name.
    #[serde(default)]
    pub env_from: Vec<Service>,
    #[serde(default)]
    pub cwd: Option<Template>,
    #[serde(default)]
    pub stdin: Option<Template>,
    #[serde(default)]
    pub expect: ExecExpect,
    /// Values to keep, from `{ exit_code, stdout, stderr, json }`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct ExecExpect {
    /// Default: 0.
    #[serde(default)]
    pub exit_code: Option<Matcher>,
    #[serde(default)]
    pub stdout: Option<Matcher>,
    #[serde(default)]
    pub stderr: Option<Matcher>,
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
}

impl Kind for Exec {
    const KEY: &'static str = "exec";
    const WHAT: &'static str = "an `exec` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let command_node = opt(cx, &f, "command", command);
        let cargo = opt(cx, &f, "cargo", cargo_package);
        let args = opt(cx, &f, "args", |cx, n| {
            list(cx, n, "`args`", |cx, _, n| string(cx, n))
        });
        let one_program = f.get("command").is_some() != f.get("cargo").is_some();
        if !one_program {
            cx.push(
                Problem::new(
                    node.span,
                    "an `exec` step has exactly one of `command` and `cargo`",
                )
                .help(
                    "`command` runs a program; `cargo: PACKAGE` builds and runs a workspace binary",
                ),
            );
        }
        let (env, env_from) = env_with_from(cx, &f);
        let cwd = opt(cx, &f, "cwd", template);
        let stdin = opt(cx, &f, "stdin", template);
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(cx, n, "`expect` of an `exec` step", ExecExpect::KEYS)?;
            let exit_code = opt(cx, &g, "exit_code", matcher);
            let stdout = opt(cx, &g, "stdout", matcher);
            let stderr = opt(cx, &g, "stderr", matcher);
            let json = opt(cx, &g, "json", path_matchers);
            Some(ExecExpect {
                exit_code,
                stdout,
                stderr,
                json: json.unwrap_or_default(),
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !one_program || (command_node.is_none() && cargo.is_none()) {
            return None;
        }
        Some(Exec {
            command: command_node,
            cargo,
            args: args.unwrap_or_default(),
            env,
            env_from,
            cwd,
            stdin,
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
