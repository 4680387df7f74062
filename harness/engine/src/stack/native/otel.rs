//! The OpenTelemetry Collector: OTLP gRPC and HTTP in, JSON lines out to a file in the run
//! folder, which [`CollectorOutput`] reads back.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    error::{Error, IoContext},
    secret::random_id,
    stack::readiness::Probe,
};

/// How to reach the stack's collector.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OtelEndpoint {
    /// `127.0.0.1:port` for OTLP/gRPC.
    pub otlp_grpc: String,
    /// `http://127.0.0.1:port` for OTLP/HTTP (`/v1/traces`, `/v1/metrics`, `/v1/logs`).
    pub otlp_http: String,
    pub health_url: String,
    /// The JSON-lines file the collector writes everything it receives to.
    pub output_file: PathBuf,
    /// The configuration the collector runs with.
    #[serde(default)]
    pub config_file: PathBuf,
}

impl OtelEndpoint {
    pub fn output(&self) -> CollectorOutput {
        CollectorOutput {
            path: self.output_file.clone(),
        }
    }

    /// Sends one span over OTLP/HTTP JSON.
    pub async fn send_span(&self, service: &str, name: &str, trace_id: &str) -> Result<(), Error> {
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_id, "spanId": &trace_id[..16], "name": name, "kind": 1,
                "startTimeUnixNano": "1", "endTimeUnixNano": "2"
            }]}]
        }]});
        reqwest::Client::new()
            .post(format!("{}/v1/traces", self.otlp_http))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// One span the collector received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    pub service_name: Option<String>,
    pub name: String,
    pub trace_id: String,
}

/// Reads what the collector has written so far.
#[derive(Clone, Debug)]
pub struct CollectorOutput {
    path: PathBuf,
}

impl CollectorOutput {
    pub fn spans(&self) -> Result<Vec<ReceivedSpan>, Error> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.path.display()), e)),
        };
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(doc) = serde_json::from_str::<Value>(line) else {
                continue; // a line still being written
            };
            for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                let service_name = rs["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .and_then(|a| a["value"]["stringValue"].as_str())
                    .map(str::to_owned);
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        out.push(ReceivedSpan {
                            service_name: service_name.clone(),
                            name: span["name"].as_str().unwrap_or_default().to_owned(),
                            trace_id: span["traceId"].as_str().unwrap_or_default().to_owned(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Exports one span and waits to find it in the collector's output.
#[derive(Debug)]
pub struct Ping {
    endpoint: OtelEndpoint,
    trace_id: String,
    sent: AtomicBool,
}

impl Ping {
    /// A ping that exports one span with a fresh trace id.
    pub(crate) fn new(endpoint: OtelEndpoint) -> Self {
        Ping {
            endpoint,
            trace_id: format!(
                "{:0>32}",
                random_id(32).replace(|c: char| !c.is_ascii_hexdigit(), "0")
            ),
            sent: AtomicBool::new(false),
        }
    }

    pub async fn check(&self) -> Result<(), String> {
        if !self.sent.load(Ordering::SeqCst) {
            self.endpoint
                .send_span("harness-readiness", "readiness", &self.trace_id)
                .await
                .map_err(|e| e.to_string())?;
            self.sent.store(true, Ordering::SeqCst);
        }
        // Off the async threads: the file grows with everything the stack exports.
        let output = self.endpoint.output();
        let spans = tokio::task::spawn_blocking(move || output.spans())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if spans.iter().any(|s| s.trace_id == self.trace_id) {
            Ok(())
        } else {
            Err("the readiness span has not reached the output file yet".into())
        }
    }
}

/// The versioned collector configuration (`infra/otel/collector.yaml`).
pub const COLLECTOR_CONFIG: &str = include_str!("../../../assets/otel/collector.yaml");

/// The configuration to run: `HARNESS_OTEL_CONFIG` when set, else the versioned one.
pub(crate) fn config_text() -> Result<String, Error> {
    match std::env::var_os("HARNESS_OTEL_CONFIG") {
        Some(path) => std::fs::read_to_string(&path)
            .ctx(|| format!("read HARNESS_OTEL_CONFIG {}", Path::new(&path).display())),
        None => Ok(COLLECTOR_CONFIG.to_owned()),
    }
}

impl Probe for Ping {
    fn describe(&self) -> String {
        "collector protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
