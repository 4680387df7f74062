//! Evaluates the matchers of `expect` blocks against actual values.

use harness_scenario::{MatchOp, Matcher};
use serde_json::Value;

use super::{
    context::{Ctx, Redactor},
    steps::StepError,
};

/// Checks `actual` (None: the value is absent) against a matcher whose expected values may
/// hold `${…}` references. `subject` names what is checked ("status", "$.id").
pub fn check(
    ctx: &mut Ctx,
    subject: &str,
    m: &Matcher,
    actual: Option<&Value>,
) -> Result<(), StepError> {
    let op = render(ctx, &m.op)?;
    let ok = holds(&op, actual);
    if ok {
        return Ok(());
    }
    // For a compound value, say where it differs.
    let message = match (&op, actual) {
        (MatchOp::Eq(want @ (Value::Array(_) | Value::Object(_))), Some(got)) => {
            // Paths start from the JSONPath that selected the value, when there is one.
            let root = if subject.starts_with('$') {
                subject
            } else {
                "$"
            };
            match difference_note(&ctx.redactor, root, want, got) {
                Some(note) => format!("{subject} did not match; {note}"),
                None => format!("{subject} did not match"),
            }
        }
        _ => format!("{subject} did not match"),
    };
    Err(StepError::Failed {
        message,
        expected: Some(describe(&ctx.redactor, &op)),
        actual: Some(match actual {
            None => "nothing (absent)".into(),
            Some(v) => short(&ctx.redactor, v),
        }),
        span: Some(m.span),
    })
}

/// Expands the `${…}` references in a matcher's expected values.
pub fn render(ctx: &mut Ctx, op: &MatchOp) -> Result<MatchOp, StepError> {
    Ok(match op {
        MatchOp::Eq(v) => MatchOp::Eq(ctx.render_value(v)?),
        MatchOp::Ne(v) => MatchOp::Ne(ctx.render_value(v)?),
        MatchOp::Contains(v) => MatchOp::Contains(ctx.render_value(v)?),
        MatchOp::Excludes(v) => MatchOp::Excludes(ctx.render_value(v)?),
        MatchOp::Matches(re) => MatchOp::Matches(ctx.render_str(re)?),
        MatchOp::OneOf(vs) => MatchOp::OneOf(
            vs.iter()
                .map(|v| ctx.render_value(v))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Whether an operator holds for a value.
pub fn holds(op: &MatchOp, actual: Option<&Value>) -> bool {
    match op {
        MatchOp::Exists(want) => actual.is_some_and(|v| !v.is_null()) == *want,
        MatchOp::Eq(expected) => actual.is_some_and(|a| equal(expected, a)),
        MatchOp::Ne(expected) => !actual.is_some_and(|a| equal(expected, a)),
        MatchOp::OneOf(options) => actual.is_some_and(|a| options.iter().any(|o| equal(o, a))),
        MatchOp::Excludes(needle) => !holds(&MatchOp::Contains(needle.clone()), actual),
        MatchOp::Contains(needle) => match (actual, needle) {
            (Some(Value::String(s)), n) => s.contains(&text(n)),
            (Some(Value::Array(items)), n) => items.iter().any(|i| equal(n, i) || subset(n, i)),
            (Some(Value::Object(_)), n @ Value::Object(_)) => actual.is_some_and(|a| subset(n, a)),
            (Some(Value::Object(map)), Value::String(key)) => map.contains_key(key),
            _ => false,
        },
        MatchOp::Matches(re) => match (actual, regex::Regex::new(re)) {
            (Some(a), Ok(re)) => re.is_match(&text(a)),
            _ => false,
        },
        MatchOp::Gt(n) => number(actual).is_some_and(|a| a > *n),
        MatchOp::Ge(n) => number(actual).is_some_and(|a| a >= *n),
        MatchOp::Lt(n) => number(actual).is_some_and(|a| a < *n),
        MatchOp::Le(n) => number(actual).is_some_and(|a| a <= *n),
        MatchOp::Len(n) => match actual {
            Some(Value::Array(a)) => a.len() as u64 == *n,
            Some(Value::String(s)) => s.chars().count() as u64 == *n,
            Some(Value::Object(o)) => o.len() as u64 == *n,
            _ => false,
        },
    }
}

/// Equality where numbers compare by value (1 == 1.0).
pub fn equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => expected == actual,
    }
}

/// Where two values first differ (by [`equal`]): a JSONPath from `at`, with what was
/// expected and what was found there (`None`: absent). `None` when they are equal.
pub fn first_difference(
    at: &str,
    expected: &Value,
    actual: &Value,
) -> Option<(String, Option<Value>, Option<Value>)> {
    match (expected, actual) {
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if let Some(d) = first_difference(&format!("{at}[{i}]"), x, y) {
                    return Some(d);
                }
            }
            let n = a.len().min(b.len());
            (a.len() != b.len())
                .then(|| (format!("{at}[{n}]"), a.get(n).cloned(), b.get(n).cloned()))
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let path = format!("{at}{}", member(k));
                match b.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(&path, v, w) {
                            return Some(d);
                        }
                    }
                    None => return Some((path, Some(v.clone()), None)),
                }
            }
            b.iter()
                .find(|(k, _)| !a.contains_key(*k))
                .map(|(k, w)| (format!("{at}{}", member(k)), None, Some(w.clone())))
        }
        _ => (!equal(expected, actual))
            .then(|| (at.to_owned(), Some(expected.clone()), Some(actual.clone()))),
    }
}

