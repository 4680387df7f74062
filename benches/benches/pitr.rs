//! A point-in-time restore against the same steps done by hand, on the same base backup and
//! WAL, alternating which goes first:
//!
//! - by hand: `cp -a` of the base backup and the WAL archive into a fresh folder owned by
//!   the server's user, `recovery.signal`, `pg_ctl start -w` with `restore_command` and
//!   the target, then `SELECT pg_is_in_recovery()` until it says false;
//! - harness: `drills::physical::restore` (the `restore` step's work: the same copies, a
//!   fresh instance started the way the native provider starts Postgres, and the wait for
//!   its promotion).
//!
//! The data: a table of `HARNESS_BENCH_PITR_MB` MB (default 100) in the base backup, then
//! as much again written after it, so the replay has WAL to apply; the target is the end of
//! the WAL. `HARNESS_BENCH_PITR_RUNS` restores per side (default 5). The medians and their
//! ratio go to docs/benchmarks.md (target: harness ≤ 1.1× by hand). A plain timing loop,
//! not criterion: one sample is seconds long.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use harness_benches::{env_num, fill_sql, median};
use harness_engine::{
    drills::{
        Provider,
        physical::{self, Receiver, Target},
    },
    runtimes::{self, RuntimeKind, postgres_bin_dir},
    stack::{
        Stack,
        native::{postgres::PostgresEndpoint, user::ServiceUser},
    },
};
use sqlx::postgres::PgPoolOptions;

/// The rows of about `mb` MB into `t`.
async fn fill(pg: &PostgresEndpoint, mb: u64, from: u64) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pg.connect_options().database("pitr_src"))
        .await
        .expect("connect");
    let rows = mb * 1_000_000 / 300;
    sqlx::query(&fill_sql(from, from + rows))
        .execute(&pool)
        .await
        .expect("rows");
    pool.close().await;
}

