//! From a [`Node`] tree to the typed [`Scenario`], collecting every problem on the way.
//!
//! Each decoder returns `None` when its node is unusable and records why; callers decode
//! all their fields before giving up, so one pass reports everything that is wrong.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    Keys,
    diag::{Problem, Span},
    model::*,
    suggest::did_you_mean,
    template::{self, CodeRef, Sink},
    yaml::{Node, NodeValue},
};

/// Longest string a scenario may hold.
pub const MAX_STRING: usize = 64 * 1024;

/// Where a reference was written, for scope checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Var(String),
    Fixture,
    Mock,
    /// The process at this position of `processes`.
    Process(usize),
    /// `defaults:`, filled in when a step uses them.
    Defaults,
    Step {
        phase: Phase,
        index: usize,
    },
}

/// The three lists of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    SteadyState,
    Steps,
    Rollbacks,
}

impl Phase {
    pub fn key(self) -> &'static str {
        match self {
            Phase::SteadyState => "steady_state",
            Phase::Steps => "steps",
            Phase::Rollbacks => "rollbacks",
        }
    }
}

/// A `${…}` reference found while decoding.
#[derive(Clone, Debug)]
pub struct UsedRef {
    pub r: template::Ref,
    pub span: Span,
    pub scope: Scope,
}

pub struct Cx<'t> {
    pub text: &'t str,
    pub problems: Vec<Problem>,
    pub refs: Vec<UsedRef>,
    /// The span of each decoded fixture, in order.
    pub fixture_spans: Vec<Span>,
    pub scope: Scope,
    /// The code the strings being decoded are part of, if any.
    sink: Option<Sink>,
    /// References found in code, for the lint pass.
    pub code_refs: Vec<CodeRef>,
    /// The scenario's `stack`, once decoded (for `env_from`).
    pub stack: Vec<Service>,
}

impl<'t> Cx<'t> {
    pub fn new(text: &'t str) -> Self {
        Cx {
            text,
            problems: Vec::new(),
            refs: Vec::new(),
            fixture_spans: Vec::new(),
            scope: Scope::Fixture,
            sink: None,
            code_refs: Vec::new(),
            stack: Vec::new(),
        }
    }

    pub fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    pub(crate) fn expected(&mut self, node: &Node, what: &str) {
        self.problems.push(
            Problem::new(node.span, format!("expected {what}, found {}", node.kind()))
                .label(format!("expected {what}")),
        );
    }

    /// Span of `needle` inside the source text of `node`, or the node's span.
    pub(crate) fn span_within(&self, node: &Node, needle: &str) -> Span {
        self.find_within(node, needle, 0).unwrap_or(node.span)
    }

    /// Span of `needle` inside the source text of `node`, searching from its byte `from`.
    pub(crate) fn find_within(&self, node: &Node, needle: &str, from: usize) -> Option<Span> {
        let raw = self
            .text
            .get(node.span.offset..node.span.offset + node.span.len)?;
        let i = from + raw.get(from..)?.find(needle)?;
        (!needle.is_empty()).then(|| Span::new(node.span.offset + i, needle.len()))
    }

    /// Decodes with the strings inside marked as part of `sink`.
    pub(crate) fn in_sink<T>(&mut self, sink: Sink, decode: impl FnOnce(&mut Self) -> T) -> T {
        let outer = self.sink.replace(sink);
        let out = decode(self);
        self.sink = outer;
        out
    }

    /// Records the references of a string and reports template errors.
    pub(crate) fn scan(&mut self, node: &Node, text: &str) {
        match template::refs(text) {
            Ok(refs) => {
                // Each reference is looked for after the previous one, so that a repeated
                // reference points at each of its uses.
                let mut from = 0;
                for r in refs {
                    let needle = &text[r.start..r.end];
                    let span = match self
                        .find_within(node, needle, from)
                        .or_else(|| self.find_within(node, needle, 0))
                    {
                        Some(span) => {
                            from = span.offset - node.span.offset + span.len;
                            span
                        }
                        None => node.span,
                    };
                    if let Some(sink) = self.sink {
                        self.code_refs.push(CodeRef {
                            r: r.clone(),
                            span,
                            sink,
                        });
                    }
                    self.refs.push(UsedRef {
                        r,
                        span,
                        scope: self.scope.clone(),
                    });
                }
            }
            Err(e) => {
                let end = (e.at + e.len).min(text.len());
                let span = self.span_within(node, &text[e.at..end]);
                self.push(Problem::new(span, format!("bad template: {}", e.message)));
            }
        }
    }
}

