//! Time from `start()` to every readiness check passing, per service and for the whole
//! stack, and Postgres from the cached data directory against a plain initdb + start (the
//! reference a hand-written test fixture would use).

use std::{process::Command, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use harness_engine::{
    runtimes::{self, RuntimeKind, postgres_bin_dir},
    stack::Stack,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn ready(c: &mut Criterion) {
    let rt = runtime();
    rt.block_on(runtimes::ensure(
        &RuntimeKind::ALL,
        false,
        &harness_engine::progress::silent(),
    ))
    .expect("runtimes installed");
    let mut group = c.benchmark_group("ready");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for kind in RuntimeKind::ALL {
        group.bench_function(kind.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = std::time::Instant::now();
                    let stack = Stack::builder().service(kind).start().await.expect("start");
                    total += t.elapsed();
                    stack.shutdown().await;
                }
                total
            })
        });
    }
    group.bench_function("whole_stack", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                let stack = Stack::builder().all().start().await.expect("start");
                total += t.elapsed();
                stack.shutdown().await;
            }
            total
        })
    });
    group.finish();
}

/// The reference: initdb into a fresh folder, start, wait for pg_isready.
fn postgres_plain_initdb(c: &mut Criterion) {
    let bin = postgres_bin_dir();
    let mut group = c.benchmark_group("postgres_reference");
    group.sample_size(10);
    group.bench_function("initdb_then_start", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
            let data = dir.path().join("data");
            let as_nobody = |cmd: &mut Command| {
                std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).ok();
                use std::os::unix::process::CommandExt;
                cmd.uid(65534).gid(65534);
            };
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data);
            as_nobody(&mut initdb);
            assert!(initdb.output().expect("initdb").status.success());
            let port = harness_engine::stack::ports::free_port().expect("port");
            let mut pg = Command::new(bin.join("postgres"));
            pg.arg("-D")
                .arg(&data)
                .args(["-c", "listen_addresses=127.0.0.1", "-c"])
                .arg(format!("port={port}"))
                .args(["-c"])
                .arg(format!("unix_socket_directories={}", dir.path().display()))
                .args(["-c", "fsync=off"]);
            as_nobody(&mut pg);
            let mut child = pg
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("postgres");
            loop {
                let ok = Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .expect("pg_isready");
                if ok.success() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = interrupt(child.id());
            let _ = child.wait();
        })
    });
    group.finish();
}

/// Fast shutdown (SIGINT), so Postgres releases its shared memory.
fn interrupt(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .arg("-INT")
        .arg(pid.to_string())
        .status()
        .map(|_| ())
}

criterion_group!(benches, ready, postgres_plain_initdb);
criterion_main!(benches);
