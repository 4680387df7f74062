//! Postgres, logical method: `pg_dump` in the directory format with parallel jobs, and
//! `pg_restore` into a fresh database that then takes the damaged one's place under the same
//! name, so every client that holds the scenario's URL reaches the restored data.
//!
//! The tools are the server's own (`runtimes::postgres::bin_dir`), given the connection in
//! `PG*` variables so that no password is on a command line.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use sqlx::{PgPool, Row, postgres::PgPoolOptions};

use super::{TableState, Tables, writer};
use crate::{run::stores::quote_ident, stack::native::postgres::PostgresEndpoint};

/// One backup: where it is and what the database held when it was taken.
#[derive(Clone, Debug)]
pub struct Backup {
    pub id: String,
    pub path: PathBuf,
    pub jobs: u64,
    pub tables: Tables,
    pub bytes: u64,
    pub took: Duration,
    /// How it was taken (a restore must use the same method).
    pub method: harness_scenario::kinds::backup::PgMethod,
    /// A physical backup's WAL folder (`path` is then its base backup).
    pub wal: Option<PathBuf>,
    /// The server settings a replay of a whole-server backup needs (as `name=value`), read
    /// when it was taken: the server may be down by the restore.
    pub replay: Vec<String>,
    /// When the backup was complete.
    pub finished: std::time::SystemTime,
}

/// A name, `schema.table` allowed, quoted part by part.
fn quote(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) fn tool(name: &str, pg: &PostgresEndpoint, database: &str) -> tokio::process::Command {
    let mut cmd = long_running_tool(name, pg, database);
    crate::run::processes::parent_death_signal(&mut cmd);
    cmd
}

