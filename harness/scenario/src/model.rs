//! The typed form of a scenario file. The doc comments here are the descriptions in the
//! JSON Schema that `harness schema` prints, so they are written for scenario authors.

use std::{collections::BTreeMap, time::Duration};

use schemars::JsonSchema;
use serde_json::Value;

use crate::{diag::Span, template::CodeRef};

/// A scenario: a steady state that must hold, steps that exercise the system, and
/// rollbacks that always run afterwards.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name shown in reports and used as the test name.
    pub name: String,
    /// What the scenario proves, in a sentence or two.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form labels; `harness run --tag T` runs only scenarios carrying one of them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Services the scenario needs. harness starts them, or checks an attached stack has them.
    #[serde(default)]
    pub stack: Vec<Service>,
    /// Time limit for the steady-state check and the steps (default 5m). Rollbacks always
    /// run afterwards, each within its own step timeout.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Values used as `${vars.NAME}`. A var may be `{ value: ..., secret: true }`.
    #[serde(default)]
    pub vars: BTreeMap<String, Var>,
    /// Data loaded into the scenario's own database, bucket and graph before it starts.
    #[serde(default)]
    pub fixtures: Vec<Fixture>,
    /// HTTP stubs the scenario declares; each gets its own server at `${mocks.NAME.url}`.
    #[serde(default)]
    pub mocks: Vec<Mock>,
    /// Local processes (the system under test) started after the mocks and stopped after
    /// the rollbacks; each is reachable at `${processes.NAME.url}`.
    #[serde(default)]
    pub processes: Vec<Process>,
    /// Probes that must hold before the steps and again after the rollbacks.
    #[serde(default)]
    pub steady_state: Vec<Step>,
    /// The steps, run in order; the first failure stops them.
    pub steps: Vec<Step>,
    /// Steps that always run after `steps`, even when one failed.
    #[serde(default)]
    pub rollbacks: Vec<Step>,
    /// Where the `steps` key is, for reports.
    #[serde(skip)]
    pub span: Span,
    /// References written into SQL, Cypher and shell command text, for [`crate::lint`].
    #[serde(skip)]
    pub code_refs: Vec<CodeRef>,
}

/// A service of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Postgres,
    S3,
    Neo4j,
    Otel,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Postgres,
        Service::S3,
        Service::Neo4j,
        Service::Otel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::S3 => "s3",
            Service::Neo4j => "neo4j",
            Service::Otel => "otel",
        }
    }
}

/// A variable: a plain value, or `{ value, secret }` to have it redacted from every output.
#[derive(Clone, Debug)]
pub struct Var {
    pub value: Value,
    pub secret: bool,
    pub span: Span,
}

impl JsonSchema for Var {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Var".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A value, or `{ value, secret: true }` for a value redacted from every output.",
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "value": {},
                        "secret": { "type": "boolean" }
                    },
                    "required": ["value"],
                    "additionalProperties": false
                },
                {}
            ]
        })
    }
}

/// Data loaded before the scenario starts. Paths are relative to the scenario file.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fixture {
    /// A SQL file run in the scenario's database (part of its template, so loaded once).
    Sql(String),
    /// A Cypher file (statements separated by `;`); `${scenario.graph_label}` in it is
    /// replaced by the scenario's graph label.
    Cypher(String),
    /// An object put into the scenario's bucket.
    S3(S3Fixture),
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Fixture {
    pub key: String,
    /// A file whose bytes become the object (relative to the scenario file).
    #[serde(default)]
    pub file: Option<String>,
    /// Inline text that becomes the object.
    #[serde(default)]
    pub body: Option<String>,
}

