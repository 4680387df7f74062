//! `telemetry`: wait until the collector has received spans, metrics or logs that match
//! attribute filters. The document is the list of matching items, each
//! `{name, attributes, resource}` (metrics: one item per data point).

use std::time::Duration;

use harness_scenario::{Signal, Telemetry};
use serde_json::{Map, Value, json};

use super::{Handler, StepError};
use crate::run::{context::Ctx, matcher};

impl Handler for Telemetry {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        wait(ctx, self).await.map(Some)
    }
}

/// Polls the collector's file until the matching items satisfy `expect.count`.
async fn wait(ctx: &mut Ctx, s: &Telemetry) -> Result<Value, StepError> {
    let file = ctx
        .endpoints
        .otel
        .as_ref()
        .map(|o| o.output_file.clone())
        .ok_or_else(|| StepError::error("the collector is not part of this run"))?;
    let within = s.within.map_or(Duration::from_secs(10), |d| d.0);
    let deadline = tokio::time::Instant::now() + within;
    let mut filters = Vec::new();
    for (k, m) in &s.filter {
        filters.push((k.clone(), matcher::render(ctx, &m.op)?));
    }
    loop {
        let text = tokio::fs::read_to_string(&file).await.unwrap_or_default();
        let matching: Vec<Value> = items(&text, s.signal)
            .into_iter()
            .filter(|item| {
                filters
                    .iter()
                    .all(|(k, op)| matcher::holds(op, lookup(item, k).as_ref()))
            })
            .collect();
        let count = Value::from(matching.len());
        let ok = match &s.expect.count {
            Some(m) => matcher::holds(&matcher::render(ctx, &m.op)?, Some(&count)),
            None => !matching.is_empty(),
        };
        if ok {
            return Ok(Value::Array(matching));
        }
        if tokio::time::Instant::now() >= deadline {
            let what = match s.signal {
                Signal::Spans => "spans",
                Signal::Metrics => "metric points",
                Signal::Logs => "log records",
            };
            return Err(match &s.expect.count {
                Some(m) => {
                    let err =
                        matcher::check(ctx, &format!("number of matching {what}"), m, Some(&count));
                    err.err()
                        .unwrap_or_else(|| StepError::failed("count did not match"))
                }
                None => StepError::Failed {
                    message: format!("no matching {what} reached the collector within {within:?}"),
                    expected: Some("at least 1".into()),
                    actual: Some("0".into()),
                    span: None,
                },
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `name`, then item attributes, then resource attributes.
fn lookup(item: &Value, key: &str) -> Option<Value> {
    if key == "name" {
        return item.get("name").cloned();
    }
    item["attributes"]
        .get(key)
        .or_else(|| item["resource"].get(key))
        .cloned()
}

/// OTLP/JSON `KeyValue` lists to a flat map.
fn attrs(list: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in list.as_array().into_iter().flatten() {
        if let Some(k) = kv["key"].as_str() {
            out.insert(k.to_owned(), any_value(&kv["value"]));
        }
    }
    out
}

fn any_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = v.get("intValue") {
        // OTLP/JSON carries 64-bit integers as strings.
        return i
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or_else(|| i.clone(), Value::from);
    }
    for k in ["boolValue", "doubleValue"] {
        if let Some(x) = v.get(k) {
            return x.clone();
        }
    }
    if let Some(arr) = v.get("arrayValue") {
        return Value::Array(
            arr["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(any_value)
                .collect(),
        );
    }
    Value::Null
}

/// Every item of one signal in the collector's JSON-lines output.
pub fn items(text: &str, signal: Signal) -> Vec<Value> {
    let (resources_key, scopes_key, items_key) = match signal {
        Signal::Spans => ("resourceSpans", "scopeSpans", "spans"),
        Signal::Metrics => ("resourceMetrics", "scopeMetrics", "metrics"),
        Signal::Logs => ("resourceLogs", "scopeLogs", "logRecords"),
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue; // a line still being written
        };
        for rs in doc[resources_key].as_array().into_iter().flatten() {
            let resource = Value::Object(attrs(&rs["resource"]["attributes"]));
            for ss in rs[scopes_key].as_array().into_iter().flatten() {
                for item in ss[items_key].as_array().into_iter().flatten() {
                    match signal {
                        Signal::Spans => out.push(json!({
                            "name": item["name"], "trace_id": item["traceId"],
                            "attributes": attrs(&item["attributes"]), "resource": resource,
                        })),
                        Signal::Logs => out.push(json!({
                            "name": any_value(&item["body"]), "severity": item["severityText"],
                            "attributes": attrs(&item["attributes"]), "resource": resource,
                        })),
                        Signal::Metrics => {
                            for kind in ["sum", "gauge", "histogram"] {
                                for dp in item[kind]["dataPoints"].as_array().into_iter().flatten()
                                {
                                    let value = dp
                                        .get("asInt")
                                        .map(|v| any_value(&json!({"intValue": v})))
                                        .or_else(|| dp.get("asDouble").cloned())
                                        .or_else(|| dp.get("count").cloned())
                                        .unwrap_or(Value::Null);
                                    out.push(json!({
                                        "name": item["name"], "value": value,
                                        "attributes": attrs(&dp["attributes"]), "resource": resource,
                                    }));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LINES: &str = concat!(
        r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":[{"name":"GET /x","traceId":"t1","attributes":[{"key":"http.status","value":{"intValue":"200"}}]}]}]}]}"#,
        "\n",
        r#"{"resourceMetrics":[{"resource":{"attributes":[]},"scopeMetrics":[{"metrics":[{"name":"requests","sum":{"dataPoints":[{"asInt":"3","attributes":[{"key":"route","value":{"stringValue":"/x"}}]},{"asInt":"1"}]}}]}]}]}"#,
        "\n",
        r#"{"resourceLogs":[{"resource":{"attributes":[]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"started"},"severityText":"INFO"}]}]}]}"#,
        "\n",
        r#"{"resourceSpans":[ a line still being written"#,
    );

    #[test]
    fn spans_metrics_and_logs_become_flat_items() {
        let spans = items(LINES, Signal::Spans);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["name"], "GET /x");
        assert_eq!(lookup(&spans[0], "service.name"), Some(json!("api")));
        assert_eq!(lookup(&spans[0], "http.status"), Some(json!(200)));

        let points = items(LINES, Signal::Metrics);
        assert_eq!(points.len(), 2, "one item per data point");
        assert_eq!(points[0]["value"], json!(3));
        assert_eq!(lookup(&points[0], "route"), Some(json!("/x")));

        let logs = items(LINES, Signal::Logs);
        assert_eq!(logs[0]["name"], "started");
        assert_eq!(lookup(&logs[0], "nothing"), None);
    }
}
