//! Scenario files: the typed model, a parser that keeps source spans, validation that
//! reports every problem at once, a lint pass that warns about risky but valid files, and
//! the JSON Schema editors use for completion.
//!
//! This crate does no I/O and runs no async code: it turns text into a [`Scenario`] or a
//! [`Diagnostics`] value. The engine plans and runs what it returns.
//!
//! ```
//! let text = "name: smoke\nstack: [postgres]\nsteps:\n  - sql: { query: 'select 1 as one' }\n";
//! let scenario = harness_scenario::parse("smoke.yaml", text).expect("valid");
//! assert_eq!(scenario.name, "smoke");
//! ```

// `#[derive(Keys)]` names this crate by its public path, here as elsewhere.
extern crate self as harness_scenario;

mod decode;
pub mod diag;
pub mod kinds;
mod lint;
pub mod model;
mod shared;
mod suggest;
pub mod template;
mod validate;
pub mod yaml;

pub use decode::{Phase, valid_ident};
pub use diag::{Diagnostics, Problem, Severity, Source, Span};
pub use harness_scenario_derive::Keys;
pub use kinds::{
    Action, BUILTIN_KINDS, EXTENSION_PREFIX, Extension, Kind, RESERVED_KINDS, Reserved,
    cypher::Cypher,
    deploy::{CanaryArgs, Deploy, DeployExpect, ProbeArgs},
    eventually::Eventually,
    exec::{Exec, ExecExpect},
    http::{Http, HttpExpect},
    job::{Job, JobExpect},
    rollback::Rollback,
    s3::{S3, S3Expect, S3Op},
    snapshot::Snapshot,
    sql::{RowsExpect, Sql},
    step_kinds,
    telemetry::{Signal, Telemetry, TelemetryExpect},
    traffic::{JsonExpect, Split, Traffic},
};
pub use lint::lint;
pub use model::*;
pub use shared::{SHARED_FILE, SHARED_KEYS};
pub use suggest::did_you_mean;
pub use yaml::MAX_EXPANDED_BYTES;

/// The keys a scenario author may write for a model type (derived with `#[derive(Keys)]`
/// from its serde attributes, like the JSON Schema).
pub trait Keys {
    const KEYS: &'static [&'static str];
}

/// Largest scenario file accepted.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Parses and validates a scenario from raw bytes (checks size and encoding first).
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Result<Scenario, Diagnostics> {
    parse_files(name, bytes, None).map(|(s, _)| s)
}

/// Parses and validates a scenario from raw bytes together with its folder's shared
/// defaults (`name` and bytes of [`SHARED_FILE`]), if it has one. Returns the scenario and
/// the [`Source`] its spans point into, which names each of the two files.
pub fn parse_files(
    name: &str,
    bytes: &[u8],
    shared: Option<(&str, &[u8])>,
) -> Result<(Scenario, Source), Diagnostics> {
    let (main, mut problems) = text_of(bytes);
    let mut text = main.clone();
    let mut appended = None;
    if let Some((shared_name, shared_bytes)) = shared {
        let (shared_text, shared_problems) = text_of(shared_bytes);
        let base = text.len() + 1;
        text.push('\n');
        text.push_str(&shared_text);
        problems.extend(shared_problems.into_iter().map(|p| shifted(p, base)));
        appended = Some((shared_name, shared_text, base));
    }
    let mut source = Source::new(name, text);
    if let Some((shared_name, _, base)) = &appended {
        source = source.with_part(*shared_name, *base);
    }
    if !problems.is_empty() {
        return Err(Diagnostics::new(source, problems));
    }
    let shared = appended.map(|(_, t, base)| (t, base));
    parse_source(
        source,
        &main,
        shared.as_ref().map(|(t, b)| (t.as_str(), *b)),
    )
}

