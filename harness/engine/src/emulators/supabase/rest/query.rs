//! PostgREST's query grammar: `select`, filters (`col=op.value`, `not.`, `or=(…)`,
//! `and=(…)`), `order`, `limit`, `offset`, `on_conflict`, `columns`. Parsing only: nothing
//! here touches SQL (see `sql.rs`), and every name stays a name, never SQL text.

use std::{collections::BTreeMap, fmt};

/// A query parameter PostgREST does not understand, or a value it cannot take: its `PGRST100`
/// ("failed to parse …").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub details: String,
}

fn bad(message: impl Into<String>, details: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        details: details.into(),
    }
}

/// A column, possibly followed by JSON path steps (`data->a->>b`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub column: String,
    /// Each step: `true` for `->>` (as text), `false` for `->`, and its key.
    pub json: Vec<(bool, String)>,
}

impl Path {
    /// The name PostgREST gives a selected JSON path: its last key.
    pub fn default_name(&self) -> &str {
        self.json.last().map_or(&self.column, |(_, k)| k)
    }
}

/// One item of `select`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Star,
    Column {
        path: Path,
        alias: Option<String>,
        cast: Option<String>,
    },
    /// A resource embedded through a foreign key: `alias:name!hint!inner(items)`.
    Embed {
        name: String,
        alias: Option<String>,
        hint: Option<String>,
        inner: bool,
        items: Vec<Item>,
    },
}

/// A filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Match,
    Imatch,
    Is,
    In,
    Cs,
    Cd,
    Ov,
    Fts,
    Plfts,
    Phfts,
    Wfts,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "like" => Op::Like,
            "ilike" => Op::Ilike,
            "match" => Op::Match,
            "imatch" => Op::Imatch,
            "is" => Op::Is,
            "in" => Op::In,
            "cs" => Op::Cs,
            "cd" => Op::Cd,
            "ov" => Op::Ov,
            "fts" => Op::Fts,
            "plfts" => Op::Plfts,
            "phfts" => Op::Phfts,
            "wfts" => Op::Wfts,
            _ => return None,
        })
    }
}

/// The value of `is`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsValue {
    Null,
    NotNull,
    True,
    False,
    Unknown,
}

/// A filter: a condition on a column, or a logical tree of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Cond {
        path: Path,
        negate: bool,
        op: Op,
        /// The text-search configuration of `fts(english)`.
        language: Option<String>,
        value: Value,
    },
    Logic {
        negate: bool,
        and: bool,
        children: Vec<Filter>,
    },
}

/// A filter's operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    One(String),
    /// `in.(a,b,c)`.
    List(Vec<String>),
    Is(IsValue),
}

/// One `order` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub path: Path,
    pub desc: bool,
    /// `Some(true)`: nulls first.
    pub nulls_first: Option<bool>,
}

/// What a request asks of one embedded resource: `cards.front=eq.x` filters its rows (not
/// the outer ones, unless the embed is `!inner`), `cards.order=…`, `cards.limit=…` and
/// `cards.offset=…` order and page them, `cards.or=(…)` and `cards.and=(…)` too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmbedQuery {
    pub filters: Vec<Filter>,
    pub order: Vec<Order>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// A request's query string, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub select: Option<Vec<Item>>,
    pub filters: Vec<Filter>,
    pub order: Vec<Order>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub on_conflict: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
    /// Every other parameter, for an RPC's arguments (`GET /rpc/fn?a=1`).
    pub rest: Vec<(String, String)>,
    /// By the embed's path of names (or aliases) in `select`: `["cards"]`, `["cards", "tags"]`.
    pub embedded: BTreeMap<Vec<String>, EmbedQuery>,
}

/// `cards.front` → (`["cards"]`, `front`); `cards.tags.order` → (`["cards", "tags"]`,
/// `order`); `None` for a key with no embed in front (dots inside a JSON path do not count).
fn embedded_key(key: &str) -> Result<Option<(Vec<String>, String)>, ParseError> {
    let head_end = key.find("->").unwrap_or(key.len());
    let Some(dot) = key[..head_end].rfind('.') else {
        return Ok(None);
    };
    let path = key[..dot]
        .split('.')
        .map(name)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((path, key[dot + 1..].to_owned())))
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.details)
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space), as PostgREST reads
/// its query string.
/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string's pairs, decoded, in order.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A name: letters, digits, `_`, `$` and `-`, or anything in double quotes.
fn name(s: &str) -> Result<String, ParseError> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.is_empty() {
            return Err(bad("\"failed to parse\"", "an empty quoted name"));
        }
        return Ok(inner.replace("\\\"", "\""));
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '-' || c == ' ')
    {
        return Err(bad(
            format!("\"failed to parse\" ({s})"),
            format!("unexpected characters in the name {s:?}"),
        ));
    }
    Ok(s.to_owned())
}