/// An HTTP stub served on 127.0.0.1 for the scenario's lifetime.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mock {
    /// Name used in `${mocks.NAME.url}`.
    pub name: String,
    pub request: MockRequest,
    #[serde(default)]
    pub response: MockResponse,
    /// How many matching calls the scenario must make; checked after the rollbacks.
    #[serde(default)]
    pub expect_calls: Option<u64>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockRequest {
    /// HTTP method; any method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Exact request path, such as `/v1/charge`.
    pub path: String,
    /// Headers the request must carry.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters the request must carry.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A JSON body the request must equal.
    #[serde(default)]
    pub json: Option<Value>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MockResponse {
    /// Status code (default 200).
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON body (sets `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// Delay before answering, such as `250ms`.
    #[serde(default)]
    pub delay: Option<Dur>,
}

impl Default for MockResponse {
    fn default() -> Self {
        MockResponse {
            status: 200,
            headers: BTreeMap::new(),
            body: None,
            json: None,
            delay: None,
        }
    }
}

/// A local process the scenario runs, such as the service under test.
///
/// harness picks a free port on 127.0.0.1 and passes it as `PORT` (the Cloud Run
/// convention) unless `env` sets `PORT`. The process inherits harness's environment, runs in
/// its own process group, and is stopped with SIGTERM (then SIGKILL) when the scenario ends.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Name used in `${processes.NAME.url}` and `${processes.NAME.port}`.
    pub name: String,
    /// A binary of the Cargo workspace around the scenario file: harness builds it
    /// (`cargo build -p NAME --bin NAME`) once per run and runs it.
    #[serde(default)]
    pub cargo: Option<String>,
    /// Any other program: a string runs through `sh -c`, a list is the argv.
    #[serde(default)]
    pub command: Option<Command>,
    /// Arguments after the program (with `cargo`).
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// When the process counts as started (default: its port accepts TCP connections).
    #[serde(default)]
    pub ready: Option<Ready>,
    /// How long to wait for readiness (default 30s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(skip)]
    pub span: Span,
}

/// A readiness condition for a scenario process.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// An HTTP GET of this path answers 2xx.
    Http(String),
    /// A line of stdout or stderr contains this text.
    Log(String),
    /// The port accepts TCP connections.
    Tcp(bool),
}

/// One step: a name, an optional timeout, and exactly one step kind.
#[derive(Clone, Debug, JsonSchema)]
pub struct Step {
    /// Shown in reports; defaults to the step kind and position.
    #[serde(default)]
    pub name: Option<String>,
    /// Time limit for this step (default 30s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(flatten)]
    pub action: Action,
    /// The whole step in the file.
    #[serde(skip)]
    pub span: Span,
}

impl Step {
    /// The name shown in reports.
    pub fn display_name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{} #{}", self.action.kind(), index + 1))
    }
}

/// The step kinds. Exactly one per step.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send an HTTP request and check the response.
    Http(Http),
    /// Run SQL in the scenario's database.
    Sql(Sql),
    /// Act on the scenario's bucket.
    S3(S3),
    /// Run Cypher against the graph.
    Cypher(Cypher),
    /// Retry a probe until it holds or the timeout passes.
    Eventually(Box<Eventually>),
    /// Run a local command.
    Exec(Exec),
    /// Compare a value with a stored snapshot.
    Snapshot(Snapshot),
    /// Expect signals received by the collector.
    Telemetry(Telemetry),
    /// Provided by a capability plugged into the runner (deploy, traffic, rollback, fault,
    /// backup, restore).
    #[serde(untagged)]
    #[schemars(skip)]
    Extension(Extension),
}

/// Step kinds that capabilities register with the runner; the parser accepts their
/// arguments as data and the capability validates them when the run is planned.
pub const EXTENSION_KINDS: [&str; 6] = [
    "deploy", "traffic", "rollback", "fault", "backup", "restore",
];

/// Every step kind name, built-in first.
pub const STEP_KINDS: [&str; 14] = [
    "http",
    "sql",
    "s3",
    "cypher",
    "eventually",
    "exec",
    "snapshot",
    "telemetry",
    "deploy",
    "traffic",
    "rollback",
    "fault",
    "backup",
    "restore",
];

impl Action {
    pub fn kind(&self) -> &str {
        match self {
            Action::Http(_) => "http",
            Action::Sql(_) => "sql",
            Action::S3(_) => "s3",
            Action::Cypher(_) => "cypher",
            Action::Eventually(_) => "eventually",
            Action::Exec(_) => "exec",
            Action::Snapshot(_) => "snapshot",
            Action::Telemetry(_) => "telemetry",
            Action::Extension(e) => &e.kind,
        }
    }

    /// The capture names this step defines.
    pub fn captures(&self) -> Vec<&str> {
        let map = match self {
            Action::Http(s) => &s.capture,
            Action::Sql(s) => &s.capture,
            Action::S3(s) => &s.capture,
            Action::Cypher(s) => &s.capture,
            Action::Exec(s) => &s.capture,
            Action::Telemetry(s) => &s.capture,
            Action::Eventually(e) => return e.probe.action.captures(),
            Action::Snapshot(_) | Action::Extension(_) => return Vec::new(),
        };
        map.keys().map(String::as_str).collect()
    }
}

/// A step kind provided by a capability.
#[derive(Clone, Debug)]
pub struct Extension {
    pub kind: String,
    pub args: Value,
    pub span: Span,
}

/// An HTTP request and what its response must look like.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON body (sets `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub expect: HttpExpect,
    /// Values to keep: `NAME: "$.json.path"` or `NAME: { header: etag }`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    #[serde(default)]
    pub status: Option<Matcher>,
    /// Header name (any case) to matcher.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// JSONPath into the response body to matcher.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// Matcher on the body text.
    #[serde(default)]
    pub body: Option<Matcher>,
}

/// SQL run in the scenario's own database. Exactly one of `query` and `execute`.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// A statement returning rows; the step's document is the list of rows.
    #[serde(default)]
    pub query: Option<String>,
    /// A statement run for effect; the document is `{ "affected": N }`.
    #[serde(default)]
    pub execute: Option<String>,
    /// Values bound to `$1`, `$2`, ...
    #[serde(default)]
    pub params: Vec<Value>,
    /// Run as this role (`SET LOCAL ROLE`) inside a transaction.
    #[serde(default)]
    pub role: Option<String>,
    /// Settings for this statement's transaction, such as `app.user_id: u1` for row-level
    /// security policies (`set_config(name, value, true)`).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub expect: RowsExpect,
    /// Values to keep: `NAME: "$[0].column"`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// Expectations on a list of rows (SQL) or records (Cypher).
#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowsExpect {
    /// The exact rows, in order.
    #[serde(default)]
    pub rows: Option<Vec<Value>>,
    #[serde(default)]
    pub row_count: Option<Matcher>,
    /// Rows changed by `execute`.
    #[serde(default)]
    pub affected: Option<Matcher>,
    /// JSONPath into the document to matcher.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// The statement must fail with an error message that matches.
    #[serde(default)]
    pub error: Option<Matcher>,
}

/// An object-store operation on the scenario's bucket (or `bucket`).
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    pub op: S3Op,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// For `list` and `list_versions`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Text to put.
    #[serde(default)]
    pub body: Option<String>,
    /// A file to put (relative to the scenario file).
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Read or delete this version.
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub expect: S3Expect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum S3Op {
    Put,
    Get,
    Head,
    List,
    ListVersions,
    Delete,
}

impl S3Op {
    pub const NAMES: [&str; 6] = ["put", "get", "head", "list", "list_versions", "delete"];
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Expect {
    /// Matcher on the object's text (`get`).
    #[serde(default)]
    pub body: Option<Matcher>,
    /// Whether the object exists (`get`, `head`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Number of keys or versions (`list`, `list_versions`).
    #[serde(default)]
    pub count: Option<Matcher>,
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// The operation must fail with an error that matches.
    #[serde(default)]
    pub error: Option<Matcher>,
}

/// Cypher run against the graph. Write `${scenario.graph_label}` as a label to stay in the
/// scenario's own part of the graph.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cypher {
    pub query: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub expect: RowsExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// Retry `probe` until it holds, waiting `interval` (growing by `backoff`) between tries.
#[derive(Clone, Debug, JsonSchema)]
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
    pub probe: Step,
}

/// A local command. A string runs through `sh -c`; a list is the argv.
#[derive(Clone, Debug, JsonSchema)]
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
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub expect: ExecExpect,
    /// Values to keep, from `{ exit_code, stdout, stderr, json }`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Clone, Debug, Default, JsonSchema)]
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

/// Compare a value with the snapshot stored beside the scenario.
#[derive(Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Snapshot name, unique within the scenario.
    pub name: String,
    /// The value; templates are expanded first.
    pub value: Value,
    /// JSONPaths whose values are replaced by `[redacted]` before comparing.
    #[serde(default)]
    pub redact: Vec<String>,
}