/// The entries of a map node, with unknown keys already reported.
pub struct Fields<'n> {
    pub(crate) entries: &'n [(Node, Node)],
    /// Where to point when a key is missing: the first key, or the empty map.
    pub(crate) head: Span,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    pub(crate) fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span)
    }
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'n Node> {
        self.entries.iter().map(|(k, _)| k)
    }
}

/// Opens a map, reporting keys outside `known` with the nearest valid key.
pub fn fields<'n>(cx: &mut Cx, node: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
    fields_where(cx, node, what, known, |_| false)
}

/// [`fields`], with keys for which `also` holds accepted too (open sets such as `x-` kinds).
pub fn fields_where<'n>(
    cx: &mut Cx,
    node: &'n Node,
    what: &str,
    known: &[&str],
    also: impl Fn(&Node) -> bool,
) -> Option<Fields<'n>> {
    let NodeValue::Map(entries) = &node.value else {
        cx.expected(node, &format!("{what} (a map)"));
        return None;
    };
    for (k, _) in entries {
        let name = k.key_text();
        if !known.contains(&name.as_str()) && !also(k) {
            let mut p = Problem::new(k.span, format!("unknown key `{name}` in {what}"))
                .label("unknown key");
            p = match did_you_mean(&name, known.iter().copied()) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(format!("valid keys: {}", backticked(known))),
            };
            cx.push(p);
        }
    }
    let head = entries.first().map_or(node.span, |(k, _)| k.span);
    Some(Fields { entries, head })
}

pub fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn req<'n, T>(
    cx: &mut Cx,
    f: &Fields<'n>,
    key: &str,
    what: &str,
    decode: impl FnOnce(&mut Cx, &'n Node) -> Option<T>,
) -> Option<T> {
    match f.get(key) {
        Some(n) => decode(cx, n),
        None => {
            cx.push(
                Problem::new(f.head, format!("{what} is missing `{key}`"))
                    .label(format!("`{key}` is required here")),
            );
            None
        }
    }
}

pub(crate) fn opt<'n, T>(
    cx: &mut Cx,
    f: &Fields<'n>,
    key: &str,
    decode: impl FnOnce(&mut Cx, &'n Node) -> Option<T>,
) -> Option<T> {
    f.get(key).and_then(|n| decode(cx, n))
}

pub(crate) fn string(cx: &mut Cx, node: &Node) -> Option<String> {
    let text = match &node.value {
        NodeValue::Str(s) => s.clone(),
        // Numbers and booleans are fine where text is expected (`port: 5432`).
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) => f.to_string(),
        NodeValue::Bool(b) => b.to_string(),
        _ => {
            cx.expected(node, "a string");
            return None;
        }
    };
    if text.len() > MAX_STRING {
        too_long(cx, node, text.len());
        return None;
    }
    cx.scan(node, &text);
    Some(text)
}

/// A string whose references are filled in when the step runs, parsed once here.
pub(crate) fn template(cx: &mut Cx, node: &Node) -> Option<template::Template> {
    let text = string(cx, node)?;
    // A bad template was reported by `string` already.
    template::Template::new(text, node.span).ok()
}

pub(crate) fn template_map(
    cx: &mut Cx,
    node: &Node,
    what: &str,
) -> Option<BTreeMap<String, template::Template>> {
    map(cx, node, what, |cx, _, v| template(cx, v))
}

pub(crate) fn too_long(cx: &mut Cx, node: &Node, len: usize) {
    cx.push(
        Problem::new(
            node.span,
            format!("string is {len} bytes; the limit is {MAX_STRING}"),
        )
        .help("put large data in a fixture file"),
    );
}

/// A string that may not contain references (names, keys).
pub(crate) fn name(cx: &mut Cx, node: &Node) -> Option<String> {
    let Some(s) = node.as_str() else {
        cx.expected(node, "a name");
        return None;
    };
    if s.is_empty() || s.len() > 200 {
        cx.error(node.span, "a name must be 1 to 200 characters");
        return None;
    }
    if s.contains("${") {
        cx.error(node.span, "names cannot contain `${…}` references");
        return None;
    }
    Some(s.to_owned())
}