/// `col`, `col->a->>b`.
fn path(s: &str) -> Result<Path, ParseError> {
    let mut rest = s;
    let first = rest.find("->").unwrap_or(rest.len());
    let column = name(&rest[..first])?;
    rest = &rest[first..];
    let mut json = Vec::new();
    while !rest.is_empty() {
        let text = rest.starts_with("->>");
        rest = &rest[if text { 3 } else { 2 }..];
        let end = rest.find("->").unwrap_or(rest.len());
        let key = &rest[..end];
        if key.is_empty() {
            return Err(bad("\"failed to parse json path\"", s));
        }
        json.push((text, key.trim_matches('"').to_owned()));
        rest = &rest[end..];
    }
    Ok(Path { column, json })
}

/// Splits at top-level commas, outside parentheses and double quotes.
fn split_top(s: &str) -> Result<Vec<String>, ParseError> {
    let (mut parts, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                cur.push(c);
            }
            ')' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return Err(bad("\"failed to parse\" (unbalanced parentheses)", s));
                }
                cur.push(c);
            }
            ',' if !quoted && depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if depth != 0 || quoted {
        return Err(bad(
            "\"failed to parse\" (unbalanced parentheses or quotes)",
            s,
        ));
    }
    parts.push(cur);
    Ok(parts)
}

/// The `select` parameter.
pub fn select(s: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    for part in split_top(s)? {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        items.push(item(part)?);
    }
    Ok(items)
}

fn item(part: &str) -> Result<Item, ParseError> {
    if part == "*" {
        return Ok(Item::Star);
    }
    // `alias:rest` (the `::` of a cast is not an alias).
    let (alias, body) = match part.find(':') {
        Some(i) if !part[i..].starts_with("::") => (Some(name(&part[..i])?), part[i + 1..].trim()),
        _ => (None, part),
    };
    if let Some(open) = body.find('(') {
        if !body.ends_with(')') {
            return Err(bad("\"failed to parse select parameter\"", part));
        }
        let head = &body[..open];
        let mut bits = head.split('!');
        let name = name(bits.next().unwrap_or_default())?;
        let (mut hint, mut inner) = (None, false);
        for b in bits {
            match b {
                "inner" => inner = true,
                "left" => {}
                other => hint = Some(self::name(other)?),
            }
        }
        let items = select(&body[open + 1..body.len() - 1])?;
        return Ok(Item::Embed {
            name,
            alias,
            hint,
            inner,
            items,
        });
    }
    let (body, cast) = match body.split_once("::") {
        Some((b, c)) => (b, Some(name(c)?)),
        None => (body, None),
    };
    Ok(Item::Column {
        path: path(body)?,
        alias,
        cast,
    })
}

/// `op.value`, `not.op.value`, `fts(english).value`.
fn condition(p: Path, spec: &str) -> Result<Filter, ParseError> {
    let (negate, spec) = match spec.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let (op_text, value) = spec.split_once('.').ok_or_else(|| {
        bad(
            format!("\"failed to parse filter ({spec})\""),
            "a filter is OPERATOR.VALUE, such as eq.5",
        )
    })?;
    let (op_name, language) = match op_text.split_once('(') {
        Some((o, l)) => (o, Some(name(l.trim_end_matches(')'))?)),
        None => (op_text, None),
    };
    let op = Op::parse(op_name).ok_or_else(|| {
        bad(
            format!("\"failed to parse filter ({spec})\""),
            format!("unknown operator {op_name:?}"),
        )
    })?;
    if language.is_some() && !matches!(op, Op::Fts | Op::Plfts | Op::Phfts | Op::Wfts) {
        return Err(bad(
            format!("\"failed to parse filter ({spec})\""),
            "only the text-search operators take a language",
        ));
    }
    let value = match op {
        Op::Is => Value::Is(match value.to_ascii_lowercase().as_str() {
            "null" => IsValue::Null,
            "not_null" => IsValue::NotNull,
            "true" => IsValue::True,
            "false" => IsValue::False,
            "unknown" => IsValue::Unknown,
            other => {
                return Err(bad(
                    format!("\"failed to parse filter (is.{other})\""),
                    "`is` takes null, not_null, true, false or unknown",
                ));
            }
        }),
        Op::In => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    bad(
                        format!("\"failed to parse filter (in.{value})\""),
                        "`in` takes a list in parentheses, such as in.(1,2,3)",
                    )
                })?;
            if inner.trim().is_empty() {
                Value::List(Vec::new())
            } else {
                Value::List(split_top(inner)?.into_iter().map(|v| unquote(&v)).collect())
            }
        }
        _ => Value::One(value.to_owned()),
    };
    Ok(Filter::Cond {
        path: p,
        negate,
        op,
        language,
        value,
    })
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_owned(),
    }
}

