//! YAML text to a tree of [`Node`]s that each carry the byte span they came from.
//!
//! Scalars are resolved with the YAML 1.2 core schema (plain `true`, `12`, `1.5`, `~` are
//! typed; quoted scalars are always strings). Aliases are expanded with two budgets, one of
//! nodes and one of text bytes, so a "billion laughs" file (many small nodes) or a byte bomb
//! (one large string aliased many times) is an error, not an out-of-memory. Both are checked
//! before an alias is copied.

use std::{borrow::Cow, collections::HashMap};

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diag::{Problem, Span};

/// Most nodes a file may expand to (aliases included).
const MAX_NODES: usize = 100_000;
/// Most bytes of scalar text a file may expand to: its own scalars plus every copy an alias
/// makes. Sixteen times the largest file, so aliases still save typing, while a 1 MiB file
/// cannot grow into gigabytes of strings.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of sequences and maps.
const MAX_DEPTH: usize = 64;

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What kind of value this is, for messages ("expected a string, found a map").
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) => "an integer",
            NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a map",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The plain JSON value of this node (map keys are rendered as strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A map key as text.
    pub fn key_text(&self) -> String {
        match &self.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Null => "null".into(),
            NodeValue::Bool(b) => b.to_string(),
            NodeValue::Int(i) => i.to_string(),
            NodeValue::Float(f) => f.to_string(),
            NodeValue::Seq(_) | NodeValue::Map(_) => "<complex key>".into(),
        }
    }
}

/// Converts character positions reported by the parser into byte offsets.
struct Offsets {
    /// Byte offset of every character, plus one past the end.
    bytes: Vec<usize>,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        Offsets { bytes }
    }
    fn byte(&self, char_index: usize) -> usize {
        self.bytes
            .get(char_index)
            .copied()
            .unwrap_or_else(|| *self.bytes.last().unwrap_or(&0))
    }
    fn span(&self, span: saphyr_parser::Span) -> Span {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        Span::new(start, end - start)
    }
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(text: &str) -> Result<Option<Node>, Vec<Problem>> {
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut budget = MAX_NODES;
    let mut text_budget = MAX_EXPANDED_BYTES;
    let mut problems = Vec::new();

    while let Some(next) = parser.next_event() {
        let (event, raw_span) = match next {
            Ok(ev) => ev,
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                problems.push(Problem::new(
                    Span::new(at, 0),
                    format!("invalid YAML: {}", e.info()),
                ));
                return Err(problems);
            }
        };
        let span = offsets.span(raw_span);
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    problems.push(
                        Problem::new(span, "a scenario file holds exactly one YAML document")
                            .help("split the documents into separate files"),
                    );
                    return Err(problems);
                }
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    problems.push(Problem::new(
                        span,
                        format!("nesting is deeper than {MAX_DEPTH} levels"),
                    ));
                    return Err(problems);
                }
                stack.push(Frame::Seq {
                    start: span,
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    problems.push(Problem::new(
                        span,
                        format!("nesting is deeper than {MAX_DEPTH} levels"),
                    ));
                    return Err(problems);
                }
                stack.push(Frame::Map {
                    start: span,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    start,
                    anchor,
                    items,
                }) => {
                    let end = close(text, span, items.last().map(|n| n.span));
                    let node = Node {
                        value: NodeValue::Seq(items),
                        span: start.to(end),
                    };
                    remember(&mut anchors, anchor, &node);
                    node
                }
                _ => continue,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    start,
                    anchor,
                    entries,
                    ..
                }) => {
                    let end = close(text, span, entries.last().map(|(_, v)| v.span));
                    let entries = merge_keys(entries, &mut problems);
                    let node = Node {
                        value: NodeValue::Map(entries),
                        span: start.to(end),
                    };
                    remember(&mut anchors, anchor, &node);
                    node
                }
                _ => continue,
            },
            Event::Scalar(value, style, anchor, _tag) => {
                // A file's own text counts too; within `MAX_FILE_BYTES` it leaves most of the
                // budget to aliases.
                text_budget = text_budget.saturating_sub(value.len());
                let node = Node {
                    value: resolve(value, style),
                    span,
                };
                remember(&mut anchors, anchor, &node);
                node
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(target) => {
                    let size = measure(target);
                    if size.nodes > budget {
                        problems.push(Problem::new(
                            span,
                            format!("aliases expand to more than {MAX_NODES} nodes"),
                        ));
                        return Err(problems);
                    }
                    if size.text > text_budget {
                        problems.push(
                            Problem::new(
                                span,
                                format!(
                                    "aliases expand to more than {} MiB of text",
                                    MAX_EXPANDED_BYTES / (1024 * 1024)
                                ),
                            )
                            .label(format!("this copy adds {} bytes", size.text))
                            .help("anchor smaller values, or keep large data in fixture files"),
                        );
                        return Err(problems);
                    }
                    budget -= size.nodes;
                    text_budget -= size.text;
                    let mut node = target.clone();
                    node.span = span;
                    node
                }
                None => {
                    problems.push(Problem::new(span, "alias refers to an unknown anchor"));
                    return Err(problems);
                }
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
        };
        if budget == 0 {
            problems.push(Problem::new(
                span,
                format!("the file expands to more than {MAX_NODES} nodes"),
            ));
            return Err(problems);
        }
        budget -= 1;
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if let NodeValue::Seq(_) | NodeValue::Map(_) = node.value {
                        problems.push(Problem::new(node.span, "map keys must be plain text"));
                    }
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.value == node.value) {
                        problems.push(
                            Problem::new(node.span, format!("duplicate key `{}`", node.key_text()))
                                .label("defined again here")
                                .also(first.span, "first defined here"),
                        );
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
    if problems.is_empty() {
        Ok(root)
    } else {
        Err(problems)
    }
}