pub(crate) fn boolean(cx: &mut Cx, node: &Node) -> Option<bool> {
    match node.value {
        NodeValue::Bool(b) => Some(b),
        _ => {
            cx.expected(node, "true or false");
            None
        }
    }
}

pub(crate) fn uint(cx: &mut Cx, node: &Node) -> Option<u64> {
    match node.value {
        NodeValue::Int(i) if i >= 0 => Some(i as u64),
        NodeValue::Int(i) => {
            cx.error(node.span, format!("expected a whole number ≥ 0, found {i}"));
            None
        }
        _ => {
            cx.expected(node, "a whole number ≥ 0");
            None
        }
    }
}

pub(crate) fn number(cx: &mut Cx, node: &Node) -> Option<f64> {
    match node.value {
        NodeValue::Int(i) => Some(i as f64),
        NodeValue::Float(f) if f.is_finite() => Some(f),
        NodeValue::Float(_) => {
            cx.error(node.span, "expected a finite number, found infinity or NaN");
            None
        }
        _ => {
            cx.expected(node, "a number");
            None
        }
    }
}

/// Any value; strings inside it are scanned for references.
pub(crate) fn value(cx: &mut Cx, node: &Node) -> Option<Value> {
    fn walk(cx: &mut Cx, node: &Node) -> bool {
        match &node.value {
            NodeValue::Str(s) => {
                if s.len() > MAX_STRING {
                    too_long(cx, node, s.len());
                    return false;
                }
                cx.scan(node, s);
                true
            }
            // Every item is walked (no short-circuit) so all problems are reported.
            NodeValue::Seq(items) => items.iter().map(|n| walk(cx, n)).fold(true, |a, b| a & b),
            NodeValue::Map(entries) => entries
                .iter()
                .map(|(_, v)| walk(cx, v))
                .fold(true, |a, b| a & b),
            NodeValue::Float(f) if !f.is_finite() => {
                cx.error(
                    node.span,
                    "infinite and NaN numbers cannot be used as values",
                );
                false
            }
            _ => true,
        }
    }
    walk(cx, node).then(|| node.to_json())
}

