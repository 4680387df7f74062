//! Readiness conditions. A service lists them in order; each must hold before the next is
//! tried, and all of them within the service's start-up timeout. This is the closed set:
//! a log line, a TCP connect, an HTTP status, or a protocol ping that does real work.

use std::{path::Path, time::Duration};

use tokio::time::Instant;

use super::{
    Endpoints, ServiceKind,
    native::{neo4j, object_store, otel, postgres, process::ServiceProcess},
};
use crate::{error::Error, fsutil};

/// One condition a starting service must meet.
#[derive(Debug)]
pub enum WaitFor {
    /// A line containing this text appears in the service's log.
    LogLine(&'static str),
    /// A line containing one of these texts appears (images that log differently).
    LogAny(&'static [&'static str]),
    /// A TCP connection to 127.0.0.1:port succeeds.
    Tcp(u16),
    /// A GET returns 2xx.
    Http(String),
    /// A protocol round trip succeeds.
    Ping(Ping),
}

/// Protocol round trips, one per service kind.
#[derive(Debug)]
pub enum Ping {
    Postgres(postgres::Ping),
    S3(object_store::Ping),
    Bolt(neo4j::Ping),
    Otlp(otel::Ping),
}

impl WaitFor {
    fn describe(&self) -> String {
        match self {
            WaitFor::LogLine(text) => format!("log line containing `{text}`"),
            WaitFor::LogAny(texts) => format!("log line containing one of {texts:?}"),
            WaitFor::Tcp(port) => format!("TCP connect to 127.0.0.1:{port}"),
            WaitFor::Http(url) => format!("HTTP 2xx from {url}"),
            WaitFor::Ping(p) => format!("{p:?}")
                .split('(')
                .next()
                .map_or_else(String::new, |k| format!("{k} protocol round trip")),
        }
    }

    async fn check(&self, log: &Path) -> Result<(), String> {
        match self {
            WaitFor::LogLine(text) => match tokio::fs::read_to_string(log).await {
                Ok(s) if s.contains(text) => Ok(()),
                _ => Err("not yet".into()),
            },
            WaitFor::LogAny(texts) => match tokio::fs::read_to_string(log).await {
                Ok(s) if texts.iter().any(|t| s.contains(t)) => Ok(()),
                _ => Err("not yet".into()),
            },
            WaitFor::Tcp(port) => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            WaitFor::Http(url) => match http_client()?.get(url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
            WaitFor::Ping(Ping::Postgres(p)) => p.check().await,
            WaitFor::Ping(Ping::S3(p)) => p.check().await,
            WaitFor::Ping(Ping::Bolt(p)) => p.check().await,
            WaitFor::Ping(Ping::Otlp(p)) => p.check().await,
        }
    }
}

/// An HTTP client for readiness checks: no proxy (every service is on 127.0.0.1) and a
/// time limit per request.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())
}

/// What readiness watches while a service starts: its log file and whether it has exited.
/// Both a native process and a container provide it.
pub trait Watch {
    fn name(&self) -> &str;
    fn log(&self) -> &Path;
    /// Whether the service has exited, with its status.
    fn exited(&mut self) -> Option<String>;
}

impl Watch for ServiceProcess {
    fn name(&self) -> &str {
        self.name
    }
    fn log(&self) -> &Path {
        &self.log
    }
    fn exited(&mut self) -> Option<String> {
        ServiceProcess::exited(self)
    }
}

/// Waits for every condition in order, failing early when the process exits. A service
/// that does not become ready is stopped before the error is returned.
pub async fn wait_ready(
    process: &mut ServiceProcess,
    conditions: &[WaitFor],
    timeout: Duration,
) -> Result<(), Error> {
    let result = wait_all(process, conditions, timeout).await;
    if result.is_err() {
        process.stop(Duration::from_secs(2)).await;
    }
    result
}

/// Waits for every condition in order, each within what is left of `timeout`, failing
/// early when the service exits.
pub async fn wait_all(
    service: &mut dyn Watch,
    conditions: &[WaitFor],
    timeout: Duration,
) -> Result<(), Error> {
    let started = Instant::now();
    let deadline = started + timeout;
    for condition in conditions {
        let mut delay = Duration::from_millis(5);
        loop {
            // One attempt may not outlast the deadline (a ping that hangs on a half-open
            // connection would otherwise hold the start-up past its timeout).
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(left, condition.check(service.log()));
            let last = match attempt.await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => e,
                Err(_) => "the attempt did not finish before the deadline".to_owned(),
            };
            if let Some(status) = service.exited() {
                return Err(Error::ServiceExited {
                    service: service.name().to_owned(),
                    status,
                    log: service.log().to_owned(),
                    tail: fsutil::tail(service.log(), 12),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::ReadinessTimeout {
                    service: service.name().to_owned(),
                    condition: format!("{} (last: {last})", condition.describe()),
                    waited_ms: started.elapsed().as_millis(),
                    log: service.log().to_owned(),
                    tail: fsutil::tail(service.log(), 12),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The conditions a restarted service must meet again, on either provider (its
/// credentials are already set, so Postgres is checked over TCP only).
pub fn restart_conditions(kind: ServiceKind, endpoints: &Endpoints) -> Vec<WaitFor> {
    match kind {
        ServiceKind::Postgres => endpoints
            .postgres
            .iter()
            .map(|ep| WaitFor::Ping(Ping::Postgres(postgres::Ping::tcp(ep.clone()))))
            .collect(),
        ServiceKind::S3 => endpoints
            .s3
            .iter()
            .map(|ep| WaitFor::Ping(Ping::S3(object_store::Ping::new(ep.clone()))))
            .collect(),
        ServiceKind::Neo4j => endpoints
            .neo4j
            .iter()
            .map(|ep| WaitFor::Ping(Ping::Bolt(neo4j::Ping::new(ep.clone()))))
            .collect(),
        ServiceKind::Otel => endpoints
            .otel
            .iter()
            .flat_map(|ep| {
                [
                    WaitFor::Http(ep.health_url.clone()),
                    WaitFor::Ping(Ping::Otlp(otel::Ping::new(ep.clone()))),
                ]
            })
            .collect(),
    }
}