/// The restore by hand, as an SRE would type it; the time to a promoted server.
fn by_hand(base: &std::path::Path, wal: &std::path::Path, dir: &std::path::Path) -> Duration {
    let user = ServiceUser::for_postgres().expect("user");
    let owner = user
        .ids()
        .map(|(u, g)| format!("{u}:{g}"))
        .unwrap_or_default();
    let run = |cmd: &mut Command| {
        let ok = cmd.status().expect("run");
        assert!(ok.success(), "{cmd:?}");
    };
    let t = Instant::now();
    std::fs::create_dir_all(dir).expect("dir");
    run(Command::new("cp").arg("-a").arg(base).arg(dir.join("data")));
    run(Command::new("cp").arg("-a").arg(wal).arg(dir.join("wal")));
    std::fs::write(dir.join("data/recovery.signal"), "").expect("signal");
    if !owner.is_empty() {
        run(Command::new("chown").arg("-R").arg(&owner).arg(dir));
    }
    let port = harness_engine::stack::ports::free_port().expect("port");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
         -c restore_command='cp {}/%f %p' -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c shared_buffers=32MB -c max_connections=200",
        dir.display(),
        dir.join("wal").display()
    );
    let mut start = Command::new(postgres_bin_dir().join("pg_ctl"));
    start
        .args(["-w", "-t", "300", "-D"])
        .arg(dir.join("data"))
        .args(["-l"])
        .arg(dir.join("log"))
        .args(["-o", &options, "start"]);
    user.apply(&mut start);
    let ok = start.status().expect("pg_ctl");
    assert!(
        ok.success(),
        "pg_ctl start: {}",
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
    // Promoted: a query over the socket says the server left recovery.
    loop {
        let mut q = Command::new(postgres_bin_dir().join("psql"));
        q.args(["-qtAX", "-h"])
            .arg(dir)
            .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-c", "SELECT pg_is_in_recovery()"]);
        user.apply(&mut q);
        let out = q.output().expect("psql");
        if String::from_utf8_lossy(&out.stdout).trim() == "f" {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let took = t.elapsed();
    let mut stop = Command::new(postgres_bin_dir().join("pg_ctl"));
    stop.args(["-w", "-m", "fast", "-D"])
        .arg(dir.join("data"))
        .arg("stop");
    user.apply(&mut stop);
    run(&mut stop);
    let _ = std::fs::remove_dir_all(dir);
    took
}

fn main() {
    let mb = env_num("HARNESS_BENCH_PITR_MB", 100);
    let runs = env_num("HARNESS_BENCH_PITR_RUNS", 5).max(1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(runtimes::ensure(
        &[RuntimeKind::Postgres],
        false,
        &harness_engine::progress::silent(),
    ))
    .expect("runtimes installed");
    let stack = rt
        .block_on(Stack::builder().service(RuntimeKind::Postgres).start())
        .expect("start Postgres");
    let pg = stack.endpoints().postgres.clone().expect("postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, wal) = (dir.path().join("base"), dir.path().join("wal"));
    let wal_dir = rt.block_on(async {
        let admin = pg.pool().await.expect("pool");
        sqlx::query("CREATE DATABASE pitr_src")
            .execute(&admin)
            .await
            .expect("create");
        let src = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(pg.connect_options().database("pitr_src"))
            .await
            .expect("connect");
        sqlx::query("CREATE TABLE t (id bigint PRIMARY KEY, payload text NOT NULL)")
            .execute(&src)
            .await
            .expect("table");
        src.close().await;
        fill(&pg, mb, 1).await;
        let receiver = Receiver::start(&pg, &wal, "harness_bench_pitr", None)
            .await
            .expect("pg_receivewal");
        let t = Instant::now();
        physical::base_backup(&pg, &base)
            .await
            .expect("pg_basebackup");
        eprintln!(
            "base backup: {:.1?}, {:.0} MB",
            t.elapsed(),
            physical::tree_size(&base) as f64 / 1e6
        );
        fill(&pg, mb, 10_000_000).await;
        let wal = receiver.dir.clone();
        receiver.drain(&pg, None, false).await.expect("drain");
        eprintln!(
            "WAL after the base backup: {:.0} MB",
            physical::tree_size(&wal) as f64 / 1e6
        );
        wal
    });
    let (mut hand, mut ours) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let harness = || {
            let into = dir.path().join(format!("ours-{i}"));
            let t = Instant::now();
            let (mut instance, _) = rt
                .block_on(physical::restore(
                    &base,
                    &wal_dir,
                    &into,
                    &Target::EndOfWal,
                    &Provider::Native,
                    &[],
                    None,
                ))
                .expect("harness restore");
            let took = t.elapsed();
            rt.block_on(instance.stop());
            let _ = std::fs::remove_dir_all(&into);
            took
        };
        let hand_dir = dir.path().join(format!("hand-{i}"));
        if i % 2 == 0 {
            ours.push(harness());
            hand.push(by_hand(&base, &wal_dir, &hand_dir));
        } else {
            hand.push(by_hand(&base, &wal_dir, &hand_dir));
            ours.push(harness());
        }
        eprintln!(
            "run {}: harness {:.2?}, by hand {:.2?}",
            i + 1,
            ours[ours.len() - 1],
            hand[hand.len() - 1]
        );
    }
    let (h, o) = (median(hand), median(ours));
    println!(
        "\n| point-in-time restore ({mb} MB base backup, {mb} MB of WAL after it) | median of {runs} |\n|---|---|"
    );
    println!("| by hand: cp -a, recovery.signal, pg_ctl start -w, wait for promotion | {h:.2?} |");
    println!(
        "| harness: the `restore` step's work (copies, a fresh instance, promotion) | {o:.2?} |"
    );
    println!(
        "harness ÷ by hand = {:.3}× (overhead {:.0?})",
        o.as_secs_f64() / h.as_secs_f64(),
        o.saturating_sub(h)
    );
    rt.block_on(stack.shutdown());
}