/// Expect the collector to receive matching signals within a time window.
#[derive(Clone, Debug, JsonSchema)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Spans,
    Metrics,
    Logs,
}

#[derive(Clone, Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryExpect {
    /// Number of matching items (default: at least one).
    #[serde(default)]
    pub count: Option<Matcher>,
}

/// Where a captured value comes from.
#[derive(Clone, Debug)]
pub struct Capture {
    pub from: CaptureFrom,
    /// Redact the value from every output.
    pub secret: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CaptureFrom {
    /// JSONPath into the step's document.
    Path(String),
    /// A response header (HTTP).
    Header(String),
}

impl JsonSchema for Capture {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Capture".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A JSONPath into the step's document, or `{ path | header, secret }`.",
            "anyOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "header": { "type": "string" },
                        "secret": { "type": "boolean" }
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// A check on one value: a plain value means "equals"; a map with one operator key
/// (`eq`, `ne`, `contains`, `excludes`, `matches`, `gt`, `ge`, `lt`, `le`, `exists`, `len`, `one_of`)
/// applies that operator.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub op: MatchOp,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MatchOp {
    Eq(Value),
    Ne(Value),
    Contains(Value),
    /// The opposite of `contains`: text without the substring, a list without the item.
    Excludes(Value),
    Matches(String),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Exists(bool),
    Len(u64),
    OneOf(Vec<Value>),
}

impl MatchOp {
    pub const NAMES: [&str; 12] = [
        "eq", "ne", "contains", "excludes", "matches", "gt", "ge", "lt", "le", "exists", "len",
        "one_of",
    ];
}

impl JsonSchema for Matcher {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Matcher".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let num = serde_json::json!({ "type": "number" });
        let mut ops = vec![
            serde_json::json!({"type": "object", "properties": {"eq": {}}, "required": ["eq"], "additionalProperties": false}),
            serde_json::json!({"type": "object", "properties": {"ne": {}}, "required": ["ne"], "additionalProperties": false}),
            serde_json::json!({"type": "object", "properties": {"contains": {}}, "required": ["contains"], "additionalProperties": false}),
            serde_json::json!({"type": "object", "properties": {"excludes": {}}, "required": ["excludes"], "additionalProperties": false}),
            serde_json::json!({"type": "object", "properties": {"matches": {"type": "string", "format": "regex"}}, "required": ["matches"], "additionalProperties": false}),
        ];
        for op in ["gt", "ge", "lt", "le"] {
            ops.push(serde_json::json!({"type": "object", "properties": {op: num}, "required": [op], "additionalProperties": false}));
        }
        ops.push(serde_json::json!({"type": "object", "properties": {"exists": {"type": "boolean"}}, "required": ["exists"], "additionalProperties": false}));
        ops.push(serde_json::json!({"type": "object", "properties": {"len": {"type": "integer", "minimum": 0}}, "required": ["len"], "additionalProperties": false}));
        ops.push(serde_json::json!({"type": "object", "properties": {"one_of": {"type": "array"}}, "required": ["one_of"], "additionalProperties": false}));
        ops.push(serde_json::json!({"description": "Any other value: must equal it."}));
        schemars::json_schema!({
            "description": "A plain value (equals) or a map with one operator.",
            "anyOf": ops
        })
    }
}

/// A duration written with a unit: `250ms`, `5s`, `2m`, `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with a unit: `250ms`, `5s`, `2m`, `1h`.",
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$"
        })
    }
}

impl Dur {
    /// Parses `250ms`, `1.5s`, `2m`, `1h`.
    pub fn parse(text: &str) -> Option<Dur> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = text.split_at(split);
        let n: f64 = num.parse().ok()?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        if !secs.is_finite() || secs > 7.0 * 24.0 * 3600.0 {
            return None;
        }
        Some(Dur(Duration::from_secs_f64(secs)))
    }
}
