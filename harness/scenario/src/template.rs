//! `${root.path}` references inside scenario strings.
//!
//! Roots: `vars`, `captures`, `stack`, `env`, `scenario`, `mocks`, `processes`, `fake`. `$${` writes a
//! literal `${`. A string that is exactly one reference keeps the referenced value's type
//! (a captured number stays a number); anything else is text interpolation.
//!
//! Interpolation pastes text, not values: a reference inside SQL, Cypher or a `sh -c`
//! command line becomes code. The decoder records those references as [`CodeRef`]s for the
//! lint pass ([`crate::lint`]).

use crate::diag::Span;

/// Names a reference may start with.
pub const ROOTS: [&str; 11] = [
    "vars",
    "captures",
    "stack",
    "faults",
    "env",
    "scenario",
    "mocks",
    "processes",
    "fake",
    "cloud_run",
    "supabase",
];

/// Fields under `${supabase.…}`: the scenario's Supabase emulator.
pub const SUPABASE_FIELDS: [&str; 6] = [
    "url",
    "anon_key",
    "publishable_key",
    "service_role_key",
    "secret_key",
    "jwt_secret",
];

/// Fields under `${scenario.…}`.
pub const SCENARIO_FIELDS: [&str; 7] = [
    "id",
    "name",
    "database",
    "database_url",
    "bucket",
    "graph_label",
    "seed",
];

/// Fields under `${stack.SERVICE.…}`, per service.
pub fn stack_fields(service: &str) -> Option<&'static [&'static str]> {
    Some(match service {
        "postgres" => &["url", "host", "port", "user", "password", "database"],
        "s3" => &[
            "endpoint_url",
            "region",
            "access_key_id",
            "secret_access_key",
        ],
        "neo4j" => &["bolt_url", "user", "password"],
        "otel" => &["otlp_http", "otlp_grpc", "config_file"],
        _ => return None,
    })
}

/// Generators under `${fake.…}`; values are reproducible for a given `--seed`.
pub const FAKE_KINDS: [&str; 9] = [
    "name",
    "first_name",
    "last_name",
    "email",
    "username",
    "word",
    "sentence",
    "uuid",
    "number",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Ref(Ref),
}

/// One `${…}` reference; `start..end` is its byte range in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub root: String,
    pub path: Vec<String>,
    pub start: usize,
    pub end: usize,
}

impl Ref {
    pub fn dotted(&self) -> String {
        std::iter::once(self.root.as_str())
            .chain(self.path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Text that an interpreter runs, so that a reference's value becomes code, not data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// `query` or `execute` of a `sql` step (sent as written; `execute` without `params`
    /// may hold several statements).
    Sql,
    /// `query` of a `cypher` step.
    Cypher,
    /// A `command` line run through `sh -c`, or the script of a `[sh, -c, SCRIPT]` list.
    Shell,
}

/// A reference written inside code: which one, where in the file, and into what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRef {
    pub r: Ref,
    pub span: Span,
    pub sink: Sink,
}

/// A template error at a byte offset of the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub at: usize,
    pub len: usize,
    pub message: String,
}

/// Splits a string into literal text and references.
pub fn parse(text: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut pos = 0;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = tail;
            pos += i + 3;
            continue;
        }
        if !after.starts_with("${") {
            literal.push('$');
            rest = &after[1..];
            pos += i + 1;
            continue;
        }
        let start = pos + i;
        let Some(close) = after.find('}') else {
            return Err(TemplateError {
                at: start,
                len: after.len(),
                message: "`${` is never closed with `}`".into(),
            });
        };
        let expr = &after[2..close];
        let end = start + close + 1;
        let r = parse_expr(expr, start, end)?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Ref(r));
        rest = &after[close + 1..];
        pos = end;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

fn parse_expr(expr: &str, start: usize, end: usize) -> Result<Ref, TemplateError> {
    let err = |message: String| TemplateError {
        at: start,
        len: end - start,
        message,
    };
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(err("empty reference `${}`".into()));
    }
    if trimmed.contains("${") {
        return Err(err("references cannot be nested".into()));
    }
    let mut segments = trimmed.split('.');
    let root = segments.next().unwrap_or_default().to_owned();
    let path: Vec<String> = segments.map(str::to_owned).collect();
    for seg in std::iter::once(&root).chain(path.iter()) {
        if seg.is_empty() {
            return Err(err(format!("`{trimmed}` has an empty path segment")));
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(err(format!(
                "`{trimmed}` contains `{c}`; references are dotted names like `vars.user_id`"
            )));
        }
    }
    Ok(Ref {
        root,
        path,
        start,
        end,
    })
}

/// The references in a string, or the first error.
pub fn refs(text: &str) -> Result<Vec<Ref>, TemplateError> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literals_and_refs() {
        let parts = parse("id=${captures.id}&x=$${y}$").expect("valid");
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], Part::Literal("id=".into()));
        let Part::Ref(r) = &parts[1] else {
            panic!("expected a reference")
        };
        assert_eq!(r.dotted(), "captures.id");
        assert_eq!((r.start, r.end), (3, 17));
        assert_eq!(parts[2], Part::Literal("&x=${y}$".into()));
    }

    #[test]
    fn rejects_unclosed_empty_and_odd_characters() {
        assert!(
            parse("${vars.a")
                .expect_err("unclosed")
                .message
                .contains("never closed")
        );
        assert!(parse("${ }").expect_err("empty").message.contains("empty"));
        assert!(
            parse("${vars.a b}")
                .expect_err("space")
                .message
                .contains("contains")
        );
        assert!(
            parse("${vars..a}")
                .expect_err("segment")
                .message
                .contains("empty path")
        );
    }

    #[test]
    fn a_lone_dollar_is_text() {
        assert_eq!(
            parse("costs $5").expect("valid"),
            vec![Part::Literal("costs $5".into())]
        );
    }
}

/// A string field whose `${…}` references are filled in when the step runs: its text,
/// already split into parts (so it is parsed once, when the file is), and where it is in
/// the file, so an error found while rendering it, or in what it rendered to, points at
/// the field rather than at the whole step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub text: String,
    pub parts: Vec<Part>,
    pub span: Span,
}

impl Template {
    /// A template of `text`, found at `span`.
    pub fn new(text: String, span: Span) -> Result<Self, TemplateError> {
        Ok(Template {
            parts: parse(&text)?,
            text,
            span,
        })
    }

    /// Whether it has no references: its text is its value.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }
}

impl std::ops::Deref for Template {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl schemars::JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Text in which `${…}` references are filled in when the step runs.",
            "type": "string"
        })
    }
}
