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
    eventually::Eventually,
    exec::{Exec, ExecExpect},
    http::{Http, HttpExpect},
    s3::{S3, S3Expect, S3Op},
    snapshot::Snapshot,
    sql::{RowsExpect, Sql},
    step_kinds,
    telemetry::{Signal, Telemetry, TelemetryExpect},
};
pub use lint::lint;
pub use model::*;
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
    if bytes.len() > MAX_FILE_BYTES {
        let source = Source::new(name, "");
        return Err(Diagnostics::new(
            source,
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
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(name, text),
        Err(e) => {
            let valid = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes).into_owned();
            // The lossy text has the same bytes up to the first invalid one, which it
            // replaces with U+FFFD.
            let source = Source::new(name, text);
            let help = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
                "this file is UTF-16; save it as UTF-8"
            } else {
                "scenario files are UTF-8 YAML"
            };
            Err(Diagnostics::new(
                source,
                vec![
                    Problem::new(
                        Span::new(valid, char::REPLACEMENT_CHARACTER.len_utf8()),
                        "file is not UTF-8 text",
                    )
                    .label("invalid byte")
                    .help(help),
                ],
            ))
        }
    }
}

/// Parses and validates a scenario. Every problem is reported, each with its span.
pub fn parse(name: &str, text: &str) -> Result<Scenario, Diagnostics> {
    let source = Source::new(name, text);
    if let Some(at) =
        text.find(|c: char| c == '\0' || (c.is_control() && !matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(Diagnostics::new(
            source,
            vec![
                Problem::new(
                    Span::new(at, 1),
                    "file contains a control character; it does not look like YAML text",
                )
                .label("here"),
            ],
        ));
    }
    let root = match yaml::parse(text) {
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
    let mut cx = decode::Cx::new(text);
    let mut scenario = decode::scenario(&mut cx, &root);
    let mut problems = std::mem::take(&mut cx.problems);
    if let Some(s) = &mut scenario {
        validate::check(s, &cx.refs, &cx.fixture_spans, &mut problems);
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
        Some(s) if problems.is_empty() => Ok(s),
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