/// `(a.eq.1,b.gt.2,and(c.lt.3,d.is.null))`, the value of `or=` / `and=`.
fn logic(negate: bool, and: bool, s: &str) -> Result<Filter, ParseError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            bad(
                format!("\"failed to parse logic tree ({s})\""),
                "a logic tree is in parentheses, such as or=(a.eq.1,b.eq.2)",
            )
        })?;
    let mut children = Vec::new();
    for part in split_top(inner)? {
        let part = part.trim();
        // `not.` negates a nested tree; a condition negates itself (`col.not.eq.1`).
        let (neg, body) = match part.strip_prefix("not.") {
            Some(r) if r.starts_with("or(") || r.starts_with("and(") => (true, r),
            _ => (false, part),
        };
        if let Some(r) = body.strip_prefix("or(") {
            children.push(logic(neg, false, &format!("({r}"))?);
        } else if let Some(r) = body.strip_prefix("and(") {
            children.push(logic(neg, true, &format!("({r}"))?);
        } else {
            // `col.op.value` (the column's own dots are in quotes, or a JSON path's arrows).
            let (col, spec) = split_column(part)?;
            children.push(condition(path(col)?, spec)?);
        }
    }
    Ok(Filter::Logic {
        negate,
        and,
        children,
    })
}

fn split_column(part: &str) -> Result<(&str, &str), ParseError> {
    let idx = if let Some(quoted) = part.strip_prefix('"') {
        quoted.find('"').map(|i| i + 2)
    } else {
        part.find('.')
    };
    match idx {
        Some(i) if part[i..].starts_with('.') => Ok((&part[..i], &part[i + 1..])),
        _ => Err(bad(
            format!("\"failed to parse logic tree ({part})\""),
            "each condition is COLUMN.OPERATOR.VALUE",
        )),
    }
}

fn number(key: &str, v: &str) -> Result<u64, ParseError> {
    v.trim().parse().map_err(|_| {
        bad(
            format!("\"failed to parse {key} parameter ({v})\""),
            format!("`{key}` is a non-negative integer"),
        )
    })
}

/// `order=a.desc.nullsfirst,b`.
fn order(s: &str) -> Result<Vec<Order>, ParseError> {
    let mut terms = Vec::new();
    for term in split_top(s)? {
        let mut bits = term.trim().split('.');
        let p = path(bits.next().unwrap_or_default())?;
        let (mut desc, mut nulls_first) = (false, None);
        for b in bits {
            match b {
                "asc" => desc = false,
                "desc" => desc = true,
                "nullsfirst" => nulls_first = Some(true),
                "nullslast" => nulls_first = Some(false),
                other => {
                    return Err(bad(
                        format!("\"failed to parse order ({term})\""),
                        format!("unknown modifier {other:?}: asc, desc, nullsfirst, nullslast"),
                    ));
                }
            }
        }
        terms.push(Order {
            path: p,
            desc,
            nulls_first,
        });
    }
    Ok(terms)
}

