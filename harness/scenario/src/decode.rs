//! From a [`Node`] tree to the typed [`Scenario`], collecting every problem on the way.
//!
//! Each decoder returns `None` when its node is unusable and records why; callers decode
//! all their fields before giving up, so one pass reports everything that is wrong.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    diag::{Problem, Span},
    model::*,
    suggest::did_you_mean,
    template,
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
}

impl<'t> Cx<'t> {
    pub fn new(text: &'t str) -> Self {
        Cx {
            text,
            problems: Vec::new(),
            refs: Vec::new(),
            fixture_spans: Vec::new(),
            scope: Scope::Fixture,
        }
    }

    pub fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    fn expected(&mut self, node: &Node, what: &str) {
        self.problems.push(
            Problem::new(node.span, format!("expected {what}, found {}", node.kind()))
                .label(format!("expected {what}")),
        );
    }

    /// Span of `needle` inside the source text of `node`, or the node's span.
    fn span_within(&self, node: &Node, needle: &str) -> Span {
        let raw = self
            .text
            .get(node.span.offset..node.span.offset + node.span.len)
            .unwrap_or_default();
        match raw.find(needle) {
            Some(i) if !needle.is_empty() => Span::new(node.span.offset + i, needle.len()),
            _ => node.span,
        }
    }

