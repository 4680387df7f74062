//! Step kinds: one file each, holding the kind's typed arguments (their doc comments are the
//! JSON Schema's descriptions), its expectations and its decoder.
//!
//! A kind's keys are not listed by hand: `#[derive(Keys)]` reads them from the same serde
//! attributes that shape the schema, so the decoder's unknown-key check, its did-you-mean
//! and the schema always agree.
//!
//! Adding a kind: write `kinds/NAME.rs` with the type, `#[derive(JsonSchema, Keys)]` and
//! `impl Kind`, add one line to the [`kinds!`] list below, and a handler file in the
//! engine's `run/steps/`. The runner applies `expect.json` and `capture` to every kind
//! alike, through [`Kind::json_expect`] and [`Kind::captures`].

pub mod backup;
pub mod cypher;
pub mod deploy;
pub mod disaster;
pub mod eventually;
pub mod exec;
pub mod fault;
pub mod http;
pub mod job;
pub mod restore;
pub mod rls;
pub mod rollback;
pub mod s3;
pub mod schedule;
pub mod snapshot;
pub mod sql;
pub mod telemetry;
pub mod traffic;
pub mod verify;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::Value;

pub(crate) use crate::decode::*;
pub(crate) use crate::{
    Keys,
    diag::{Problem, Span},
    model::*,
    suggest::did_you_mean,
    template::{Sink, Template},
    yaml::{Node, NodeValue},
};

/// One step kind.
pub trait Kind: Keys + JsonSchema + Sized {
    /// The key that names the kind in a step (`http: …`).
    const KEY: &'static str;
    /// How messages name a step of this kind ("an `http` step").
    const WHAT: &'static str;
    /// The stack service the kind needs, if any.
    const SERVICE: Option<Service> = None;
    /// The stack service this step needs (a kind that wraps another step asks it).
    fn service(&self) -> Option<Service> {
        Self::SERVICE
    }
    /// Decodes the kind's map. Unknown keys are reported from [`Keys::KEYS`].
    fn decode(cx: &mut Cx, node: &Node) -> Option<Self>;
    /// `expect.json`: JSONPaths into the step's document.
    fn json_expect(&self) -> &BTreeMap<String, Matcher> {
        &NO_MATCHERS
    }
    /// `capture`: values kept from the step's document.
    fn captures(&self) -> &BTreeMap<String, Capture> {
        &NO_CAPTURES
    }
}

static NO_MATCHERS: BTreeMap<String, Matcher> = BTreeMap::new();
static NO_CAPTURES: BTreeMap<String, Capture> = BTreeMap::new();

/// The map of a kind, with its keys checked against the type's.
pub(crate) fn kind_fields<'n, K: Kind>(cx: &mut Cx, node: &'n Node) -> Option<Fields<'n>> {
    fields(cx, node, K::WHAT, K::KEYS)
}

/// Declares the built-in kinds: the [`Action`] enum, the list of names and the dispatch
/// from a key to its decoder.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// The step kinds. Exactly one per step.
        #[derive(Clone, Debug, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Action {
            $($(#[$doc])* $variant($ty),)*
            /// A kind reserved for a capability that has not landed: a plan error.
            #[serde(untagged)]
            #[schemars(skip)]
            Reserved(Reserved),
            /// An experimental `x-` kind provided by a handler registered with the runner.
            #[serde(untagged)]
            #[schemars(skip)]
            Extension(Extension),
        }

        /// The built-in step kinds, in the order the docs list them.
        pub const BUILTIN_KINDS: &[&str] = &[$(<$ty as Kind>::KEY),*];

        impl Action {
    /// Whether this step (or an `eventually`'s probe) calls as a Supabase user (`as:`).
    pub fn calls_supabase(&self) -> bool {
        match self {
            Action::Http(h) => h.caller.is_some(),
            Action::Rls(_) => true,
            Action::Eventually(e) => e.probe.action.calls_supabase(),
            _ => false,
        }
    }

            /// The key that names the step's kind.
            pub fn kind(&self) -> &str {
                match self {
                    $(Action::$variant(_) => <$ty as Kind>::KEY,)*
                    Action::Reserved(r) => r.kind,
                    Action::Extension(x) => &x.kind,
                }
            }

            /// The stack service the step needs, if any (for `eventually`, its probe's).
            pub fn service(&self) -> Option<Service> {
                match self {
                    $(Action::$variant(k) => k.service(),)*
                    Action::Reserved(_) | Action::Extension(_) => None,
                }
            }

            /// The step's `capture` entries.
            pub fn capture_map(&self) -> &BTreeMap<String, Capture> {
                match self {
                    $(Action::$variant(k) => k.captures(),)*
                    Action::Reserved(_) => &NO_CAPTURES,
                    Action::Extension(x) => &x.capture,
                }
            }

            /// The step's `expect.json` entries.
            pub fn json_expect(&self) -> &BTreeMap<String, Matcher> {
                match self {
                    $(Action::$variant(k) => k.json_expect(),)*
                    Action::Reserved(_) => &NO_MATCHERS,
                    Action::Extension(x) => &x.json,
                }
            }
        }

        /// Decodes the body of a built-in kind, or `None` when `key` names none.
        fn decode_builtin(cx: &mut Cx, key: &str, body: &Node) -> Option<Option<Action>> {
            $(if key == <$ty as Kind>::KEY {
                return Some(<$ty as Kind>::decode(cx, body).map(Action::$variant));
            })*
            None
        }
    };
}

