//! `cypher`: a query against the graph, in the scenario's own label.

use super::{sql::RowsExpect, sql::rows_expect, *};

/// Cypher run against the graph. Write `${scenario.graph_label}` as a label to stay in the
/// scenario's own part of the graph.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Cypher {
    pub query: Template,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub expect: RowsExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

impl Kind for Cypher {
    const KEY: &'static str = "cypher";
    const WHAT: &'static str = "a `cypher` step";
    const SERVICE: Option<Service> = Some(Service::Neo4j);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let query = req(cx, &f, "query", Self::WHAT, |cx, n| {
            cx.in_sink(Sink::Cypher, |cx| template(cx, n))
        });
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

    fn json_expect(&self) -> &BTreeMap<String, Matcher> {
        &self.expect.json
    }

    fn captures(&self) -> &BTreeMap<String, Capture> {
        &self.capture
    }
}