/// Where a collection ends: its closing bracket in flow style (`]`, `}`), else its last
/// item. A block collection's end event sits at the next token, often on a later line.
fn close(text: &str, end_event: Span, last: Option<Span>) -> Span {
    let bracket = text
        .get(end_event.offset..)
        .is_some_and(|rest| rest.starts_with([']', '}']));
    match last {
        Some(last) if !bracket => last,
        _ if bracket => Span::new(end_event.offset, 1),
        _ => Span::new(end_event.offset, 0),
    }
}

/// Applies YAML merge keys (`<<: *defaults`, or `<<: [*a, *b]`): the merged maps' entries
/// join the map unless it has the key itself, and an earlier map in a list wins over a
/// later one. Merged entries keep their spans, so a problem in one points into the anchor.
fn merge_keys(entries: Vec<(Node, Node)>, problems: &mut Vec<Problem>) -> Vec<(Node, Node)> {
    let is_merge = |k: &Node| matches!(&k.value, NodeValue::Str(s) if s == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !is_merge(&k) {
            own.push((k, v));
            continue;
        }
        let sources = match v.value {
            NodeValue::Seq(items) => items,
            other => vec![Node {
                value: other,
                span: v.span,
            }],
        };
        for source in sources {
            match source.value {
                NodeValue::Map(from) => {
                    for (mk, mv) in from {
                        if !merged.iter().any(|(seen, _)| seen.value == mk.value) {
                            merged.push((mk, mv));
                        }
                    }
                }
                _ => problems.push(
                    Problem::new(
                        source.span,
                        format!("`<<` merges maps; this is {}", source.kind()),
                    )
                    .help("write `<<: *anchor` with the anchor on a map, or `<<: [*a, *b]`"),
                ),
            }
        }
    }
    merged.retain(|(mk, _)| !own.iter().any(|(k, _)| k.value == mk.value));
    own.extend(merged);
    own
}

fn remember(anchors: &mut HashMap<usize, Node>, anchor: usize, node: &Node) {
    if anchor != 0 {
        anchors.insert(anchor, node.clone());
    }
}

/// What copying a node costs: its nodes, and the bytes of its strings (keys included).
#[derive(Clone, Copy)]
struct Size {
    nodes: usize,
    text: usize,
}

impl std::ops::Add for Size {
    type Output = Size;
    fn add(self, other: Size) -> Size {
        Size {
            nodes: self.nodes + other.nodes,
            text: self.text + other.text,
        }
    }
}