/// A tool's command without the parent-death signal, which fires when the thread that
/// spawned it ends: a process that outlives a step (the WAL stream) is stopped by its
/// group's guard and, after a killed run, by the reaper instead.
pub(super) fn long_running_tool(
    name: &str,
    pg: &PostgresEndpoint,
    database: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(crate::runtimes::postgres::bin_dir().join(name));
    cmd.env("PGHOST", &pg.host)
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", &pg.user)
        .env("PGPASSWORD", pg.password.expose())
        .env("PGDATABASE", database)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub(super) async fn run_tool(mut cmd: tokio::process::Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("{what}: could not start it: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(8).collect();
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// Every user table's row count and checksum (the writer's table aside: it is counted
/// record by record).
pub async fn capture(pool: &PgPool) -> Result<Tables, String> {
    let names: Vec<String> = sqlx::query(
        "SELECT schemaname || '.' || tablename FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| format!("list the tables: {e}"))?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .filter(|n| n != &format!("public.{}", writer::TABLE))
    .collect();
    let mut all = Tables::new();
    for name in names {
        let state = table_state(pool, &name)
            .await?
            .ok_or_else(|| format!("table {name} went away while it was captured"))?;
        all.insert(name.trim_start_matches("public.").to_owned(), state);
    }
    Ok(all)
}

/// A table's row count and checksum, or `None` when it does not exist. The checksum is the
/// sum of the first 60 bits of each row's md5: any order, any size (nothing is aggregated
/// into one string, so a table of gigabytes is checked in one pass).
pub async fn table_state(pool: &PgPool, name: &str) -> Result<Option<TableState>, String> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(|e| format!("look up {name}: {e}"))?;
    if exists.is_none() {
        return Ok(None);
    }
    let q = quote(name);
    let row = sqlx::query(&format!(
        "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text \
         FROM {q} AS t"
    ))
    .fetch_one(pool)
    .await
    .map_err(|e| format!("checksum {name}: {e}"))?;
    Ok(Some(TableState {
        rows: row.get(0),
        checksum: row.get(1),
    }))
}

fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `pg_dump -Fd` of `database` into `path` (which must not exist yet).
pub async fn backup(
    pg: &PostgresEndpoint,
    pool: &PgPool,
    database: &str,
    path: &Path,
    jobs: u64,
    exclude: &[String],
) -> Result<Backup, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let tables = capture(pool).await?;
    let t0 = Instant::now();
    let mut cmd = tool("pg_dump", pg, database);
    cmd.arg("--format=directory")
        .arg(format!("--jobs={jobs}"))
        .arg("--no-password")
        .arg("--file")
        .arg(path);
    for t in exclude {
        cmd.arg(format!("--exclude-table={t}"));
    }
    run_tool(cmd, "pg_dump").await?;
    // The roles the objects belong to and are granted to, without their passwords, for a
    // restore into a fresh instance (where they do not exist yet). A user that may not read
    // the roles has none written, and such a restore then says which role is missing.
    let mut globals = tool("pg_dumpall", pg, "postgres");
    globals
        .args([
            "--globals-only",
            "--no-role-passwords",
            "--no-password",
            "--file",
        ])
        .arg(globals_of(path));
    let _ = run_tool(globals, "pg_dumpall").await;
    Ok(Backup {
        id: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_owned(),
        jobs,
        tables,
        bytes: size_of(path),
        took: t0.elapsed(),
        method: harness_scenario::kinds::backup::PgMethod::Logical,
        wal: None,
        replay: Vec::new(),
        finished: std::time::SystemTime::now(),
    })
}

/// Where a logical backup's roles are (`pg_dumpall --globals-only`).
fn globals_of(path: &Path) -> std::path::PathBuf {
    path.with_extension("globals.sql")
}

/// Restores a logical backup into a fresh, empty instance of Postgres started by `on` in
/// `dir`: the backed-up server's roles first, then the database under its own name with
/// `pg_restore -j`. The phases: provision (the folder and the instance), restore.
pub async fn restore_into_instance(
    backup: &Backup,
    database: &str,
    dir: &Path,
    jobs: u64,
    on: &super::Provider,
    groups: Option<crate::stack::records::Groups>,
) -> Result<(super::physical::Instance, Vec<(&'static str, Duration)>), String> {
    let t = Instant::now();
    let provisioned = super::physical::provision(dir, on)?;
    let data = dir.join("data");
    match &provisioned.native {
        // A copy of the runtime's empty cluster, as the stack's own Postgres starts from.
        Some((runtime, _)) => {
            let (template, d, owner) = (
                runtime.path(crate::runtimes::POSTGRES_TEMPLATE),
                data.clone(),
                provisioned.owner,
            );
            tokio::task::spawn_blocking(move || crate::fsutil::copy_tree(&template, &d, owner))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("copy the empty cluster: {e}"))?;
        }
        // The image makes its cluster on an empty folder.
        None => {
            std::fs::create_dir_all(&data)
                .map_err(|e| format!("create {}: {e}", data.display()))?;
            if let Some((uid, gid)) = provisioned.owner {
                std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", data.display()))?;
            }
        }
    }
    let instance =
        super::physical::start_recovering(dir, "a fresh instance", on, provisioned, &[], groups)
            .await?;
    let provision = t.elapsed();
    let t = Instant::now();
    let globals = globals_of(&backup.path);
    if globals.is_file() {
        // Roles that exist already (the superuser) fail alone; the others are made.
        let mut psql = tool("psql", &instance.endpoint, "postgres");
        psql.args(["-q", "--no-password", "-f"]).arg(&globals);
        let _ = run_tool(psql, "psql").await;
    }
    let admin = admin(&instance.endpoint).await?;
    sqlx::query(&format!("CREATE DATABASE {}", quote(database)))
        .execute(&admin)
        .await
        .map_err(|e| format!("create database {database} on the fresh instance: {e}"))?;
    admin.close().await;
    let mut cmd = tool("pg_restore", &instance.endpoint, database);
    cmd.arg(format!("--jobs={jobs}"))
        .args(["--no-password", "--exit-on-error"])
        .arg(format!("--dbname={database}"))
        .arg(&backup.path);
    run_tool(cmd, "pg_restore").await?;
    Ok((
        instance,
        vec![
            ("provision", provision),
            ("restore", t.elapsed()),
            ("replay", Duration::ZERO),
        ],
    ))
}

/// Damages the database: `DROP TABLE` or `TRUNCATE`, with `CASCADE`.
pub async fn damage(
    pool: &PgPool,
    drop_table: Option<&str>,
    truncate: Option<&str>,
) -> Result<String, String> {
    let (sql, what) = match (drop_table, truncate) {
        (Some(t), _) => (
            format!("DROP TABLE {} CASCADE", quote(t)),
            format!("drop table {t}"),
        ),
        (None, Some(t)) => (
            format!("TRUNCATE {} CASCADE", quote(t)),
            format!("truncate {t}"),
        ),
        (None, None) => return Err("nothing to damage".into()),
    };
    sqlx::query(&sql)
        .execute(pool)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(what)
}

/// A connection to the server's maintenance database (never the one being replaced).
pub(super) async fn admin(pg: &PostgresEndpoint) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pg.connect_options().database("postgres"))
        .await
        .map_err(|e| format!("connect to the server: {e}"))
}

