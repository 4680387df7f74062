//! `cypher`: run a query against the graph. The document is the list of records, each a
//! map from column to value (nodes become their property maps).

use harness_scenario::Cypher;
use serde_json::Value;

use super::{Handler, StepError, check_rows, expect_error};
use crate::run::{context::Ctx, stores::run_query};

impl Handler for Cypher {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let s = self;
        let graph = ctx
            .iso
            .graph
            .clone()
            .ok_or_else(|| StepError::error("neo4j is not part of this run"))?;
        let text = ctx.render(&s.query)?;
        let mut q = neo4rs::query(&text);
        for (k, v) in &s.params {
            let v = ctx.render_value(v)?;
            q = q.param(k, to_bolt(&v));
        }
        let result = run_query(&graph, q).await;
        expect_error(ctx, result, s.expect.error.as_ref(), "the query")
    }

    fn check(&self, ctx: &mut Ctx, doc: &Value) -> Result<(), StepError> {
        check_rows(ctx, doc, &self.expect)
    }
}

fn to_bolt(v: &Value) -> neo4rs::BoltType {
    use neo4rs::BoltType;
    match v {
        Value::Null => BoltType::Null(neo4rs::BoltNull),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default().into(),
        Value::Number(n) => n.as_f64().unwrap_or_default().into(),
        Value::String(s) => s.clone().into(),
        Value::Array(items) => BoltType::List(neo4rs::BoltList {
            value: items.iter().map(to_bolt).collect(),
        }),
        Value::Object(map) => {
            let mut m = neo4rs::BoltMap::new();
            for (k, v) in map {
                m.put(k.as_str().into(), to_bolt(v));
            }
            BoltType::Map(m)
        }
    }
}