fn measure(node: &Node) -> Size {
    let own = Size {
        nodes: 1,
        text: match &node.value {
            NodeValue::Str(s) => s.len(),
            _ => 0,
        },
    };
    match &node.value {
        NodeValue::Seq(items) => items.iter().map(measure).fold(own, |a, b| a + b),
        NodeValue::Map(entries) => entries
            .iter()
            .map(|(k, v)| measure(k) + measure(v))
            .fold(own, |a, b| a + b),
        _ => own,
    }
}

fn resolve(value: Cow<'_, str>, style: ScalarStyle) -> NodeValue {
    if style != ScalarStyle::Plain {
        return NodeValue::Str(value.into_owned());
    }
    match value.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    let v = value.as_ref();
    if let Some(hex) = v.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return NodeValue::Int(i);
        }
    } else if let Some(oct) = v.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return NodeValue::Int(i);
        }
    } else if v
        .trim_start_matches(['-', '+'])
        .chars()
        .all(|c| c.is_ascii_digit())
        && v.chars().any(|c| c.is_ascii_digit())
        && let Ok(i) = v.parse::<i64>()
    {
        return NodeValue::Int(i);
    }
    let looks_numeric = v
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && v.chars().any(|c| c.is_ascii_digit());
    if looks_numeric && let Ok(f) = v.parse::<f64>() {
        return NodeValue::Float(f);
    }
    NodeValue::Str(value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).expect("valid").expect("not empty")
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let node = root("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: text\n");
        let json = node.to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5, "f": "text"})
        );
    }

    #[test]
    fn spans_are_byte_offsets_even_after_multibyte_text() {
        let text = "é: ü\nkey: value\n";
        let node = root(text);
        let NodeValue::Map(entries) = &node.value else {
            panic!("expected a map")
        };
        let (k, v) = &entries[1];
        assert_eq!(&text[k.span.offset..k.span.offset + k.span.len], "key");
        assert_eq!(&text[v.span.offset..v.span.offset + v.span.len], "value");
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let problems = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert!(problems[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let problems = parse(&text).expect_err("too large");
        assert!(problems[0].message.contains("expand"), "{:?}", problems[0]);
    }

    /// One 60 KiB string, aliased 16 times per level, four levels deep: about 75 000 nodes
    /// (inside the node budget) that would copy 3.75 GiB of text.
    fn byte_bomb() -> String {
        let mut text = format!("s: &s \"{}\"\n", "a".repeat(60 * 1024));
        let mut prev = "s".to_owned();
        for level in 1..=4 {
            let items = vec![format!("*{prev}"); 16].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
            prev = format!("l{level}");
        }
        text
    }

    #[test]
    fn byte_bombs_are_refused_at_the_alias_that_crosses_the_limit() {
        let text = byte_bomb();
        let problems = parse(&text).expect_err("too much text");
        assert_eq!(problems.len(), 1);
        let p = &problems[0];
        assert_eq!(p.message, "aliases expand to more than 16 MiB of text");
        // 60 KiB + 16 copies + 16 × 16 copies fit; the first `*l2` of `l3` does not.
        let l3 = text.find("l3:").expect("l3");
        let first = l3 + text[l3..].find("*l2").expect("alias");
        assert_eq!((p.span.offset, p.span.len), (first, 3));
    }

    #[test]
    fn text_copied_by_aliases_within_the_budget_is_read() {
        // 200 copies of 60 KiB: 12 MiB of text, under the limit.
        let mut text = format!("s: &s \"{}\"\nl: [", "a".repeat(60 * 1024));
        text.push_str(&vec!["*s"; 200].join(", "));
        text.push_str("]\n");
        let node = root(&text);
        let NodeValue::Map(entries) = &node.value else {
            panic!("expected a map")
        };
        assert!(matches!(&entries[1].1.value, NodeValue::Seq(items) if items.len() == 200));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(200) + &"]".repeat(200);
        let problems = parse(&text).expect_err("too deep");
        assert!(problems[0].message.contains("nesting"));
    }

    #[test]
    fn empty_text_is_no_document() {
        assert_eq!(parse("").expect("empty is valid YAML"), None);
        assert_eq!(parse("# only a comment\n").expect("valid"), None);
    }
}
