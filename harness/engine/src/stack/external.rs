//! The external provider: attach to a stack someone else started (`docker compose up`, a
//! shared environment) from an endpoints file or a compose file's `x-harness` key. harness
//! checks each service answers, records the stack so that `harness run --attach` can use
//! it, and never stops or changes it: `harness down` forgets the record only.
//!
//! Guard: every endpoint must be on a loopback address unless remote targets are allowed
//! explicitly, so a stray file cannot point a run at a shared or production system.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use super::{Endpoints, ProviderKind, records::RunRecord};
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

/// Every URL and host:port the endpoints name, each as a URL: the guard checks all of
/// them, including the ones a client would use instead of the host and port fields.
fn urls(e: &Endpoints) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pg) = &e.postgres {
        out.push(format!("tcp://{}:{}", pg.host, pg.port));
        out.push(pg.url.expose().to_owned());
    }
    if let Some(s3) = &e.s3 {
        out.push(s3.endpoint_url.clone());
    }
    if let Some(n) = &e.neo4j {
        out.push(n.bolt_url.clone());
    }
    if let Some(o) = &e.otel {
        out.push(format!("tcp://{}", o.otlp_grpc));
        out.push(o.otlp_http.clone());
        out.push(o.health_url.clone());
    }
    out
}

/// Every host:port the endpoints name (for the liveness check).
fn addresses(e: &Endpoints) -> Vec<String> {
    urls(e)
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .collect()
}

/// Whether a URL's host is this machine without asking DNS: a loopback IP literal or
/// `localhost`. A name that needs DNS is not, because its answer can change between this
/// check and the connection (DNS rebinding).
fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // URLs of schemes the URL standard does not know (postgres:, bolt:) keep IP
        // literals as text.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// Refuses endpoints off this machine unless `allow_remote`. Credentials never appear in
/// the message.
pub fn guard(e: &Endpoints, allow_remote: bool) -> Result<(), Error> {
    if allow_remote {
        return Ok(());
    }
    for url in urls(e) {
        if !is_loopback(&url) {
            let shown = url::Url::parse(&url)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
                .unwrap_or_else(|| "an endpoint that is not a URL".into());
            return Err(Error::BadInput(format!(
                "attach: {shown} is not a loopback address (127.0.0.1, ::1 or localhost); \
                 harness attaches only to services on this machine unless you pass \
                 --allow-remote (and mean it)"
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
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|x| format!("otel: {x}"))?;
        let status = client
            .get(&o.health_url)
            .send()
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
        allow_remote,
        endpoints,
        ..RunRecord::default()
    };
    record.save()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        secret::Secret,
        stack::{OtelEndpoint, PostgresEndpoint},
    };

    fn local() -> Endpoints {
        Endpoints {
            postgres: Some(PostgresEndpoint::local(5432, Secret::new("pw"))),
            otel: Some(OtelEndpoint {
                otlp_grpc: "127.0.0.1:4317".into(),
                otlp_http: "http://127.0.0.1:4318".into(),
                health_url: "http://localhost:13133/".into(),
                output_file: PathBuf::new(),
                config_file: PathBuf::new(),
            }),
            ..Endpoints::default()
        }
    }

    #[test]
    fn the_guard_checks_every_url_not_only_host_and_port() {
        assert!(guard(&local(), false).is_ok());
        let mut e = local();
        if let Some(pg) = e.postgres.as_mut() {
            // host and port say loopback, the URL a client uses says otherwise
            pg.url = Secret::new("postgres://postgres:pw@10.1.2.3:5432/postgres".to_owned());
        }
        let err = guard(&e, false).expect_err("a remote postgres url");
        assert!(err.to_string().contains("10.1.2.3:5432"), "{err}");
        assert!(
            !err.to_string().contains("pw@"),
            "no credentials in the message"
        );
        assert!(guard(&e, true).is_ok(), "--allow-remote lets it through");
        let mut e = local();
        if let Some(o) = e.otel.as_mut() {
            o.health_url = "http://192.168.0.7:13133/".into();
        }
        assert!(guard(&e, false).is_err(), "a remote health url");
    }

    #[test]
    fn names_that_need_dns_are_refused() {
        let mut e = local();
        if let Some(o) = e.otel.as_mut() {
            // resolves to loopback today, and to anything tomorrow
            o.otlp_http = "http://localtest.me:4318".into();
        }
        assert!(guard(&e, false).is_err());
        assert!(is_loopback("http://[::1]:80/"));
        assert!(is_loopback("postgres://u:p@127.0.0.1:5432/db"));
        assert!(!is_loopback("postgres://u:p@10.0.0.1:5432/db"));
        assert!(!is_loopback("bolt://127.0.0.1.example.com:7687"));
        assert!(is_loopback("bolt://LOCALHOST:7687"));
        assert!(!is_loopback("not a url"));
    }

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