/// Restores `backup` into a fresh database, then puts it in `database`'s place. The
/// phases' durations: provision, restore, replay (none for a logical backup), switch.
pub async fn restore(
    pg: &PostgresEndpoint,
    database: &str,
    backup: &Backup,
    jobs: u64,
) -> Result<Vec<(&'static str, Duration)>, String> {
    let admin = admin(pg).await?;
    let fresh = format!("{database}_restoring");
    let t = Instant::now();
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote(&fresh)
    ))
    .execute(&admin)
    .await
    .map_err(|e| format!("clear {fresh}: {e}"))?;
    sqlx::query(&format!(
        "CREATE DATABASE {} TEMPLATE template0",
        quote(&fresh)
    ))
    .execute(&admin)
    .await
    .map_err(|e| format!("create {fresh}: {e}"))?;
    let provision = t.elapsed();
    let t = Instant::now();
    let mut cmd = tool("pg_restore", pg, &fresh);
    cmd.arg(format!("--jobs={jobs}"))
        .arg("--no-password")
        .arg("--exit-on-error")
        .arg("--no-owner")
        .arg(format!("--dbname={fresh}"))
        .arg(&backup.path);
    if let Err(e) = run_tool(cmd, "pg_restore").await {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(&fresh)
        ))
        .execute(&admin)
        .await;
        admin.close().await;
        return Err(e);
    }
    let restored = t.elapsed();
    let t = Instant::now();
    let switched = async {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote(database)
        ))
        .execute(&admin)
        .await
        .map_err(|e| format!("drop the damaged {database}: {e}"))?;
        sqlx::query(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote(&fresh),
            quote(database)
        ))
        .execute(&admin)
        .await
        .map_err(|e| format!("rename {fresh} to {database}: {e}"))
    }
    .await;
    admin.close().await;
    switched?;
    Ok(vec![
        ("provision", provision),
        ("restore", restored),
        ("replay", Duration::ZERO),
        ("switch", t.elapsed()),
    ])
}

/// A new pool on the (restored) database.
pub async fn reconnect(pg: &PostgresEndpoint, database: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(pg.connect_options().database(database))
        .await
        .map_err(|e| format!("connect to the restored {database}: {e}"))
}

/// The sequence numbers of the writer's records found in the database (none when its table
/// is gone).
pub async fn written(pool: &PgPool) -> Result<Vec<i64>, String> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(writer::TABLE)
        .fetch_one(pool)
        .await
        .map_err(|e| format!("look up {}: {e}", writer::TABLE))?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(&format!("SELECT seq FROM {} ORDER BY seq", writer::TABLE))
        .fetch_all(pool)
        .await
        .map_err(|e| format!("read {}: {e}", writer::TABLE))
}
