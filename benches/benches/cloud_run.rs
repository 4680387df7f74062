//! The Cloud Run emulator, in one run, on loopback:
//!
//! - `cloud_run/deploy_to_ready`: one new revision of a service (a Python HTTP server,
//!   `fixtures/images/hello.py`), from the API call until the revision is Ready and serving.
//! - `cloud_run/request/direct` and `cloud_run/request/ingress`: one GET of `/version` on a
//!   kept-alive connection, straight to the instance and through the service's ingress.
//! - `cloud_run/split_50_50`: 200 GETs from 4 clients at once through a 50/50 split.
//! - After criterion, a percentile pass prints p50 and p99 of 2,500 GETs direct and 2,500 through
//!   the ingress, and through toxiproxy-server relaying to the instance (the reference),
//!   alternating, for docs/benchmarks.md (target: ingress p50 ≤ 1.2× direct p50).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use harness_engine::emulators::cloud_run::{
    CloudRun, Config,
    client::DeploySpec,
    images::{Image, Program},
};
use tokio::runtime::Runtime;

fn hello(version: &str) -> DeploySpec {
    DeploySpec {
        service: "hello".into(),
        image: "example/hello".into(),
        env: vec![("APP_VERSION".into(), version.into())],
        ..DeploySpec::default()
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

async fn times(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await.expect("get");
        let _ = r.bytes().await.expect("body");
        all.push(t.elapsed());
    }
    all
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let emulator = rt.block_on(async {
        let mut cfg = Config::new(dir.path().join("logs"));
        cfg.idle_timeout = Duration::from_secs(2);
        let c = CloudRun::start(cfg).await.expect("start");
        c.map_image(
            "example/hello",
            Image {
                program: Program::Command(vec!["python3".into(), "hello.py".into()]),
                env: Default::default(),
                dir: fixtures.clone(),
            },
        );
        Arc::new(c)
    });
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();

    let mut n = 0;
    c.bench_function("cloud_run/deploy_to_ready", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(async {
                let (_, after) = emulator
                    .deploy(&hello(&format!("v{n}")), Duration::from_secs(30))
                    .await
                    .expect("deploy");
                assert_eq!(
                    harness_engine::emulators::cloud_run::client::summary(&after)["ready"],
                    true
                );
            });
        });
    });

    // One revision serving, and its instance's own port.
    let (url, direct) = rt.block_on(async {
        // One instance kept (min 1), since requests straight to it do not keep it busy.
        let mut spec = hello("direct");
        spec.min_instances = Some(1);
        let (_, after) = emulator
            .deploy(&spec, Duration::from_secs(30))
            .await
            .expect("deploy");
        let rev = after["status"]["latestReadyRevisionName"]
            .as_str()
            .expect("ready")
            .to_owned();
        let port = emulator
            .events()
            .iter()
            .rev()
            .find(|e| e["event"] == "instance_started" && e["revision"] == rev.as_str())
            .and_then(|e| e["port"].as_u64())
            .expect("instance port");
        (
            format!("{}/version", emulator.service_url("hello").expect("url")),
            format!("http://127.0.0.1:{port}/version"),
        )
    });
    let client = reqwest::Client::new();
    let mut g = c.benchmark_group("cloud_run/request");
    for (name, target) in [("direct", &direct), ("ingress", &url)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = client.get(target.as_str()).send().await.expect("get");
                    let _ = r.bytes().await.expect("body");
                });
            });
        });
    }
    g.finish();

    // The reference: toxiproxy-server relaying TCP to the same instance, the floor of one
    // more hop on this machine (no HTTP parsing, no routing, no events).
    let (api, mut toxiproxy) = rt.block_on(harness_benches::toxiproxy());
    let relayed = rt.block_on(async {
        let port: u16 = direct
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/version")
            .parse()
            .expect("port");
        let at = harness_benches::proxy(
            &client,
            &api,
            "instance",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .await;
        format!("http://{at}/version")
    });
    // Alternating, so the machine's drift (a VM's neighbours, a frequency step) lands on
    // every path alike.
    let [d, t, i] = rt.block_on(async {
        let mut all: [Vec<Duration>; 3] = Default::default();
        for _ in 0..2500 {
            for (k, target) in [&direct, &relayed, &url].into_iter().enumerate() {
                all[k].extend(times(&client, target, 1).await);
            }
        }
        all
    });
    let _ = toxiproxy.kill();
    let _ = toxiproxy.wait();
    let (p50d, p99d) = (percentile(d.clone(), 0.5), percentile(d, 0.99));
    let (p50t, p99t) = (percentile(t.clone(), 0.5), percentile(t, 0.99));
    let (p50i, p99i) = (percentile(i.clone(), 0.5), percentile(i, 0.99));

    // A 50/50 split between this revision and a new one.
    rt.block_on(async {
        let before = emulator
            .get_service("hello")
            .await
            .expect("get")
            .expect("service");
        let old = before["status"]["latestReadyRevisionName"]
            .as_str()
            .expect("rev")
            .to_owned();
        let mut spec = hello("split");
        spec.no_traffic = true;
        let (_, after) = emulator
            .deploy(&spec, Duration::from_secs(30))
            .await
            .expect("deploy");
        let new = after["status"]["latestCreatedRevisionName"]
            .as_str()
            .expect("rev")
            .to_owned();
        emulator
            .set_traffic("hello", Duration::from_secs(30), |_, t| {
                *t = vec![
                    serde_json::json!({"revisionName": old, "percent": 50}),
                    serde_json::json!({"revisionName": new, "percent": 50}),
                ];
                Ok(())
            })
            .await
            .expect("split");
    });
    let mut g = c.benchmark_group("cloud_run/split_50_50");
    g.throughput(Throughput::Elements(200));
    g.bench_function("200_requests_4_clients", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (client, url) = (client.clone(), url.clone());
                        tokio::spawn(async move { times(&client, &url, 50).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("join");
                }
            });
        });
    });
    g.finish();
    c.final_summary();

    println!("\n| path | p50 | p99 |\n|---|---|---|");
    println!("| direct to the instance | {p50d:.2?} | {p99d:.2?} |");
    println!("| through toxiproxy-server (TCP relay) | {p50t:.2?} | {p99t:.2?} |");
    println!("| through the ingress | {p50i:.2?} | {p99i:.2?} |");
    let ratio = |a: Duration| a.as_secs_f64() / p50d.as_secs_f64();
    println!(
        "p50 ÷ direct p50: ingress {:.2}×, toxiproxy {:.2}×; added p50: ingress {:.1?}, toxiproxy {:.1?}",
        ratio(p50i),
        ratio(p50t),
        p50i.saturating_sub(p50d),
        p50t.saturating_sub(p50d),
    );
    rt.block_on(emulator.shutdown());
}
