//! The fault proxy against Toxiproxy, in one run, on loopback: both are driven through the
//! same Toxiproxy HTTP API (harness's `Control` served on its own runtime in this process;
//! `toxiproxy-server` 2.12.0 as a process), with the same upstream servers and payloads.
//!
//! - `fault_proxy/throughput/*`: 16 connections at once, each pulling 4 MiB that the upstream
//!   writes, through the proxy with no toxic (criterion reports bytes per second).
//! - `fault_proxy/round_trip/*`: 32 connections at once, each sending 64-byte pings that the
//!   upstream echoes, one at a time, with no toxic and with a 10 ms latency toxic.
//! - After criterion, a percentile pass prints the added latency (p50 and p99 through the
//!   proxy, minus the same percentile going direct) for each case, as a table for
//!   docs/benchmarks.md.
//!
//! `.ci/run` builds toxiproxy-server into `$HARNESS_HOME/tools/toxiproxy-2.12.0`.

use std::{
    net::SocketAddr,
    process::Child,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use harness_engine::faults::api::{Control, ControlServer};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};

const PULL: usize = 4 << 20;
const PULLERS: usize = 16;
const PINGERS: usize = 32;
const PINGS: usize = 50;
const PING: usize = 64;

fn runtime(threads: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes PULL bytes to each connection, then closes it.
async fn source() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        while let Ok((mut s, _)) = l.accept().await {
            let chunk = chunk.clone();
            tokio::spawn(async move {
                let mut left = PULL;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

/// Echoes each connection.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn pull_all(addr: SocketAddr) {
    let tasks: Vec<_> = (0..PULLERS)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                while got < PULL {
                    match s.read(&mut buf).await.expect("read") {
                        0 => break,
                        n => got += n,
                    }
                }
                assert_eq!(got, PULL, "short read through {addr}");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("puller");
    }
}

/// Every round trip of PINGERS connections doing PINGS pings each.
async fn ping_all(addr: SocketAddr) -> Vec<Duration> {
    let tasks: Vec<_> = (0..PINGERS)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let ping = [1u8; PING];
                let mut back = [0u8; PING];
                let mut times = Vec::with_capacity(PINGS);
                for _ in 0..PINGS {
                    let t = Instant::now();
                    s.write_all(&ping).await.expect("write");
                    s.read_exact(&mut back).await.expect("read");
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("pinger"));
    }
    all
}

/// A Toxiproxy API to create proxies on, and what keeps its server alive.
enum Server {
    /// Held for their lifetime: the proxies, the API, the runtime they run on.
    Harness {
        _control: Arc<Control>,
        _server: ControlServer,
        _rt: Runtime,
    },
    Toxiproxy(Child),
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Toxiproxy(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(which: &str, load: &Runtime) -> (String, Server) {
    if which == "harness" {
        // Its own runtime of two workers, as the Go server gets both cores.
        let rt = runtime(2);
        let control = Control::new(1);
        let server = rt
            .block_on({
                let c = Arc::clone(&control);
                async move { c.serve("127.0.0.1:0".parse().expect("addr")).await }
            })
            .expect("serve");
        let url = server.url();
        (
            url,
            Server::Harness {
                _control: control,
                _server: server,
                _rt: rt,
            },
        )
    } else {
        let (url, child) = load.block_on(harness_benches::toxiproxy());
        (url, Server::Toxiproxy(child))
    }
}

async fn latency(http: &reqwest::Client, api: &str, name: &str, ms: u64) {
    let r = http
        .post(format!("{api}/proxies/{name}/toxics"))
        .json(&json!({"type": "latency", "attributes": {"latency": ms}}))
        .send()
        .await
        .expect("toxic");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // The load: its own runtime.
    let rt = runtime(2);
    let http = reqwest::Client::new();
    let (src, ech) = rt.block_on(async { (source().await, echo().await) });
    let mut targets = Vec::new();
    for which in ["harness", "toxiproxy"] {
        let (api, server) = start(which, &rt);
        let (pull, ping, slow) = rt.block_on(async {
            let pull = harness_benches::proxy(&http, &api, "pull", src).await;
            let ping = harness_benches::proxy(&http, &api, "ping", ech).await;
            let slow = harness_benches::proxy(&http, &api, "slow", ech).await;
            latency(&http, &api, "slow", 10).await;
            (pull, ping, slow)
        });
        targets.push((which, server, pull, ping, slow));
    }

    let mut group = c.benchmark_group("fault_proxy/throughput");
    group
        .throughput(Throughput::Bytes((PULL * PULLERS) as u64))
        .sample_size(20);
    group.bench_function("direct", |b| b.to_async(&rt).iter(|| pull_all(src)));
    for (which, _, pull, _, _) in &targets {
        let pull = *pull;
        group.bench_function(*which, |b| b.to_async(&rt).iter(|| pull_all(pull)));
    }
    group.finish();

    let mut group = c.benchmark_group("fault_proxy/round_trip");
    group.sample_size(20);
    group.bench_function("direct", |b| b.to_async(&rt).iter(|| ping_all(ech)));
    for (which, _, _, ping, slow) in &targets {
        let (ping, slow) = (*ping, *slow);
        group.bench_function(format!("{which}/no_toxic"), |b| {
            b.to_async(&rt).iter(|| ping_all(ping))
        });
        group.bench_function(format!("{which}/latency_10ms"), |b| {
            b.to_async(&rt).iter(|| ping_all(slow))
        });
    }
    group.finish();

    // Percentiles: every round trip of 20 rounds of 32 × 50 pings per case.
    let sample = |addr: SocketAddr| {
        let mut all = Vec::new();
        for _ in 0..20 {
            all.extend(rt.block_on(ping_all(addr)));
        }
        all.sort();
        all
    };
    let direct = sample(ech);
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    println!("\nround trips: {PINGERS} connections x {PINGS} pings of {PING} bytes, 20 rounds");
    println!("direct: p50 {:.3} ms, p99 {:.3} ms", ms(d50), ms(d99));
    println!("| proxy | toxic | p50 | p99 | added p50 | added p99 |");
    println!("|---|---|---|---|---|---|");
    for (which, _, _, ping, slow) in &targets {
        for (toxic, addr, floor) in [
            ("none", *ping, Duration::ZERO),
            ("latency 10 ms", *slow, Duration::from_millis(10)),
        ] {
            let s = sample(addr);
            let (p50, p99) = (percentile(&s, 0.5), percentile(&s, 0.99));
            println!(
                "| {which} | {toxic} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
                ms(p50),
                ms(p99),
                ms(p50.saturating_sub(d50 + floor)),
                ms(p99.saturating_sub(d99 + floor)),
            );
        }
    }
    c.final_summary();
    drop(targets);
}
