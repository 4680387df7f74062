//! Benchmarks only; see `benches/`. What benchmarks share: the reference
//! `toxiproxy-server` they measure against, and the restore benchmarks' knobs, data and
//! medians.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;

/// `toxiproxy-server` 2.12.0, as `.ci/run` builds it into `$HARNESS_HOME/tools`.
pub fn toxiproxy_server() -> PathBuf {
    let home = std::env::var_os("HARNESS_HOME").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/harness"),
        PathBuf::from,
    );
    let bin = home.join("tools/toxiproxy-2.12.0/server");
    assert!(
        bin.is_file(),
        "{} is missing: `bash .ci/run --setup-only` builds it",
        bin.display()
    );
    bin
}

/// A free port of 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `toxiproxy-server` on 127.0.0.1 and waits for its API; returns the API's URL and
/// the process (the caller kills it).
pub async fn toxiproxy() -> (String, Child) {
    let port = free_port();
    let child = Command::new(toxiproxy_server())
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("toxiproxy-server");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/version")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (url, child)
}

/// Creates a toxiproxy proxy from a free port of 127.0.0.1 to `upstream`; returns where it
/// listens.
pub async fn proxy(
    http: &reqwest::Client,
    api: &str,
    name: &str,
    upstream: SocketAddr,
) -> SocketAddr {
    let r: serde_json::Value = http
        .post(format!("{api}/proxies"))
        .json(&json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    r["listen"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {r}"))
}

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `INSERT INTO t` of rows `from..=to` of the restore benchmarks' table: about 300 bytes a
/// row, 256 of them hex digits that compress about 2:1.
pub fn fill_sql(from: u64, to: u64) -> String {
    format!(
        "INSERT INTO t SELECT g, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) \
         || md5((g + 3)::text) || md5(random()::text) || md5(random()::text) \
         || md5(random()::text) || md5(random()::text) FROM generate_series({from}, {to}) g"
    )
}
