//! A restore drill's Postgres restore against the same tools run by hand, on the same data
//! and the same server, alternating which goes first:
//!
//! - by hand: `CREATE DATABASE`, then `pg_restore --jobs=2 --no-owner` of the dump;
//! - harness: `drills::postgres::restore` (the `restore` step's work: a fresh database,
//!   `pg_restore --jobs=2`, then the switch that drops the damaged database and renames the
//!   fresh one into its place).
//!
//! Both restore one `pg_dump -Fd` of a table of `HARNESS_BENCH_DRILL_MB` MB (default 100)
//! with an index. `HARNESS_BENCH_DRILL_RUNS` restores per side (default 5). The medians and
//! their ratio go to docs/benchmarks.md (target: harness ≤ 1.1× by hand). A plain timing
//! loop, not criterion: one sample is seconds long.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use harness_benches::{env_num, fill_sql, median};
use harness_engine::{
    drills::postgres,
    runtimes::{self, RuntimeKind, postgres_bin_dir},
    stack::{Stack, native::postgres::PostgresEndpoint},
};
use sqlx::postgres::PgPoolOptions;

fn by_hand(pg: &PostgresEndpoint, db: &str, dump: &std::path::Path) -> Duration {
    let t = Instant::now();
    let psql = |sql: &str| {
        let ok = Command::new(postgres_bin_dir().join("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGHOST", &pg.host)
            .env("PGPORT", pg.port.to_string())
            .env("PGUSER", &pg.user)
            .env("PGPASSWORD", pg.password.expose())
            .env("PGDATABASE", "postgres")
            .status()
            .expect("psql");
        assert!(ok.success(), "psql {sql}");
    };
    psql(&format!("CREATE DATABASE {db}"));
    let ok = Command::new(postgres_bin_dir().join("pg_restore"))
        .args(["--jobs=2", "--no-owner", "--exit-on-error"])
        .arg(format!("--dbname={db}"))
        .arg(dump)
        .env("PGHOST", &pg.host)
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", &pg.user)
        .env("PGPASSWORD", pg.password.expose())
        .status()
        .expect("pg_restore");
    assert!(ok.success(), "pg_restore");
    let took = t.elapsed();
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
    took
}

fn main() {
    let mb = env_num("HARNESS_BENCH_DRILL_MB", 100);
    let runs = env_num("HARNESS_BENCH_DRILL_RUNS", 5).max(1);
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
    let (backup, size) = rt.block_on(async {
        let admin = pg.pool().await.expect("pool");
        sqlx::query("CREATE DATABASE drill_src")
            .execute(&admin)
            .await
            .expect("create");
        let src = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(pg.connect_options().database("drill_src"))
            .await
            .expect("connect");
        // About 300 bytes a row, 256 of them hex digits that compress about 2:1.
        let rows = mb * 1_000_000 / 300;
        let t = Instant::now();
        sqlx::query("CREATE TABLE t (id bigint PRIMARY KEY, payload text NOT NULL)")
            .execute(&src)
            .await
            .expect("table");
        sqlx::query(&fill_sql(1, rows))
            .execute(&src)
            .await
            .expect("rows");
        sqlx::query("CREATE INDEX t_payload ON t (payload)")
            .execute(&src)
            .await
            .expect("index");
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size('drill_src')")
            .fetch_one(&src)
            .await
            .expect("size");
        eprintln!(
            "{rows} rows, {:.0} MB on disk, in {:.1?}",
            size as f64 / 1e6,
            t.elapsed()
        );
        // The drill's own work beyond the tools: the capture of every table (row count and
        // checksum), done before the dump and once more for the verification.
        let t = Instant::now();
        postgres::capture(&src).await.expect("capture");
        eprintln!("capture of every table: {:.2?}", t.elapsed());
        let b = postgres::backup(&pg, &src, "drill_src", &dir.path().join("dump"), 2, &[])
            .await
            .expect("pg_dump");
        eprintln!(
            "pg_dump -Fd -j2: {:.1?}, {:.0} MB",
            b.took,
            b.bytes as f64 / 1e6
        );
        src.close().await;
        (b, size)
    });
    let (mut hand, mut ours) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Each goes first every other run, so neither always gets the warmer cache.
        let harness = || {
            let t = Instant::now();
            rt.block_on(postgres::restore(&pg, "drill_tgt", &backup, 2))
                .expect("harness restore");
            t.elapsed()
        };
        if i % 2 == 0 {
            ours.push(harness());
            hand.push(by_hand(&pg, &format!("drill_hand_{i}"), &backup.path));
        } else {
            hand.push(by_hand(&pg, &format!("drill_hand_{i}"), &backup.path));
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
        "\n| restore of a {:.0} MB database | median of {runs} |\n|---|---|",
        size as f64 / 1e6
    );
    println!("| by hand: createdb + pg_restore -j2 | {h:.2?} |");
    println!(
        "| harness: the `restore` step's work (fresh database, pg_restore -j2, switch) | {o:.2?} |"
    );
    println!(
        "harness ÷ by hand = {:.3}× (overhead {:.0?})",
        o.as_secs_f64() / h.as_secs_f64(),
        o.saturating_sub(h)
    );
    rt.block_on(stack.shutdown());
}
