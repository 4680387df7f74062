//! The typed form of a scenario file. The doc comments here are the descriptions in the
//! JSON Schema that `harness schema` prints, so they are written for scenario authors.

use std::{collections::BTreeMap, time::Duration};

use schemars::JsonSchema;
use serde_json::Value;

use crate::{Keys, diag::Span, kinds::Action, template::CodeRef};

/// A scenario: a steady state that must hold, steps that exercise the system, and
/// rollbacks that always run afterwards.
#[derive(Clone, Debug, JsonSchema, Keys)]
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
    /// The scenario's Supabase project (harness's emulator over its database): fixture
    /// users, signed in before the steps.
    #[serde(default)]
    pub supabase: Option<SupabaseProject>,
    /// Local processes (the system under test) started after the mocks and stopped after
    /// the rollbacks; each is reachable at `${processes.NAME.url}`.
    #[serde(default)]
    pub processes: Vec<Process>,
    /// Defaults for the steps of this file.
    #[serde(default)]
    pub defaults: Defaults,
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
    /// The captures each step reads, by phase and position: a rollback whose captures were
    /// never taken (their step failed or did not run) is skipped, not failed.
    #[serde(skip)]
    pub captures_used: BTreeMap<(crate::Phase, usize), std::collections::BTreeSet<String>>,
    /// The services something reaches through its fault proxy (`${faults.SERVICE.…}`):
    /// each gets a proxy of the scenario's own before its processes start.
    #[serde(skip)]
    pub fault_targets: std::collections::BTreeSet<Service>,
    /// Whether anything refers to `${supabase.…}`: the scenario then gets a Supabase
    /// emulator of its own over its database before its processes start.
    #[serde(skip)]
    pub uses_supabase: bool,
    /// The processes something reaches through its fault proxy
    /// (`${faults.processes.NAME.…}`): each gets one when it starts.
    #[serde(skip)]
    pub fault_processes: std::collections::BTreeSet<String>,
    /// The mocks something reaches through its fault proxy (`${faults.mocks.NAME.url}`).
    #[serde(skip)]
    pub fault_mocks: std::collections::BTreeSet<String>,
}

impl Scenario {
    /// Whether a step pauses, stops, kills or restarts a stack service: another process
    /// sharing the stack would see its outage.
    pub fn faults_stack_processes(&self) -> bool {
        !self.services_taken_away().is_empty()
    }

    /// The stack services a step pauses, stops, kills or restarts, or changes for every
    /// database on them. A run's shared stack runs such a scenario alone among the scenarios
    /// that use those services; the others go on beside it.
    pub fn services_taken_away(&self) -> std::collections::BTreeSet<Service> {
        let mut out: std::collections::BTreeSet<Service> = self
            .steady_state
            .iter()
            .chain(&self.steps)
            .chain(&self.rollbacks)
            .flat_map(|step| step.action.faults(step.span))
            .filter(|(f, _)| f.process_action().is_some() || f.clear == Some(true))
            .filter_map(|(f, _)| f.target)
            .collect();
        for s in &self.steps {
            match &s.action {
                // A graph backup stops the stack's Neo4j for its copy; a pgBackRest backup
                // sets the server's `archive_command`, which every database of it shares.
                crate::Action::Backup(b) => {
                    if b.neo4j.is_some() {
                        out.insert(Service::Neo4j);
                    }
                    if b.postgres
                        .as_ref()
                        .is_some_and(|p| p.method == crate::kinds::backup::PgMethod::Pgbackrest)
                    {
                        out.insert(Service::Postgres);
                    }
                }
                // Killing the server, or restarting it over a corrupted file, is an outage
                // of every database on it.
                crate::Action::Disaster(d)
                    if d.postgres
                        .as_ref()
                        .is_some_and(|p| p.kill || p.corrupt.is_some()) =>
                {
                    out.insert(Service::Postgres);
                }
                _ => {}
            }
        }
        out
    }
}

/// What the scenario's Supabase project holds before its steps run.
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct SupabaseProject {
    /// Users created through the Auth admin API (email confirmed) and signed in with their
    /// password before the processes start. Each is `${supabase.users.NAME.id}` (also
    /// `email`, `phone`, `password`, `access_token`, `refresh_token`; the last three secret),
    /// and an `http` step with `as: NAME` calls as that user.
    #[serde(default)]
    pub users: BTreeMap<String, SupabaseUser>,
    /// New addresses must be confirmed (by the mailed link or code, in the emulator's inbox
    /// at `${supabase.url}/inbox`) before a password sign-in. Default false, as
    /// `supabase start` has it; fixture users are confirmed either way.
    #[serde(default)]
    pub confirm_email: bool,
    /// Sign user tokens with an asymmetric ES256 key, published at
    /// `${supabase.url}/auth/v1/.well-known/jwks.json`, as newer Supabase projects do
    /// (default: HS256 with `${supabase.jwt_secret}`).
    #[serde(default)]
    pub asymmetric_keys: bool,
}