/// Parses a request's query string. `rpc`: other parameters are a function's arguments
/// when they are not filters.
pub fn parse(query: &str, rpc: bool) -> Result<Query, ParseError> {
    let mut q = Query::default();
    for (key, value) in pairs(query) {
        match key.as_str() {
            "select" => q.select = Some(select(&value)?),
            "order" => q.order = order(&value)?,
            "limit" => q.limit = Some(number("limit", &value)?),
            "offset" => q.offset = Some(number("offset", &value)?),
            "on_conflict" => {
                q.on_conflict = Some(
                    split_top(&value)?
                        .iter()
                        .map(|c| name(c))
                        .collect::<Result<_, _>>()?,
                );
            }
            "columns" => {
                q.columns = Some(
                    split_top(&value)?
                        .iter()
                        .map(|c| name(c))
                        .collect::<Result<_, _>>()?,
                );
            }
            "or" => q.filters.push(logic(false, false, &value)?),
            "and" => q.filters.push(logic(false, true, &value)?),
            "not.or" => q.filters.push(logic(true, false, &value)?),
            "not.and" => q.filters.push(logic(true, true, &value)?),
            "apikey" => {}
            _ if rpc && !value.contains('.') => q.rest.push((key, value)),
            _ => match embedded_key(&key)? {
                Some((mut at, last)) => {
                    // `tags.not.or=(…)`: a negated tree on the embed.
                    let negated = at.len() > 1
                        && at.last().is_some_and(|n| n == "not")
                        && matches!(last.as_str(), "or" | "and");
                    if negated {
                        at.pop();
                    }
                    let e = q.embedded.entry(at).or_default();
                    match last.as_str() {
                        "or" | "and" if negated => {
                            e.filters.push(logic(true, last == "and", &value)?);
                        }
                        "order" => e.order = order(&value)?,
                        "limit" => e.limit = Some(number(&key, &value)?),
                        "offset" => e.offset = Some(number(&key, &value)?),
                        "or" => e.filters.push(logic(false, false, &value)?),
                        "and" => e.filters.push(logic(false, true, &value)?),
                        column => e.filters.push(condition(path(column)?, &value)?),
                    }
                }
                None => q.filters.push(condition(path(&key)?, &value)?),
            },
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(c: &str) -> Path {
        Path {
            column: c.into(),
            json: Vec::new(),
        }
    }

    #[test]
    fn filters_orders_and_pages_parse_as_postgrest_reads_them() {
        let q = parse(
            "select=id,title:name,data->a->>b,n::text&age=gte.18&name=not.ilike.*ann*&id=in.(1,2,%223,4%22)&deleted_at=is.null&order=age.desc.nullslast,id&limit=10&offset=5",
            false,
        )
        .expect("parses");
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert_eq!(q.select.as_ref().map(Vec::len), Some(4));
        assert_eq!(
            q.select.as_ref().expect("select")[2],
            Item::Column {
                path: Path {
                    column: "data".into(),
                    json: vec![(false, "a".into()), (true, "b".into())]
                },
                alias: None,
                cast: None
            }
        );
        assert_eq!(
            q.filters[1],
            Filter::Cond {
                path: col("name"),
                negate: true,
                op: Op::Ilike,
                language: None,
                value: Value::One("*ann*".into())
            }
        );
        assert_eq!(
            q.filters[2],
            Filter::Cond {
                path: col("id"),
                negate: false,
                op: Op::In,
                language: None,
                value: Value::List(vec!["1".into(), "2".into(), "3,4".into()])
            }
        );
        assert_eq!(q.order[0].nulls_first, Some(false));
        assert!(q.order[0].desc && !q.order[1].desc);
    }

    #[test]
    fn logic_trees_nest() {
        let q = parse("or=(age.lt.18,and(name.eq.ann,active.not.is.true))", false).expect("parses");
        let Filter::Logic { and, children, .. } = &q.filters[0] else {
            panic!("a tree");
        };
        assert!(!and);
        assert!(
            matches!(&children[1], Filter::Logic { and: true, children, .. } if children.len() == 2)
        );
    }

    #[test]
    fn bad_input_is_a_parse_error_not_sql() {
        for bad in [
            "age=between.1.2",
            "age=5",
            "id=in.1,2",
            "deleted=is.maybe",
            "limit=-1",
            "order=a.sideways",
            "or=(a.eq.1",
            "x;drop table t=eq.1",
        ] {
            assert!(parse(bad, false).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn filters_order_and_pages_of_embedded_resources_parse_by_their_path() {
        let q = parse(
            "select=*,cards(*,tags(*))&cards.front=eq.a&cards.order=front.desc&cards.limit=2\
             &cards.offset=1&cards.tags.not.or=(label.eq.x,label.eq.y)&data->>a.b=eq.1",
            false,
        )
        .expect("parses");
        let cards = &q.embedded[&vec!["cards".to_owned()]];
        assert_eq!(cards.filters.len(), 1);
        assert_eq!(cards.order[0].path, col("front"));
        assert!(cards.order[0].desc);
        assert_eq!((cards.limit, cards.offset), (Some(2), Some(1)));
        let tags = &q.embedded[&vec!["cards".to_owned(), "tags".to_owned()]];
        assert!(matches!(
            &tags.filters[0],
            Filter::Logic {
                negate: true,
                and: false,
                ..
            }
        ));
        // A dot inside a JSON path is the key's, not an embed's.
        assert_eq!(q.filters.len(), 1);
        assert!(parse("cards;x.front=eq.1", false).is_err());
    }

    #[test]
    fn embeds_parse_with_their_hints() {
        let s = select("id,author:users!author_id!inner(name,email),cards(*)").expect("parses");
        assert!(
            matches!(&s[1], Item::Embed { name, alias: Some(a), hint: Some(h), inner: true, .. }
            if name == "users" && a == "author" && h == "author_id")
        );
        assert!(matches!(&s[2], Item::Embed { items, .. } if items == &vec![Item::Star]));
    }
}