/// A file's text, or its lossy text and why it cannot be read as a scenario.
fn text_of(bytes: &[u8]) -> (String, Vec<Problem>) {
    if bytes.len() > MAX_FILE_BYTES {
        return (
            String::new(),
            vec![
                Problem::new(
                    Span::new(0, 0),
                    format!(
                        "file is {} bytes; scenario files are limited to {MAX_FILE_BYTES}",
                        bytes.len()
                    ),
                )
                .help("keep large data in fixture files"),
            ],
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(e) => {
            let valid = e.valid_up_to();
            let help = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
                "this file is UTF-16; save it as UTF-8"
            } else {
                "scenario files are UTF-8 YAML"
            };
            // The lossy text has the same bytes up to the first invalid one, which it
            // replaces with U+FFFD.
            return (
                String::from_utf8_lossy(bytes).into_owned(),
                vec![
                    Problem::new(
                        Span::new(valid, char::REPLACEMENT_CHARACTER.len_utf8()),
                        "file is not UTF-8 text",
                    )
                    .label("invalid byte")
                    .help(help),
                ],
            );
        }
    };
    let problems = text
        .find(|c: char| c == '\0' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')))
        .map(|at| {
            Problem::new(
                Span::new(at, 1),
                "file contains a control character; it does not look like YAML text",
            )
            .label("here")
        })
        .into_iter()
        .collect();
    (text, problems)
}

fn shifted(mut p: Problem, by: usize) -> Problem {
    p.span = Span::new(p.span.offset + by, p.span.len);
    for (s, _) in &mut p.also {
        *s = Span::new(s.offset + by, s.len);
    }
    p
}

/// Parses and validates a scenario. Every problem is reported, each with its span.
pub fn parse(name: &str, text: &str) -> Result<Scenario, Diagnostics> {
    parse_files(name, text.as_bytes(), None).map(|(s, _)| s)
}

/// Parses the scenario text `main` of `source`, merged with the shared defaults text that
/// starts at the given offset of `source`.
fn parse_source(
    source: Source,
    main: &str,
    shared: Option<(&str, usize)>,
) -> Result<(Scenario, Source), Diagnostics> {
    let root = match yaml::parse(main) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(Diagnostics::new(
                source,
                vec![
                    Problem::new(Span::new(0, 0), "file is empty")
                        .help("a scenario needs at least `name` and `steps`"),
                ],
            ));
        }
        Err(problems) => return Err(Diagnostics::new(source, problems)),
    };
    let mut problems = Vec::new();
    let root = match shared {
        None => root,
        Some((text, base)) => match yaml::parse(text) {
            Ok(None) => root,
            Ok(Some(mut node)) => {
                shared::shift(&mut node, base);
                shared::inherit(root, &node, &mut problems)
            }
            Err(p) => {
                problems.extend(p.into_iter().map(|p| shifted(p, base)));
                root
            }
        },
    };
    let mut cx = decode::Cx::new(&source.text);
    let mut scenario = decode::scenario(&mut cx, &root);
    problems.append(&mut cx.problems);
    if let Some(s) = &mut scenario {
        s.uses_supabase = cx.refs.iter().any(|r| r.r.root == "supabase")
            || s.supabase.is_some()
            || s.steady_state
                .iter()
                .chain(&s.steps)
                .chain(&s.rollbacks)
                .any(|st| st.action.calls_supabase());
        validate::check(s, &cx.refs, &cx.fixture_spans, &mut problems);
        for r in &cx.refs {
            if r.r.root == "faults"
                && let Some(svc) = r.r.path.first()
                && let Some(service) = Service::ALL.into_iter().find(|s| s.name() == svc)
            {
                s.fault_targets.insert(service);
            }
            if r.r.root == "faults"
                && let (Some(kind), Some(name)) = (r.r.path.first(), r.r.path.get(1))
            {
                match kind.as_str() {
                    "processes" => {
                        s.fault_processes.insert(name.clone());
                    }
                    "mocks" => {
                        s.fault_mocks.insert(name.clone());
                    }
                    _ => {}
                }
            }
        }
        // A drill's backups and restores reach the store through its proxy when the scenario
        // puts a network fault on it: the fault then acts on the backup and restore path.
        let steps = s.steps.iter().chain(&s.rollbacks);
        let drills = steps
            .clone()
            .any(|st| matches!(st.action, Action::Backup(_) | Action::Restore(_)));
        let pg_network_fault = steps
            .flat_map(|st| st.action.faults(st.span))
            .any(|(f, _)| f.is_network() && f.target == Some(Service::Postgres));
        if drills && pg_network_fault {
            s.fault_targets.insert(Service::Postgres);
        }
        validate::check_fault_targets(s, &mut problems);
        for r in &cx.refs {
            if let decode::Scope::Step { phase, index } = r.scope
                && r.r.root == "captures"
                && let Some(name) = r.r.path.first()
            {
                s.captures_used
                    .entry((phase, index))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    match scenario {
        Some(s) if problems.is_empty() => Ok((s, source)),
        _ => {
            if problems.is_empty() {
                problems.push(Problem::new(root.span, "scenario could not be read"));
            }
            Err(Diagnostics::new(source, problems))
        }
    }
}

/// The JSON Schema of scenario files, generated from the types in [`model`].
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Scenario);
    let mut value = schema.to_value();
    // Capabilities plug their step kinds in at run time; editors still need to know them.
    if let Some(step) = value
        .pointer_mut("/$defs/Step")
        .and_then(|s| s.as_object_mut())
    {
        if let Some(kinds) = step.get_mut("anyOf").and_then(|k| k.as_array_mut()) {
            for (kind, capability) in RESERVED_KINDS {
                kinds.push(serde_json::json!({
                    "description": format!("`{kind}`: reserved; it comes with {capability}."),
                    "type": "object",
                    "properties": { kind: { "type": "object" } },
                    "required": [kind]
                }));
            }
        }
        step.insert("unevaluatedProperties".into(), false.into());
    }
    if let Some(obj) = value.as_object_mut() {
        obj.insert("title".into(), "harness scenario".into());
        obj.insert(
            "$id".into(),
            "https://harness.invalid/scenario.schema.json".into(),
        );
    }
    value
}