kinds! {
    /// Send an HTTP request and check the response.
    Http(http::Http),
    /// Run SQL in the scenario's database.
    Sql(sql::Sql),
    /// Act on the scenario's bucket.
    S3(s3::S3),
    /// Run Cypher against the graph.
    Cypher(cypher::Cypher),
    /// Retry a probe until it holds or the timeout passes.
    Eventually(eventually::Eventually),
    /// Run a local command.
    Exec(exec::Exec),
    /// Compare a value with a stored snapshot.
    Snapshot(snapshot::Snapshot),
    /// Expect signals received by the collector.
    Telemetry(telemetry::Telemetry),
    /// Put a fault on a stack service (its proxy or its process) or a scenario process.
    Fault(fault::Fault),
    /// Faults on a timeline, alongside the steps that follow.
    Schedule(schedule::Schedule),
    /// Deploy a revision of a Cloud Run service on the scenario's emulator.
    Deploy(deploy::Deploy),
    /// Set a Cloud Run service's traffic split and tags.
    Traffic(traffic::Traffic),
    /// Send a Cloud Run service's traffic back to an earlier revision.
    Rollback(rollback::Rollback),
    /// Create or update a Cloud Run job on the scenario's emulator, run it and wait.
    Job(job::Job),
    /// Back up a store under test (a restore drill's first step), optionally with a writer.
    Backup(backup::Backup),
    /// Damage a store under test on purpose; the drill's recovery time starts here.
    Disaster(disaster::Disaster),
    /// Restore the latest backup into a fresh database that takes the damaged one's place.
    Restore(restore::Restore),
    /// Check the restored data, measure RTO and RPO, and hold them to their objectives.
    Verify(verify::Verify),
    /// Prove row-level security over every user-scoped table, through the Supabase emulator.
    Rls(rls::Rls),
}

impl Action {
    /// The faults this step applies, each with where it is written: a `fault` step's own, or
    /// each entry of a `schedule`.
    pub fn faults(&self, step: Span) -> Vec<(&fault::Fault, Span)> {
        match self {
            Action::Fault(f) => vec![(f, step)],
            Action::Schedule(s) => s.0.iter().map(|t| (&t.fault, t.span)).collect(),
            _ => Vec::new(),
        }
    }

    /// The capture names this step defines (for `eventually`, its probe's).
    pub fn captures(&self) -> Vec<&str> {
        if let Action::Eventually(e) = self {
            return e.probe.action.captures();
        }
        self.capture_map().keys().map(String::as_str).collect()
    }
}

/// Step kinds reserved for capabilities that have not landed yet, and which capability
/// brings each. A step of one of them parses, so `harness validate` accepts a file written
/// ahead of time, and is refused when the run is planned, pointing at the step.
pub const RESERVED_KINDS: [(&str, &str); 0] = [];

/// Prefix of experimental kinds, which a handler registered with the runner provides.
pub const EXTENSION_PREFIX: &str = "x-";

/// Every step kind name: built-in, then reserved.
pub fn step_kinds() -> impl Iterator<Item = &'static str> {
    BUILTIN_KINDS
        .iter()
        .copied()
        .chain(RESERVED_KINDS.iter().map(|(k, _)| *k))
}

/// A step of a reserved kind.
#[derive(Clone, Debug)]
pub struct Reserved {
    pub kind: &'static str,
    /// The capability that will provide it.
    pub capability: &'static str,
    /// The kind's key in the file.
    pub span: Span,
}

/// An experimental `x-NAME` step: its arguments go to the registered handler as data, and
/// the document the handler returns gets the same `expect.json` and `capture` as every kind.
#[derive(Clone, Debug)]
pub struct Extension {
    pub kind: String,
    /// The map without `expect` and `capture`.
    pub args: Value,
    /// `expect.json`.
    pub json: BTreeMap<String, Matcher>,
    pub capture: BTreeMap<String, Capture>,
    pub span: Span,
}

fn extension(cx: &mut Cx, kind: &str, node: &Node) -> Option<Extension> {
    let NodeValue::Map(entries) = &node.value else {
        cx.expected(node, &format!("the arguments of `{kind}` (a map)"));
        return None;
    };
    let mut args = serde_json::Map::new();
    let mut json = None;
    let mut capture = None;
    let mut ok = true;
    for (k, v) in entries {
        match k.key_text().as_str() {
            "expect" => {
                let what = format!("`expect` of an `{kind}` step");
                if let Some(n) = fields(cx, v, &what, &["json"]).and_then(|g| g.get("json")) {
                    json = path_matchers(cx, n);
                }
            }
            "capture" => capture = captures(cx, v, false),
            other => match value(cx, v) {
                Some(val) => {
                    args.insert(other.to_owned(), val);
                }
                None => ok = false,
            },
        }
    }
    ok.then(|| Extension {
        kind: kind.to_owned(),
        args: Value::Object(args),
        json: json.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
        span: node.span,
    })
}

/// Decodes the body of the step kind named `key` (whose node is `key_node`).
pub(crate) fn decode_kind(cx: &mut Cx, key_node: &Node, body: &Node) -> Option<Action> {
    let key = key_node.as_str().unwrap_or_default();
    if let Some(action) = decode_builtin(cx, key, body) {
        return action;
    }
    if let Some((kind, capability)) = RESERVED_KINDS.iter().find(|(k, _)| *k == key) {
        // Still checked as data: a bad number or template is reported now.
        value(cx, body)?;
        return Some(Action::Reserved(Reserved {
            kind,
            capability,
            span: key_node.span,
        }));
    }
    extension(cx, key, body).map(Action::Extension)
}

/// Whether `key` names a step kind.
pub(crate) fn is_kind(key: &str) -> bool {
    step_kinds().any(|k| k == key)
        || (key.starts_with(EXTENSION_PREFIX) && key.len() > EXTENSION_PREFIX.len())
}
