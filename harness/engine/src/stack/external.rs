//! The external provider: attach to a stack someone else started (`docker compose up`, a
//! shared environment) from an endpoints file or a compose file's `x-harness` key. harness
//! checks each service answers, records the stack so that `harness run --attach` can use
//! it, and never stops or changes it: `harness down` forgets the record only.
//!
//! Guard: every endpoint must be on a loopback address unless remote targets are allowed
//! explicitly, so a stray file cannot point a run at a shared or production system.

use std::{
    net::ToSocketAddrs,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use super::{Endpoints, ProviderKind, state::RunRecord};
use crate::{
    error::{Error, IoContext},
    secret::random_id,
};

/// Reads the endpoints from `path`: a compose file with an `x-harness` key, the output of
/// `harness up --json`, or a plain endpoints document (YAML or JSON). `${VAR}`,
/// `${VAR:-default}` and `${VAR:?message}` are read from the environment, as compose does,
/// and relative paths are taken from the file's folder.
pub fn load(path: &Path) -> Result<Endpoints, Error> {
    let bad = |m: String| Error::BadInput(format!("read endpoints from {}: {m}", path.display()));
    let text = std::fs::read_to_string(path).ctx(|| format!("read {}", path.display()))?;
    let node = harness_scenario::yaml::parse(&text)
        .map_err(|problems| {
            bad(problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; "))
        })?
        .ok_or_else(|| bad("the file is empty".into()))?;
    let doc = node.to_json();
    let mut endpoints = if let Some(x) = doc.get("x-harness") {
        x.clone()
    } else if doc.get("services").is_some() && doc.get("run_id").is_some() {
        doc["services"].clone()
    } else if doc.get("services").is_some() {
        return Err(bad(
            "this compose file has no `x-harness` key saying how to reach its services \
             (see infra/compose/compose.yaml)"
                .into(),
        ));
    } else {
        doc
    };
    interpolate(&mut endpoints).map_err(bad)?;
    let base = path.parent().unwrap_or(Path::new("."));
    complete(&mut endpoints, base);
    serde_json::from_value::<Endpoints>(endpoints).map_err(|e| bad(e.to_string()))
}

/// Expands `${…}` in every string.
fn interpolate(value: &mut Value) -> Result<(), String> {
    match value {
        Value::String(s) => *s = expand(s)?,
        Value::Array(items) => items.iter_mut().try_for_each(interpolate)?,
        Value::Object(map) => map.values_mut().try_for_each(interpolate)?,
        _ => {}
    }
    Ok(())
}

fn expand(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let expr = &after[..end];
        let (name, op, arg) = match expr.find([':', '-', '?']) {
            Some(i) if expr[i..].starts_with(":-") => (&expr[..i], "-", &expr[i + 2..]),
            Some(i) if expr[i..].starts_with(":?") => (&expr[..i], "?", &expr[i + 2..]),
            Some(i) if expr[i..].starts_with('-') => (&expr[..i], "-", &expr[i + 1..]),
            Some(i) if expr[i..].starts_with('?') => (&expr[..i], "?", &expr[i + 1..]),
            _ => (expr, "", ""),
        };
        let value = std::env::var(name).ok().filter(|v| !v.is_empty());
        match (value, op) {
            (Some(v), _) => out.push_str(&v),
            (None, "-") => out.push_str(arg),
            (None, "?") => return Err(format!("{name} is not set: {arg}")),
            (None, _) => return Err(format!("{name} is not set (used in `{text}`)")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills in what the file may leave out: numeric ports, the postgres URL, absolute paths.
fn complete(endpoints: &mut Value, base: &Path) {
    if let Some(pg) = endpoints.get_mut("postgres").and_then(Value::as_object_mut) {
        if let Some(port) = pg
            .get("port")
            .and_then(Value::as_str)
            .and_then(|p| p.parse::<u16>().ok())
        {
            pg.insert("port".into(), Value::from(port));
        }
        for (key, default) in [("user", "postgres"), ("database", "postgres")] {
            pg.entry(key).or_insert_with(|| Value::from(default));
        }
        if !pg.contains_key("url") {
            let get = |k: &str| match pg.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let url = format!(
                "postgres://{}:{}@{}:{}/{}",
                get("user"),
                get("password"),
                get("host"),
                get("port"),
                get("database")
            );
            pg.insert("url".into(), Value::from(url));
        }
    }
    if let Some(otel) = endpoints.get_mut("otel").and_then(Value::as_object_mut) {
        for key in ["output_file", "config_file"] {
            if let Some(p) = otel.get(key).and_then(Value::as_str) {
                let path = PathBuf::from(p);
                if path.is_relative() {
                    let abs = base.join(path);
                    let abs = abs.canonicalize().unwrap_or(abs);
                    otel.insert(key.into(), Value::from(abs.display().to_string()));
                }
            }
        }
    }
}

/// Every host:port the endpoints name.
fn addresses(e: &Endpoints) -> Vec<String> {
    let strip = |url: &str| {
        let rest = url.split("://").nth(1).unwrap_or(url);
        rest.split('/').next().unwrap_or(rest).to_owned()
    };
    let mut out = Vec::new();
    if let Some(pg) = &e.postgres {
        out.push(format!("{}:{}", pg.host, pg.port));
    }
    if let Some(s3) = &e.s3 {
        out.push(strip(&s3.endpoint_url));
    }
    if let Some(n) = &e.neo4j {
        out.push(strip(&n.bolt_url));
    }
    if let Some(o) = &e.otel {
        out.push(o.otlp_grpc.clone());
        out.push(strip(&o.otlp_http));
    }
    out
}

/// Refuses endpoints off this machine unless `allow_remote`.
pub fn guard(e: &Endpoints, allow_remote: bool) -> Result<(), Error> {
    if allow_remote {
        return Ok(());
    }
    for address in addresses(e) {
        let resolved: Vec<_> = address
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        if resolved.is_empty() || resolved.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Error::BadInput(format!(
                "attach: {address} is not a loopback address; harness attaches only to \
                 services on this machine unless you pass --allow-remote (and mean it)"
            )));
        }
    }
    Ok(())
}

/// Whether the stack still answers (a TCP connect to every address).
pub async fn answers(e: &Endpoints) -> bool {
    let addresses = addresses(e);
    if addresses.is_empty() {
        return false;
    }
    for address in addresses {
        let connect = tokio::net::TcpStream::connect(address);
        if !matches!(
            tokio::time::timeout(Duration::from_secs(2), connect).await,
            Ok(Ok(_))
        ) {
            return false;
        }
    }
    true
}

/// Checks that each service really answers: a query, a bucket listing, a Bolt round trip,
/// the collector's health check. Nothing is written.
pub async fn check(e: &Endpoints, timeout: Duration) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match probe(e).await {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Other(format!(
                    "attach: the external stack does not answer: {why}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn probe(e: &Endpoints) -> Result<(), String> {
    if let Some(pg) = &e.postgres {
        let pool = pg.pool().await.map_err(|x| format!("postgres: {x}"))?;
        sqlx::query("SELECT 1")
            .execute(&pool)
            .await
            .map_err(|x| format!("postgres: {x}"))?;
        pool.close().await;
    }
    if let Some(s3) = &e.s3 {
        s3.client()
            .list_buckets()
            .send()
            .await
            .map_err(|x| format!("s3: {}", aws_sdk_s3::error::DisplayErrorContext(x)))?;
    }
    if let Some(n) = &e.neo4j {
        let graph = n.graph().map_err(|x| format!("neo4j: {x}"))?;
        graph
            .run(neo4rs::query("RETURN 1"))
            .await
            .map_err(|x| format!("neo4j: {x}"))?;
    }
    if let Some(o) = &e.otel {
        let status = reqwest::get(&o.health_url)
            .await
            .map_err(|x| format!("otel: {x}"))?
            .status();
        if !status.is_success() {
            return Err(format!("otel: health check answered {status}"));
        }
    }
    Ok(())
}

/// Records an external stack that answers, as a detached run `harness run --attach` can use.
pub async fn attach(path: &Path, allow_remote: bool) -> Result<RunRecord, Error> {
    let endpoints = load(path)?;
    guard(&endpoints, allow_remote)?;
    check(&endpoints, Duration::from_secs(30)).await?;
    let record = RunRecord {
        run_id: format!("external-{}", random_id(6)),
        owner_pid: std::process::id(),
        detached: true,
        provider: ProviderKind::External,
        endpoints,
        ..RunRecord::default()
    };
    record.save()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_defaults_and_refuses_missing_required_values() {
        assert_eq!(
            expand("p=${HARNESS_TEST_UNSET_VAR:-55432}").as_deref(),
            Ok("p=55432")
        );
        let err = expand("${HARNESS_TEST_UNSET_VAR:?set it}").expect_err("a required value");
        assert!(err.contains("set it"), "{err}");
        assert!(expand("${HARNESS_TEST_UNSET_VAR}").is_err());
        assert!(expand("${OPEN").is_err());
    }
}