/// `.name`, or `['odd name']` when the key is not a plain identifier.
fn member(key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!(".{key}")
    } else {
        format!("['{}']", key.replace('\'', "\\'"))
    }
}

/// "at `$[0].n`: expected 2, found 1", for a failure message (redacted, cut).
pub fn difference_note(
    redactor: &Redactor,
    root: &str,
    expected: &Value,
    actual: &Value,
) -> Option<String> {
    let (path, want, got) = first_difference(root, expected, actual)?;
    let show = |v: &Option<Value>| match v {
        Some(v) => short(redactor, v),
        None => "nothing".into(),
    };
    Some(format!(
        "first difference at `{path}`: expected {}, found {}",
        show(&want),
        show(&got)
    ))
}

/// Every key of `part` is in `whole` with an equal (or, recursively, containing) value.
fn subset(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|x| equal(v, x) || subset(v, x))),
        _ => false,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        // Postgres `numeric` and some APIs send numbers as strings.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value for a report, redacted and then cut to a readable length (in that order, so
/// the cut never leaves part of a secret that the redactor no longer recognises).
pub fn short(redactor: &Redactor, v: &Value) -> String {
    let s = redactor.redact(&v.to_string());
    if s.chars().count() > 500 {
        let cut: String = s.chars().take(500).collect();
        format!("{cut}… ({} bytes)", s.len())
    } else {
        s
    }
}

fn describe(r: &Redactor, op: &MatchOp) -> String {
    let short = |v: &Value| short(r, v);
    match op {
        MatchOp::Eq(v) => short(v),
        MatchOp::Ne(v) => format!("anything but {}", short(v)),
        MatchOp::Contains(v) => format!("something containing {}", short(v)),
        MatchOp::Excludes(v) => format!("something without {}", short(v)),
        MatchOp::Matches(re) => format!("text matching /{re}/"),
        MatchOp::Gt(n) => format!("> {n}"),
        MatchOp::Ge(n) => format!(">= {n}"),
        MatchOp::Lt(n) => format!("< {n}"),
        MatchOp::Le(n) => format!("<= {n}"),
        MatchOp::Exists(true) => "a value".into(),
        MatchOp::Exists(false) => "no value".into(),
        MatchOp::Len(n) => format!("length {n}"),
        MatchOp::OneOf(vs) => format!("one of {}", short(&Value::Array(vs.clone()))),
    }
}

/// Evaluates a JSONPath (already validated by the parser): one match gives that value,
/// several give an array, none gives `None`.
pub fn select(path: &str, doc: &Value) -> Option<Value> {
    let path = serde_json_path::JsonPath::parse(path).ok()?;
    let nodes = path.query(doc).all();
    match nodes.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => Some(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn operators() {
        assert!(holds(&MatchOp::Eq(json!(1)), Some(&json!(1.0))));
        assert!(!holds(&MatchOp::Eq(json!(1)), Some(&json!("1"))));
        assert!(holds(
            &MatchOp::Contains(json!("ell")),
            Some(&json!("hello"))
        ));
        assert!(holds(
            &MatchOp::Contains(json!({"a": 1})),
            Some(&json!([{"a": 1, "b": 2}]))
        ));
        assert!(holds(
            &MatchOp::Matches("^h.l".into()),
            Some(&json!("hello"))
        ));
        assert!(holds(&MatchOp::Ge(2.0), Some(&json!("2.5"))));
        assert!(!holds(&MatchOp::Lt(2.0), Some(&json!(3))));
        assert!(holds(&MatchOp::Exists(false), None));
        assert!(!holds(&MatchOp::Exists(true), Some(&Value::Null)));
        assert!(holds(&MatchOp::Len(2), Some(&json!([1, 2]))));
        assert!(holds(
            &MatchOp::OneOf(vec![json!(1), json!(2)]),
            Some(&json!(2))
        ));
        assert!(holds(&MatchOp::Ne(json!(1)), None));
        assert!(holds(
            &MatchOp::Excludes(json!("pw")),
            Some(&json!("no secret here"))
        ));
        assert!(!holds(
            &MatchOp::Excludes(json!("secret")),
            Some(&json!("a secret"))
        ));
    }

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let d = |a: Value, b: Value| first_difference("$", &a, &b);
        assert_eq!(
            d(json!([{"n": 1, "m": "x"}]), json!([{"n": 1, "m": "y"}])),
            Some(("$[0].m".into(), Some(json!("x")), Some(json!("y"))))
        );
        assert_eq!(
            d(json!([1, 2]), json!([1])),
            Some(("$[1]".into(), Some(json!(2)), None))
        );
        assert_eq!(
            d(json!({"a": 1}), json!({"a": 1, "odd key": 2})),
            Some(("$['odd key']".into(), None, Some(json!(2))))
        );
        assert_eq!(d(json!({"n": 1}), json!({"n": 1.0})), None);
    }

    #[test]
    fn select_returns_one_many_or_none() {
        let doc = json!({"items": [{"id": 1}, {"id": 2}]});
        assert_eq!(select("$.items[0].id", &doc), Some(json!(1)));
        assert_eq!(select("$.items[*].id", &doc), Some(json!([1, 2])));
        assert_eq!(select("$.nope", &doc), None);
    }
}