    /// Records the references of a string and reports template errors.
    fn scan(&mut self, node: &Node, text: &str) {
        match template::refs(text) {
            Ok(refs) => {
                for r in refs {
                    let span = self.span_within(node, &text[r.start..r.end]);
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
    entries: &'n [(Node, Node)],
    /// Where to point when a key is missing: the first key, or the empty map.
    head: Span,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span)
    }
    fn keys(&self) -> impl Iterator<Item = &'n Node> {
        self.entries.iter().map(|(k, _)| k)
    }
}

/// Opens a map, reporting keys outside `known` with the nearest valid key.
pub fn fields<'n>(cx: &mut Cx, node: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
    let NodeValue::Map(entries) = &node.value else {
        cx.expected(node, &format!("{what} (a map)"));
        return None;
    };
    for (k, _) in entries {
        let name = k.key_text();
        if !known.contains(&name.as_str()) {
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

fn req<'n, T>(
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

fn opt<'n, T>(
    cx: &mut Cx,
    f: &Fields<'n>,
    key: &str,
    decode: impl FnOnce(&mut Cx, &'n Node) -> Option<T>,
) -> Option<T> {
    f.get(key).and_then(|n| decode(cx, n))
}

fn string(cx: &mut Cx, node: &Node) -> Option<String> {
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

fn too_long(cx: &mut Cx, node: &Node, len: usize) {
    cx.push(
        Problem::new(
            node.span,
            format!("string is {len} bytes; the limit is {MAX_STRING}"),
        )
        .help("put large data in a fixture file"),
    );
}

/// A string that may not contain references (names, keys).
fn name(cx: &mut Cx, node: &Node) -> Option<String> {
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

fn boolean(cx: &mut Cx, node: &Node) -> Option<bool> {
    match node.value {
        NodeValue::Bool(b) => Some(b),
        _ => {
            cx.expected(node, "true or false");
            None
        }
    }
}

fn uint(cx: &mut Cx, node: &Node) -> Option<u64> {
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

fn number(cx: &mut Cx, node: &Node) -> Option<f64> {
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
fn value(cx: &mut Cx, node: &Node) -> Option<Value> {
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

fn list<'n, T>(
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

fn map<'n, T>(
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

fn string_map(cx: &mut Cx, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
    map(cx, node, what, |cx, _, v| string(cx, v))
}

fn duration(cx: &mut Cx, node: &Node) -> Option<Dur> {
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

fn json_path(cx: &mut Cx, node: &Node, text: &str) -> bool {
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

fn path_matchers(cx: &mut Cx, node: &Node) -> Option<BTreeMap<String, Matcher>> {
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
                if let Some(s) = did_you_mean(other, MatchOp::NAMES) {
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

fn captures(cx: &mut Cx, node: &Node, allow_header: bool) -> Option<BTreeMap<String, Capture>> {
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
                let known: &[&str] = if allow_header {
                    &["path", "header", "secret"]
                } else {
                    &["path", "secret"]
                };
                let f = fields(cx, v, "a capture", known)?;
                let secret = opt(cx, &f, "secret", boolean).unwrap_or(false);
                let from = match (f.get("path"), f.get("header")) {
                    (Some(p), None) => {
                        let path = name_or_string(cx, p)?;
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

fn name_or_string(cx: &mut Cx, node: &Node) -> Option<String> {
    string(cx, node)
}

pub fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

const SCENARIO_KEYS: [&str; 12] = [
    "name",
    "description",
    "tags",
    "stack",
    "timeout",
    "vars",
    "fixtures",
    "mocks",
    "processes",
    "steady_state",
    "steps",
    "rollbacks",
];

pub fn scenario(cx: &mut Cx, root: &Node) -> Option<Scenario> {
    let f = fields(cx, root, "a scenario", &SCENARIO_KEYS)?;
    let scenario_name = req(cx, &f, "name", "the scenario", string);
    let description = opt(cx, &f, "description", string);
    let tags = opt(cx, &f, "tags", |cx, n| {
        list(cx, n, "`tags`", |cx, _, n| name(cx, n))
    })
    .unwrap_or_default();
    let stack = opt(cx, &f, "stack", |cx, n| {
        list(cx, n, "`stack`", |cx, _, n| service(cx, n))
    });
    let timeout = opt(cx, &f, "timeout", duration);
    let vars = opt(cx, &f, "vars", |cx, n| {
        map(cx, n, "`vars`", |cx, k, v| {
            let key = k.key_text();
            if !valid_ident(&key) {
                cx.error(
                    k.span,
                    format!("var name `{key}` must be 1 to 100 letters, digits, `_` or `-`"),
                );
                return None;
            }
            cx.scope = Scope::Var(key);
            var(cx, v)
        })
    });
    cx.scope = Scope::Fixture;
    let fixtures = opt(cx, &f, "fixtures", |cx, n| {
        list(cx, n, "`fixtures`", |cx, _, n| {
            let f = fixture(cx, n)?;
            cx.fixture_spans.push(n.span);
            Some(f)
        })
    });
    cx.scope = Scope::Mock;
    let mocks = opt(cx, &f, "mocks", |cx, n| {
        list(cx, n, "`mocks`", |cx, _, n| mock(cx, n))
    });
    let processes = opt(cx, &f, "processes", |cx, n| {
        list(cx, n, "`processes`", |cx, i, n| {
            cx.scope = Scope::Process(i);
            process(cx, n)
        })
    });
    let steady_state = opt(cx, &f, "steady_state", |cx, n| {
        steps(cx, n, Phase::SteadyState)
    });
    let steps_span = f.key_span("steps").unwrap_or(f.head);
    let body = req(cx, &f, "steps", "the scenario", |cx, n| {
        steps(cx, n, Phase::Steps)
    });
    if let Some(s) = &body
        && s.is_empty()
    {
        cx.error(
            steps_span,
            "`steps` is empty; a scenario needs at least one step",
        );
    }
    let rollbacks = opt(cx, &f, "rollbacks", |cx, n| steps(cx, n, Phase::Rollbacks));

    let _ = f.keys();
    Some(Scenario {
        name: scenario_name?,
        description,
        tags,
        stack: stack.unwrap_or_default(),
        timeout,
        vars: vars.unwrap_or_default(),
        fixtures: fixtures.unwrap_or_default(),
        mocks: mocks.unwrap_or_default(),
        processes: processes.unwrap_or_default(),
        steady_state: steady_state.unwrap_or_default(),
        steps: body?,
        rollbacks: rollbacks.unwrap_or_default(),
        span: steps_span,
    })
}

fn service(cx: &mut Cx, node: &Node) -> Option<Service> {
    let names = Service::ALL.map(Service::name);
    let Some(text) = node.as_str() else {
        cx.push(
            Problem::new(
                node.span,
                format!("expected a service name, found {}", node.kind()),
            )
            .label("not a service")
            .help(format!("services: {}", backticked(&names))),
        );
        return None;
    };
    match Service::ALL.into_iter().find(|s| s.name() == text) {
        Some(s) => Some(s),
        None => {
            let mut p =
                Problem::new(node.span, format!("unknown service `{text}`")).label("not a service");
            p = match did_you_mean(text, names) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(format!("services: {}", backticked(&names))),
            };
            cx.push(p);
            None
        }
    }
}

fn var(cx: &mut Cx, node: &Node) -> Option<Var> {
    if let NodeValue::Map(entries) = &node.value {
        // `{ value, secret }`; with both keys present, any other key is a typo, not data.
        let has = |key: &str| entries.iter().any(|(k, _)| k.as_str() == Some(key));
        let detailed = has("secret")
            && (has("value")
                || entries
                    .iter()
                    .all(|(k, _)| matches!(k.as_str(), Some("value" | "secret"))));
        if detailed {
            let f = fields(cx, node, "a var", &["value", "secret"])?;
            let secret = req(cx, &f, "secret", "a var", boolean);
            let value = req(cx, &f, "value", "a secret var", value);
            return Some(Var {
                value: value?,
                secret: secret?,
                span: node.span,
            });
        }
    }
    value(cx, node).map(|value| Var {
        value,
        secret: false,
        span: node.span,
    })
}

fn fixture(cx: &mut Cx, node: &Node) -> Option<Fixture> {
    let f = fields(cx, node, "a fixture", &["sql", "cypher", "s3"])?;
    let present: Vec<&str> = ["sql", "cypher", "s3"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    let unknown = f
        .keys()
        .any(|k| !matches!(k.as_str(), Some("sql" | "cypher" | "s3")));
    if present.is_empty() && unknown {
        // The unknown key was reported with a suggestion already.
        return None;
    }
    if present.len() != 1 {
        cx.error(
            node.span,
            "a fixture has exactly one of `sql`, `cypher` and `s3`",
        );
        return None;
    }
    match present[0] {
        "sql" => opt(cx, &f, "sql", fixture_path).map(Fixture::Sql),
        "cypher" => opt(cx, &f, "cypher", fixture_path).map(Fixture::Cypher),
        _ => opt(cx, &f, "s3", |cx, n| {
            let g = fields(cx, n, "an s3 fixture", &["key", "file", "body"])?;
            let key = req(cx, &g, "key", "an s3 fixture", |cx, n| {
                literal(
                    cx,
                    n,
                    "fixture keys (fixtures load before the scenario starts)",
                )
            });
            let file = opt(cx, &g, "file", fixture_path);
            let body = opt(cx, &g, "body", |cx, n| {
                literal(
                    cx,
                    n,
                    "fixture bodies (fixtures load before the scenario starts)",
                )
            });
            // Presence, not decoded values: a bad `file` is reported on its own.
            if g.get("file").is_some() == g.get("body").is_some() {
                cx.error(n.span, "an s3 fixture has exactly one of `file` and `body`");
                return None;
            }
            Some(Fixture::S3(S3Fixture {
                key: key?,
                file,
                body,
            }))
        }),
    }
}

/// A string in which `${…}` is not expanded (names, fixture paths).
fn literal(cx: &mut Cx, node: &Node, what: &str) -> Option<String> {
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
fn fixture_path(cx: &mut Cx, node: &Node) -> Option<String> {
    literal(
        cx,
        node,
        "fixture paths (fixtures load before the scenario starts)",
    )?;
    file_path(cx, node)
}

fn file_path(cx: &mut Cx, node: &Node) -> Option<String> {
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

fn mock(cx: &mut Cx, node: &Node) -> Option<Mock> {
    let f = fields(
        cx,
        node,
        "a mock",
        &["name", "request", "response", "expect_calls"],
    )?;
    let mock_name = req(cx, &f, "name", "a mock", |cx, n| {
        let s = name(cx, n)?;
        if valid_ident(&s) {
            Some(s)
        } else {
            cx.error(n.span, "a mock name must be letters, digits, `_` or `-`");
            None
        }
    });
    let request = req(cx, &f, "request", "a mock", |cx, n| {
        let g = fields(
            cx,
            n,
            "a mock request",
            &["method", "path", "headers", "query", "json"],
        )?;
        let method = opt(cx, &g, "method", http_method);
        let path = req(cx, &g, "path", "a mock request", string);
        if let (Some(p), Some(pn)) = (&path, g.get("path"))
            && !p.starts_with('/')
        {
            cx.error(pn.span, "a mock path starts with `/`");
        }
        let headers = opt(cx, &g, "headers", |cx, n| string_map(cx, n, "`headers`"));
        let query = opt(cx, &g, "query", |cx, n| string_map(cx, n, "`query`"));
        let json = opt(cx, &g, "json", value);
        Some(MockRequest {
            method,
            path: path?,
            headers: headers.unwrap_or_default(),
            query: query.unwrap_or_default(),
            json,
        })
    });
    let response = opt(cx, &f, "response", |cx, n| {
        let g = fields(
            cx,
            n,
            "a mock response",
            &["status", "headers", "body", "json", "delay"],
        )?;
        let status = opt(cx, &g, "status", status_code).unwrap_or(200);
        let headers = opt(cx, &g, "headers", |cx, n| string_map(cx, n, "`headers`"));
        let body = opt(cx, &g, "body", string);
        let json = opt(cx, &g, "json", value);
        if body.is_some() && json.is_some() {
            cx.error(n.span, "a mock response has `body` or `json`, not both");
        }
        let delay = opt(cx, &g, "delay", duration);
        Some(MockResponse {
            status,
            headers: headers.unwrap_or_default(),
            body,
            json,
            delay,
        })
    });
    let expect_calls = opt(cx, &f, "expect_calls", uint);
    Some(Mock {
        name: mock_name?,
        request: request?,
        response: response.unwrap_or_default(),
        expect_calls,
        span: node.span,
    })
}

fn process(cx: &mut Cx, node: &Node) -> Option<Process> {
    let f = fields(
        cx,
        node,
        "a process",
        &[
            "name", "cargo", "command", "args", "env", "ready", "timeout",
        ],
    )?;
    let process_name = req(cx, &f, "name", "a process", |cx, n| {
        let s = name(cx, n)?;
        if valid_ident(&s) {
            Some(s)
        } else {
            cx.error(n.span, "a process name must be letters, digits, `_` or `-`");
            None
        }
    });
    let cargo = opt(cx, &f, "cargo", |cx, n| {
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
    });
    let command = opt(cx, &f, "command", command);
    if f.get("cargo").is_some() == f.get("command").is_some() {
        cx.push(
            Problem::new(
                node.span,
                "a process has exactly one of `cargo` and `command`",
            )
            .help(
                "`cargo: PACKAGE` builds and runs a workspace binary; `command` runs any program",
            ),
        );
    }
    let args = opt(cx, &f, "args", |cx, n| {
        list(cx, n, "`args`", |cx, _, n| string(cx, n))
    });
    let env = opt(cx, &f, "env", |cx, n| string_map(cx, n, "`env`"));
    let ready = opt(cx, &f, "ready", |cx, n| {
        let g = fields(cx, n, "`ready`", &["http", "log", "tcp"])?;
        let present: Vec<&str> = ["http", "log", "tcp"]
            .into_iter()
            .filter(|k| g.get(k).is_some())
            .collect();
        if present.len() != 1 {
            cx.error(n.span, "`ready` has exactly one of `http`, `log` and `tcp`");
            return None;
        }
        match present[0] {
            "http" => opt(cx, &g, "http", |cx, n| {
                let p = string(cx, n)?;
                if p.starts_with('/') {
                    Some(Ready::Http(p))
                } else {
                    cx.error(
                        n.span,
                        "`ready.http` is a path starting with `/`, such as `/healthz`",
                    );
                    None
                }
            }),
            "log" => opt(cx, &g, "log", string).map(Ready::Log),
            _ => opt(cx, &g, "tcp", boolean).map(Ready::Tcp),
        }
    });
    let timeout = opt(cx, &f, "timeout", duration);
    Some(Process {
        name: process_name?,
        cargo,
        command: if f.get("cargo").is_some() == f.get("command").is_some() {
            return None;
        } else {
            command
        },
        args: args.unwrap_or_default(),
        env: env.unwrap_or_default(),
        ready,
        timeout,
        span: node.span,
    })
}

fn command(cx: &mut Cx, n: &Node) -> Option<Command> {
    match &n.value {
        NodeValue::Seq(items) if items.is_empty() => {
            cx.error(n.span, "`command` needs at least the program name");
            None
        }
        NodeValue::Seq(_) => list(cx, n, "`command`", |cx, _, n| string(cx, n)).map(Command::Argv),
        NodeValue::Str(_) => string(cx, n).map(Command::Shell),
        _ => {
            cx.expected(n, "a command line or a list of arguments");
            None
        }
    }
}

fn status_code(cx: &mut Cx, node: &Node) -> Option<u16> {
    match node.value {
        NodeValue::Int(i) if (100..=599).contains(&i) => Some(i as u16),
        _ => {
            cx.error(node.span, "an HTTP status is a number from 100 to 599");
            None
        }
    }
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn http_method(cx: &mut Cx, node: &Node) -> Option<String> {
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

fn steps(cx: &mut Cx, node: &Node, phase: Phase) -> Option<Vec<Step>> {
    list(cx, node, &format!("`{}`", phase.key()), |cx, index, n| {
        cx.scope = Scope::Step { phase, index };
        step(cx, n)
    })
}

const STEP_COMMON: [&str; 2] = ["name", "timeout"];

pub fn step(cx: &mut Cx, node: &Node) -> Option<Step> {
    let known: Vec<&str> = STEP_COMMON
        .iter()
        .chain(STEP_KINDS.iter())
        .copied()
        .collect();
    let f = fields(cx, node, "a step", &known)?;
    let step_name = opt(cx, &f, "name", |cx, n| literal(cx, n, "step names"));
    let timeout = opt(cx, &f, "timeout", duration);
    let kinds: Vec<(&Node, &Node)> = f
        .entries
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|k| STEP_KINDS.contains(&k)))
        .map(|(k, v)| (k, v))
        .collect();
    let (kind_key, body) = match kinds.as_slice() {
        [] => {
            // An unknown key was already reported with a suggestion; say nothing more then.
            let unknown = f.keys().any(|k| !known.contains(&k.key_text().as_str()));
            if !unknown {
                cx.push(
                    Problem::new(f.head, "step has no kind")
                        .help(format!("add one of {}", backticked(&STEP_KINDS))),
                );
            }
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            cx.push(
                Problem::new(
                    second.0.span,
                    format!(
                        "a step has exactly one kind; this one has `{}` and `{}`",
                        first.0.key_text(),
                        second.0.key_text()
                    ),
                )
                .also(first.0.span, "first kind")
                .help("split it into two steps"),
            );
            return None;
        }
    };
    let action = match kind_key.as_str().unwrap_or_default() {
        "http" => http(cx, body).map(Action::Http),
        "sql" => sql(cx, body).map(Action::Sql),
        "s3" => s3(cx, body).map(Action::S3),
        "cypher" => cypher(cx, body).map(Action::Cypher),
        "eventually" => eventually(cx, body).map(|e| Action::Eventually(Box::new(e))),
        "exec" => exec(cx, body).map(Action::Exec),
        "snapshot" => snapshot(cx, body).map(Action::Snapshot),
        "telemetry" => telemetry(cx, body).map(Action::Telemetry),
        other => value(cx, body).map(|args| {
            Action::Extension(Extension {
                kind: other.to_owned(),
                args,
                span: body.span,
            })
        }),
    };
    Some(Step {
        name: step_name,
        timeout,
        action: action?,
        span: node.span,
    })
}

fn http(cx: &mut Cx, node: &Node) -> Option<Http> {
    let f = fields(
        cx,
        node,
        "an `http` step",
        &[
            "method", "url", "headers", "query", "body", "json", "expect", "capture",
        ],
    )?;
    let method = opt(cx, &f, "method", http_method);
    let url = req(cx, &f, "url", "an `http` step", string);
    let headers = opt(cx, &f, "headers", |cx, n| string_map(cx, n, "`headers`"));
    let query = opt(cx, &f, "query", |cx, n| string_map(cx, n, "`query`"));
    let body = opt(cx, &f, "body", string);
    let json = opt(cx, &f, "json", value);
    if body.is_some() && json.is_some() {
        cx.error(node.span, "an `http` step has `body` or `json`, not both");
    }
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `http` step",
            &["status", "headers", "json", "body"],
        )?;
        let status = opt(cx, &g, "status", |cx, n| {
            let m = matcher(cx, n)?;
            let code = match &m.op {
                MatchOp::Eq(Value::Number(code)) => code.as_f64(),
                _ => None,
            };
            match code {
                Some(c) if !(100.0..=599.0).contains(&c) => {
                    cx.error(n.span, "an HTTP status is a number from 100 to 599");
                    None
                }
                _ => Some(m),
            }
        });
        let headers = opt(cx, &g, "headers", |cx, n| {
            map(cx, n, "`headers`", |cx, _, v| matcher(cx, v))
        });
        let json = opt(cx, &g, "json", path_matchers);
        let body = opt(cx, &g, "body", matcher);
        Some(HttpExpect {
            status,
            headers: headers
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            json: json.unwrap_or_default(),
            body,
        })
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, true));
    Some(Http {
        method,
        url: url?,
        headers: headers.unwrap_or_default(),
        query: query.unwrap_or_default(),
        body,
        json,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn rows_expect(cx: &mut Cx, node: &Node, what: &str) -> Option<RowsExpect> {
    let g = fields(
        cx,
        node,
        what,
        &["rows", "row_count", "affected", "json", "error"],
    )?;
    let rows = opt(cx, &g, "rows", |cx, n| {
        list(cx, n, "`rows`", |cx, _, n| value(cx, n))
    });
    let row_count = opt(cx, &g, "row_count", matcher);
    let affected = opt(cx, &g, "affected", matcher);
    let json = opt(cx, &g, "json", path_matchers);
    let error = opt(cx, &g, "error", matcher);
    Some(RowsExpect {
        rows,
        row_count,
        affected,
        json: json.unwrap_or_default(),
        error,
    })
}

fn sql(cx: &mut Cx, node: &Node) -> Option<Sql> {
    let f = fields(
        cx,
        node,
        "a `sql` step",
        &[
            "query", "execute", "params", "role", "settings", "expect", "capture",
        ],
    )?;
    let query = opt(cx, &f, "query", string);
    let execute = opt(cx, &f, "execute", string);
    if f.get("query").is_some() == f.get("execute").is_some() {
        cx.push(
            Problem::new(
                node.span,
                "a `sql` step has exactly one of `query` and `execute`",
            )
            .help("`query` returns rows; `execute` runs a statement for its effect"),
        );
    }
    let params = opt(cx, &f, "params", |cx, n| {
        list(cx, n, "`params`", |cx, _, n| value(cx, n))
    });
    let role = opt(cx, &f, "role", string);
    let settings = opt(cx, &f, "settings", |cx, n| string_map(cx, n, "`settings`"));
    let expect = opt(cx, &f, "expect", |cx, n| {
        rows_expect(cx, n, "`expect` of a `sql` step")
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    if query.is_none() && execute.is_none() {
        return None;
    }
    Some(Sql {
        query,
        execute,
        params: params.unwrap_or_default(),
        role,
        settings: settings.unwrap_or_default(),
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn s3(cx: &mut Cx, node: &Node) -> Option<S3> {
    let f = fields(
        cx,
        node,
        "an `s3` step",
        &[
            "op",
            "bucket",
            "key",
            "prefix",
            "body",
            "file",
            "content_type",
            "version_id",
            "expect",
            "capture",
        ],
    )?;
    let op = req(cx, &f, "op", "an `s3` step", |cx, n| {
        let Some(text) = n.as_str() else {
            cx.expected(n, "an s3 op");
            return None;
        };
        let op = match text {
            "put" => S3Op::Put,
            "get" => S3Op::Get,
            "head" => S3Op::Head,
            "list" => S3Op::List,
            "list_versions" => S3Op::ListVersions,
            "delete" => S3Op::Delete,
            _ => {
                let mut p = Problem::new(n.span, format!("unknown s3 op `{text}`"));
                p = match did_you_mean(text, S3Op::NAMES) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help(format!("ops: {}", backticked(&S3Op::NAMES))),
                };
                cx.push(p);
                return None;
            }
        };
        Some(op)
    });
    let bucket = opt(cx, &f, "bucket", string);
    let key = opt(cx, &f, "key", string);
    let prefix = opt(cx, &f, "prefix", string);
    let body = opt(cx, &f, "body", string);
    let file = opt(cx, &f, "file", file_path);
    let content_type = opt(cx, &f, "content_type", string);
    let version_id = opt(cx, &f, "version_id", string);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `s3` step",
            &["body", "exists", "count", "json", "error"],
        )?;
        let body = opt(cx, &g, "body", matcher);
        let exists = opt(cx, &g, "exists", boolean);
        let count = opt(cx, &g, "count", matcher);
        let json = opt(cx, &g, "json", path_matchers);
        let error = opt(cx, &g, "error", matcher);
        Some(S3Expect {
            body,
            exists,
            count,
            json: json.unwrap_or_default(),
            error,
        })
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    let op = op?;
    let needs_key = matches!(op, S3Op::Put | S3Op::Get | S3Op::Head | S3Op::Delete);
    if needs_key && f.get("key").is_none() {
        cx.push(Problem::new(
            node.span,
            format!("`s3` op `{}` needs a `key`", S3Op::NAMES[op as usize]),
        ));
        return None;
    }
    if op == S3Op::Put && f.get("body").is_some() == f.get("file").is_some() {
        cx.push(Problem::new(
            node.span,
            "`s3` op `put` needs exactly one of `body` and `file`",
        ));
        return None;
    }
    Some(S3 {
        op,
        bucket,
        key,
        prefix,
        body,
        file,
        content_type,
        version_id,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn cypher(cx: &mut Cx, node: &Node) -> Option<Cypher> {
    let f = fields(
        cx,
        node,
        "a `cypher` step",
        &["query", "params", "expect", "capture"],
    )?;
    let query = req(cx, &f, "query", "a `cypher` step", string);
    let params = opt(cx, &f, "params", |cx, n| {
        map(cx, n, "`params`", |cx, _, v| value(cx, v))
    });
    let expect = opt(cx, &f, "expect", |cx, n| {
        rows_expect(cx, n, "`expect` of a `cypher` step")
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    Some(Cypher {
        query: query?,
        params: params.unwrap_or_default(),
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn eventually(cx: &mut Cx, node: &Node) -> Option<Eventually> {
    let f = fields(
        cx,
        node,
        "an `eventually` step",
        &["timeout", "interval", "backoff", "max_interval", "probe"],
    )?;
    let timeout = req(cx, &f, "timeout", "an `eventually` step", duration);
    let interval = opt(cx, &f, "interval", duration);
    let backoff = opt(cx, &f, "backoff", |cx, n| {
        let b = number(cx, n)?;
        if (1.0..=10.0).contains(&b) {
            Some(b)
        } else {
            cx.error(n.span, "`backoff` is a factor from 1 to 10");
            None
        }
    });
    let max_interval = opt(cx, &f, "max_interval", duration);
    let probe = req(cx, &f, "probe", "an `eventually` step", |cx, n| {
        let s = step(cx, n)?;
        if let Action::Eventually(_) = s.action {
            cx.error(
                n.span,
                "an `eventually` probe cannot itself be `eventually`",
            );
            return None;
        }
        Some(s)
    });
    Some(Eventually {
        timeout: timeout?,
        interval,
        backoff,
        max_interval,
        probe: probe?,
    })
}

fn exec(cx: &mut Cx, node: &Node) -> Option<Exec> {
    let f = fields(
        cx,
        node,
        "an `exec` step",
        &[
            "command", "cargo", "args", "env", "cwd", "stdin", "expect", "capture",
        ],
    )?;
    let command_node = opt(cx, &f, "command", command);
    let cargo = opt(cx, &f, "cargo", |cx, n| {
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
    });
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
            .help("`command` runs a program; `cargo: PACKAGE` builds and runs a workspace binary"),
        );
    }
    let env = opt(cx, &f, "env", |cx, n| string_map(cx, n, "`env`"));
    let cwd = opt(cx, &f, "cwd", string);
    let stdin = opt(cx, &f, "stdin", string);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `exec` step",
            &["exit_code", "stdout", "stderr", "json"],
        )?;
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
        env: env.unwrap_or_default(),
        cwd,
        stdin,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn snapshot(cx: &mut Cx, node: &Node) -> Option<Snapshot> {
    let f = fields(cx, node, "a `snapshot` step", &["name", "value", "redact"])?;
    let snap_name = req(cx, &f, "name", "a `snapshot` step", |cx, n| {
        let s = name(cx, n)?;
        if valid_ident(&s) {
            Some(s)
        } else {
            cx.error(
                n.span,
                "a snapshot name must be letters, digits, `_` or `-` (it names a file)",
            );
            None
        }
    });
    let value = req(cx, &f, "value", "a `snapshot` step", value);
    let redact = opt(cx, &f, "redact", |cx, n| {
        list(cx, n, "`redact`", |cx, _, n| {
            let p = string(cx, n)?;
            json_path(cx, n, &p).then_some(p)
        })
    });
    Some(Snapshot {
        name: snap_name?,
        value: value?,
        redact: redact.unwrap_or_default(),
    })
}

fn telemetry(cx: &mut Cx, node: &Node) -> Option<Telemetry> {
    let f = fields(
        cx,
        node,
        "a `telemetry` step",
        &["signal", "where", "within", "expect", "capture"],
    )?;
    let signal = req(cx, &f, "signal", "a `telemetry` step", |cx, n| {
        let Some(text) = n.as_str() else {
            cx.expected(n, "a signal");
            return None;
        };
        match text {
            "spans" => Some(Signal::Spans),
            "metrics" => Some(Signal::Metrics),
            "logs" => Some(Signal::Logs),
            other => {
                let mut p = Problem::new(n.span, format!("unknown signal `{other}`"));
                p = match did_you_mean(other, ["spans", "metrics", "logs"]) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help("signals: `spans`, `metrics`, `logs`"),
                };
                cx.push(p);
                None
            }
        }
    });
    let filter = opt(cx, &f, "where", |cx, n| {
        map(cx, n, "`where`", |cx, _, v| matcher(cx, v))
    });
    let within = opt(cx, &f, "within", duration);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(cx, n, "`expect` of a `telemetry` step", &["count"])?;
        Some(TelemetryExpect {
            count: opt(cx, &g, "count", matcher),
        })
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    Some(Telemetry {
        signal: signal?,
        filter: filter.unwrap_or_default(),
        within,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}
