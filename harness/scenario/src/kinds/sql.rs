//! `sql`: a statement in the scenario's own database (rows or the affected count).

use super::*;

/// SQL run in the scenario's own database. Exactly one of `query` and `execute`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// A statement returning rows; the step's document is the list of rows.
    #[serde(default)]
    pub query: Option<Template>,
    /// A statement run for effect; the document is `{ "affected": N }`.
    #[serde(default)]
    pub execute: Option<Template>,
    /// Values bound to `$1`, `$2`, ...
    #[serde(default)]
    pub params: Vec<Value>,
    /// Run as this role (`SET LOCAL ROLE`) inside a transaction.
    #[serde(default)]
    pub role: Option<Template>,
    /// Settings for this statement's transaction, such as `app.user_id: u1` for row-level
    /// security policies (`set_config(name, value, true)`).
    #[serde(default)]
    pub settings: BTreeMap<String, Template>,
    #[serde(default)]
    pub expect: RowsExpect,
    /// Values to keep: `NAME: "$[0].column"`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// Expectations on a list of rows (SQL) or records (Cypher).
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct RowsExpect {
    /// The exact rows, in order.
    #[serde(default)]
    pub rows: Option<Vec<Value>>,
    #[serde(default)]
    pub row_count: Option<Matcher>,
    /// Rows changed by `execute`.
    #[serde(default)]
    pub affected: Option<Matcher>,
    /// JSONPath into the document to matcher.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// The statement must fail with an error message that matches.
    #[serde(default)]
    pub error: Option<Matcher>,
}

pub(crate) fn rows_expect(cx: &mut Cx, node: &Node, what: &str) -> Option<RowsExpect> {
    let g = fields(cx, node, what, RowsExpect::KEYS)?;
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

impl Kind for Sql {
    const KEY: &'static str = "sql";
    const WHAT: &'static str = "a `sql` step";
    const SERVICE: Option<Service> = Some(Service::Postgres);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let query = opt(cx, &f, "query", |cx, n| {
            cx.in_sink(Sink::Sql, |cx| template(cx, n))
        });
        let execute = opt(cx, &f, "execute", |cx, n| {
            cx.in_sink(Sink::Sql, |cx| template(cx, n))
        });
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
        let role = opt(cx, &f, "role", template);
        let settings = opt(cx, &f, "settings", |cx, n| {
            template_map(cx, n, "`settings`")
        });
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

    fn json_expect(&self) -> &BTreeMap<String, Matcher> {
        &self.expect.json
    }

    fn captures(&self) -> &BTreeMap<String, Capture> {
        &self.capture
    }
}
