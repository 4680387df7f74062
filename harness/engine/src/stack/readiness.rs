//! Readiness conditions. A service lists them in order; each must hold before the next is
//! tried, and all of them within the service's start-up timeout. The generic conditions
//! are a closed set (a log line, a TCP connect, an HTTP status); a protocol round trip
//! that does real work is a [`Probe`] the service itself provides, so this module knows
//! no service.

use std::{path::Path, time::Duration};

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::{error::Error, fsutil};

/// A protocol round trip that proves a service works (a query, a bucket round trip, a
/// Bolt `RETURN 1`, an exported span read back). Each service's module implements it.
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// What is checked, for messages ("postgres protocol round trip").
    fn describe(&self) -> String;
    /// One attempt; `Err` says why it did not pass yet.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

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
    Ping(Box<dyn Probe>),
}

impl WaitFor {
    pub(crate) fn describe(&self) -> String {
        match self {
            WaitFor::LogLine(text) => format!("log line containing `{text}`"),
            WaitFor::LogAny(texts) => format!("log line containing one of {texts:?}"),
            WaitFor::Tcp(port) => format!("TCP connect to 127.0.0.1:{port}"),
            WaitFor::Http(url) => format!("HTTP 2xx from {url}"),
            WaitFor::Ping(p) => p.describe(),
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
            WaitFor::Ping(p) => p.check().await,
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

/// Waits for every condition in order, each within what is left of `timeout`, failing
/// early when the service exits.
pub async fn wait_all(
    service: &mut (dyn Watch + Send),
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