/// A fixture user of the Supabase project.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct SupabaseUser {
    pub email: String,
    /// Default: random per run (a secret either way).
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// `raw_user_meta_data`: the JWT's `user_metadata`.
    #[serde(default)]
    pub user_metadata: Option<Value>,
    /// `raw_app_meta_data` (Supabase adds `provider` and `providers`): the JWT's
    /// `app_metadata`, which only the secret key may write.
    #[serde(default)]
    pub app_metadata: Option<Value>,
    #[serde(skip)]
    pub span: Span,
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

    /// The environment `env_from: [SERVICE]` gives a process or an `exec` step: the names
    /// the service's usual clients read (libpq and `DATABASE_URL`, the AWS SDKs and CLI, the
    /// Neo4j drivers' examples, the OpenTelemetry SDKs), set to the stack's address and
    /// credentials and to the scenario's own database, bucket and graph label.
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Service::Postgres => &[
                ("DATABASE_URL", "${scenario.database_url}"),
                ("PGHOST", "${stack.postgres.host}"),
                ("PGPORT", "${stack.postgres.port}"),
                ("PGUSER", "${stack.postgres.user}"),
                ("PGPASSWORD", "${stack.postgres.password}"),
                ("PGDATABASE", "${scenario.database}"),
            ],
            Service::S3 => &[
                ("AWS_ENDPOINT_URL", "${stack.s3.endpoint_url}"),
                ("AWS_ENDPOINT_URL_S3", "${stack.s3.endpoint_url}"),
                ("AWS_REGION", "${stack.s3.region}"),
                ("AWS_DEFAULT_REGION", "${stack.s3.region}"),
                ("AWS_ACCESS_KEY_ID", "${stack.s3.access_key_id}"),
                ("AWS_SECRET_ACCESS_KEY", "${stack.s3.secret_access_key}"),
                ("S3_BUCKET", "${scenario.bucket}"),
            ],
            Service::Neo4j => &[
                ("NEO4J_URI", "${stack.neo4j.bolt_url}"),
                ("NEO4J_USERNAME", "${stack.neo4j.user}"),
                ("NEO4J_PASSWORD", "${stack.neo4j.password}"),
                ("NEO4J_LABEL", "${scenario.graph_label}"),
            ],
            Service::Otel => &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "${stack.otel.otlp_http}"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        }
    }
}

/// Defaults for the steps of a file.
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub http: HttpDefaults,
}

/// Defaults for every `http` step.
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct HttpDefaults {
    /// Prefixed to a step `url` that starts with `/`, such as `${processes.app.url}`.
    #[serde(default)]
    pub base_url: Option<crate::template::Template>,
    /// Sent with every request; a step's own `headers` override them by name.
    #[serde(default)]
    pub headers: BTreeMap<String, crate::template::Template>,
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
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let detailed = generator.subschema_for::<DetailedVar>();
        schemars::json_schema!({
            "description": "A value, or `{ value, secret: true }` for a value redacted from every output.",
            "anyOf": [detailed, {}]
        })
    }
}

/// The detailed form of a var, `{ value, secret }`: its schema and keys.
#[derive(JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct DetailedVar {
    pub value: Value,
    /// Redact the value from every output.
    pub secret: bool,
}

/// Data loaded before the scenario starts. Paths are relative to the scenario file.
#[derive(Clone, Debug, JsonSchema, Keys)]
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

#[derive(Clone, Debug, JsonSchema, Keys)]
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
#[derive(Clone, Debug, JsonSchema, Keys)]
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

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
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

#[derive(Clone, Debug, JsonSchema, Keys)]
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
#[derive(Clone, Debug, JsonSchema, Keys)]
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
    /// Environment variables; `${…}` references are filled in when the process starts.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Services whose connection settings the process gets under their usual names
    /// (`postgres`: `DATABASE_URL` and `PG*`; `s3`: `AWS_*` and `S3_BUCKET`; `neo4j`:
    /// `NEO4J_*`; `otel`: `OTEL_EXPORTER_OTLP_*`). `env` wins over them by name.
    #[serde(default)]
    pub env_from: Vec<Service>,
    /// When the process counts as started (default: its port accepts TCP connections).
    #[serde(default)]
    pub ready: Option<Ready>,
    /// How long to wait for readiness (default 30s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    #[serde(skip)]
    pub span: Span,
}

/// A program: a string runs through `sh -c`, a list is the argv.
#[derive(Clone, Debug, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

/// A readiness condition for a scenario process.
#[derive(Clone, Debug, PartialEq, JsonSchema, Keys)]
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
#[derive(Clone, Debug, JsonSchema, Keys)]
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
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let detailed = generator.subschema_for::<DetailedCapture>();
        schemars::json_schema!({
            "description": "A JSONPath into the step's document, or `{ path | header, secret }`.",
            "anyOf": [{ "type": "string" }, detailed]
        })
    }
}

/// The detailed form of a capture: its schema and keys.
#[derive(JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct DetailedCapture {
    /// JSONPath into the step's document.
    #[serde(default)]
    pub path: Option<String>,
    /// A response header (`http` steps only).
    #[serde(default)]
    pub header: Option<String>,
    /// Redact the value from every output.
    #[serde(default)]
    pub secret: bool,
}

/// A check on one value: a plain value means "equals"; a map with one operator key
/// (`eq`, `ne`, `contains`, `excludes`, `matches`, `gt`, `ge`, `lt`, `le`, `exists`, `len`, `one_of`)
/// applies that operator.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub op: MatchOp,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Keys)]
#[serde(rename_all = "snake_case")]
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