pub(crate) fn list<'n, T>(
    cx: &mut Cx,
    node: &'n Node,
    what: &str,
    mut item: impl FnMut(&mut Cx, usize, &'n Node) -> Option<T>,
) -> Option<Vec<T>> {
    let NodeValue::Seq(items) = &node.value else {
        cx.expected(node, &format!("{what} (a list)"));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, n) in items.iter().enumerate() {
        match item(cx, i, n) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn map<'n, T>(
    cx: &mut Cx,
    node: &'n Node,
    what: &str,
    mut item: impl FnMut(&mut Cx, &'n Node, &'n Node) -> Option<T>,
) -> Option<BTreeMap<String, T>> {
    let NodeValue::Map(entries) = &node.value else {
        cx.expected(node, &format!("{what} (a map)"));
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let Some(key) = k.as_str().map(str::to_owned).or_else(|| match k.value {
            NodeValue::Int(_) | NodeValue::Bool(_) | NodeValue::Float(_) => Some(k.key_text()),
            _ => None,
        }) else {
            cx.expected(k, "a text key");
            ok = false;
            continue;
        };
        match item(cx, k, v) {
            Some(val) => {
                out.insert(key, val);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn string_map(cx: &mut Cx, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
    map(cx, node, what, |cx, _, v| string(cx, v))
}

pub(crate) fn duration(cx: &mut Cx, node: &Node) -> Option<Dur> {
    let parsed = node.as_str().and_then(Dur::parse);
    if parsed.is_none() {
        let help = match node.value {
            NodeValue::Int(n) => format!("add a unit, such as `{n}s`"),
            _ => "write a number followed by ms, s, m or h".into(),
        };
        cx.push(
            Problem::new(
                node.span,
                "expected a duration such as `250ms`, `5s` or `2m`",
            )
            .label("not a duration")
            .help(help),
        );
    }
    parsed
}

pub(crate) fn json_path(cx: &mut Cx, node: &Node, text: &str) -> bool {
    match serde_json_path::JsonPath::parse(text) {
        Ok(_) => true,
        Err(e) => {
            cx.push(
                Problem::new(node.span, format!("`{text}` is not a JSONPath: {e}"))
                    .help("JSONPaths start at `$`, like `$.items[0].id`"),
            );
            false
        }
    }
}

pub(crate) fn path_matchers(cx: &mut Cx, node: &Node) -> Option<BTreeMap<String, Matcher>> {
    let NodeValue::Map(entries) = &node.value else {
        cx.expected(node, "a map of JSONPath to matcher");
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let key = k.key_text();
        ok &= json_path(cx, k, &key);
        match matcher(cx, v) {
            Some(m) => {
                out.insert(key, m);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub fn matcher(cx: &mut Cx, node: &Node) -> Option<Matcher> {
    let span = node.span;
    if let NodeValue::Map(entries) = &node.value
        && let [(k, v)] = entries.as_slice()
    {
        let key = k.key_text();
        let op = match key.as_str() {
            "eq" => value(cx, v).map(MatchOp::Eq),
            "ne" => value(cx, v).map(MatchOp::Ne),
            "contains" => value(cx, v).map(MatchOp::Contains),
            "excludes" => value(cx, v).map(MatchOp::Excludes),
            "matches" => string(cx, v).and_then(|re| match regex::Regex::new(&re) {
                Ok(_) => Some(MatchOp::Matches(re)),
                Err(e) => {
                    cx.push(Problem::new(
                        v.span,
                        format!("invalid regular expression: {}", first_line(&e.to_string())),
                    ));
                    None
                }
            }),
            "gt" => number(cx, v).map(MatchOp::Gt),
            "ge" => number(cx, v).map(MatchOp::Ge),
            "lt" => number(cx, v).map(MatchOp::Lt),
            "le" => number(cx, v).map(MatchOp::Le),
            "exists" => boolean(cx, v).map(MatchOp::Exists),
            "len" => uint(cx, v).map(MatchOp::Len),
            "one_of" => list(cx, v, "`one_of`", |cx, _, n| value(cx, n)).map(MatchOp::OneOf),
            other => {
                if let Some(s) = did_you_mean(other, MatchOp::KEYS.iter().copied()) {
                    cx.push(
                        Problem::new(k.span, format!("unknown matcher `{other}`")).help(format!(
                            "did you mean `{s}`? To compare with a map literally, write `eq: {{…}}`"
                        )),
                    );
                    return None;
                }
                value(cx, node).map(MatchOp::Eq)
            }
        };
        return op.map(|op| Matcher { op, span });
    }
    value(cx, node).map(|v| Matcher {
        op: MatchOp::Eq(v),
        span,
    })
}

fn first_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
}

pub(crate) fn captures(
    cx: &mut Cx,
    node: &Node,
    allow_header: bool,
) -> Option<BTreeMap<String, Capture>> {
    map(cx, node, "`capture`", |cx, k, v| {
        let name = k.key_text();
        if !valid_ident(&name) {
            cx.error(
                k.span,
                format!("capture name `{name}` must be 1 to 100 letters, digits, `_` or `-`"),
            );
            return None;
        }
        let span = v.span;
        match &v.value {
            NodeValue::Str(path) => json_path(cx, v, path).then(|| Capture {
                from: CaptureFrom::Path(path.clone()),
                secret: false,
                span,
            }),
            NodeValue::Map(_) => {
                let known: Vec<&str> = DetailedCapture::KEYS
                    .iter()
                    .copied()
                    .filter(|k| allow_header || *k != "header")
                    .collect();
                let f = fields(cx, v, "a capture", &known)?;
                let secret = opt(cx, &f, "secret", boolean).unwrap_or(false);
                let from = match (f.get("path"), f.get("header")) {
                    (Some(p), None) => {
                        let path = string(cx, p)?;
                        json_path(cx, p, &path).then_some(CaptureFrom::Path(path))?
                    }
                    (None, Some(h)) => CaptureFrom::Header(string(cx, h)?.to_ascii_lowercase()),
                    _ => {
                        cx.error(span, "a capture has exactly one of `path` and `header`");
                        return None;
                    }
                };
                Some(Capture { from, secret, span })
            }
            _ => {
                cx.expected(v, "a JSONPath or a map");
                None
            }
        }
    })
}

/// A Cargo package name (`cargo:` in processes and `exec`).
pub(crate) fn cargo_package(cx: &mut Cx, n: &Node) -> Option<String> {
    let s = name(cx, n)?;
    if valid_ident(&s) {
        Some(s)
    } else {
        cx.error(
            n.span,
            "a cargo package name must be letters, digits, `_` or `-`",
        );
        None
    }
}

pub fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A string in which `${…}` is not expanded (names, fixture paths).
pub(crate) fn literal(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
    let has_ref = node.as_str().is_some_and(|s| s.contains("${"));
    if has_ref {
        cx.push(
            Problem::new(node.span, format!("references are not expanded in {what}"))
                .label("written as is")
                .help("write the value itself here"),
        );
        return None;
    }
    string(cx, node)
}

/// A fixture path: literal, relative, inside the scenario's folder.
pub(crate) fn fixture_path(cx: &mut Cx, node: &Node) -> Option<String> {
    literal(
        cx,
        node,
        "fixture paths (fixtures load before the scenario starts)",
    )?;
    file_path(cx, node)
}

pub(crate) fn file_path(cx: &mut Cx, node: &Node) -> Option<String> {
    let p = string(cx, node)?;
    if p.starts_with('/') || p.split(['/', '\\']).any(|c| c == "..") {
        cx.push(
            Problem::new(
                node.span,
                format!("fixture path `{p}` leaves the scenario's folder"),
            )
            .help("use a path relative to the scenario file, without `..`"),
        );
        return None;
    }
    Some(p)
}

pub(crate) fn command(cx: &mut Cx, n: &Node) -> Option<Command> {
    match &n.value {
        NodeValue::Seq(items) if items.is_empty() => {
            cx.error(n.span, "`command` needs at least the program name");
            None
        }
        NodeValue::Seq(items) => {
            let script = shell_script(items);
            list(cx, n, "`command`", |cx, i, n| {
                if Some(i) == script {
                    cx.in_sink(Sink::Shell, |cx| string(cx, n))
                } else {
                    string(cx, n)
                }
            })
            .map(Command::Argv)
        }
        NodeValue::Str(_) => cx
            .in_sink(Sink::Shell, |cx| string(cx, n))
            .map(Command::Shell),
        _ => {
            cx.expected(n, "a command line or a list of arguments");
            None
        }
    }
}

/// Programs that take a script with `-c`.
const SHELLS: [&str; 6] = ["sh", "bash", "dash", "zsh", "ksh", "ash"];

/// Where the script is in an argv that runs a shell, such as `[sh, -c, SCRIPT]` or
/// `[/bin/bash, -euc, SCRIPT]`: the item after the first short-option group holding `c`.
pub(crate) fn shell_script(argv: &[Node]) -> Option<usize> {
    let program = argv.first()?.as_str()?;
    if !SHELLS.contains(&program.rsplit('/').next().unwrap_or(program)) {
        return None;
    }
    let flag = argv.iter().skip(1).position(|a| {
        a.as_str().is_some_and(|a| {
            a.len() > 1
                && a.starts_with('-')
                && a[1..].chars().all(|c| c.is_ascii_alphabetic())
                && a.contains('c')
        })
    })?;
    Some(flag + 2)
}

pub(crate) fn status_code(cx: &mut Cx, node: &Node) -> Option<u16> {
    match node.value {
        NodeValue::Int(i) if (100..=599).contains(&i) => Some(i as u16),
        _ => {
            cx.error(node.span, "an HTTP status is a number from 100 to 599");
            None
        }
    }
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

pub(crate) fn http_method(cx: &mut Cx, node: &Node) -> Option<String> {
    let Some(m) = node.as_str().map(str::to_ascii_uppercase) else {
        cx.expected(node, "an HTTP method such as `GET`");
        return None;
    };
    if METHODS.contains(&m.as_str()) {
        Some(m)
    } else {
        let mut p = Problem::new(node.span, format!("unknown HTTP method `{m}`"));
        p = match did_you_mean(&m, METHODS) {
            Some(s) => p.help(format!("did you mean `{s}`?")),
            None => p.help(format!("methods: {}", backticked(&METHODS))),
        };
        cx.push(p);
        None
    }
}

mod env;
mod scenario;
pub(crate) mod steps;

pub(crate) use self::env::{env_from, env_with_from, service_node};
pub use self::scenario::{SUPABASE_CALLERS, scenario};
