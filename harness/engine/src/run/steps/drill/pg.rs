//! The drill steps' Postgres side: the database they act on (the scenario's, or an external
//! target's), the logical and physical backups and restores, and the table-by-table verify.

use sqlx::Row;

use super::*;

/// The database the drill acts on: the scenario's own, or on an external target the
/// target's (its pool opened once).
pub(super) async fn drill_db(
    ctx: &mut Ctx,
) -> Result<(PostgresEndpoint, String, PgPool), StepError> {
    let (pg, db, pool) = scenario_db(ctx)?;
    let Some(database) = ctx.drill.target.as_ref().and_then(|t| t.database.clone()) else {
        return Ok((pg, db, pool));
    };
    if ctx.drill.target_pool.is_none() {
        let direct = ctx.endpoints.postgres.clone().unwrap_or_else(|| pg.clone());
        let p = postgres::reconnect(&direct, &database)
            .await
            .map_err(StepError::error)?;
        ctx.drill.target_pool = Some(p);
    }
    let pool = ctx.drill.target_pool.clone().unwrap_or(pool);
    Ok((pg, database, pool))
}

/// Refuses a destructive step on a target that does not allow it, before it touches
/// anything.
pub(super) fn guard(ctx: &Ctx, step: &str) -> Result<(), StepError> {
    match ctx.drill.target.as_ref().and_then(|t| t.refusal(step)) {
        Some(why) => Err(StepError::error(why)),
        None => Ok(()),
    }
}

/// The stack's Postgres, the scenario's database and its pool. When the scenario has a
/// fault proxy of Postgres, the endpoint is the proxy's: the drill's tools then take the
/// path a network fault acts on.
pub(super) fn scenario_db(ctx: &Ctx) -> Result<(PostgresEndpoint, String, PgPool), StepError> {
    let mut pg = ctx
        .endpoints
        .postgres
        .clone()
        .ok_or_else(|| StepError::error("the stack has no Postgres"))?;
    if let Some(proxy) = ctx.faults.as_ref().and_then(|f| {
        f.shared_of(harness_scenario::Service::Postgres)
            .into_iter()
            .next()
    }) {
        pg.host = "127.0.0.1".into();
        pg.port = proxy.listen_addr().port();
    }
    let db = ctx
        .iso
        .database
        .clone()
        .ok_or_else(|| StepError::error("the scenario has no database"))?;
    let pool = ctx
        .iso
        .pool
        .clone()
        .ok_or_else(|| StepError::error("the scenario has no database"))?;
    Ok((pg, db, pool))
}

pub(super) async fn backup_pg(p: &PgBackup, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
    let (pg, db, pool) = drill_db(ctx).await?;
    let dir = drill_dir(ctx).join(format!("backup-{}", ctx.drill.backups.len() + 1));
    let jobs = p.jobs.unwrap_or(2);
    let b = match p.method {
        PgMethod::Logical => postgres::backup(&pg, &pool, &db, &dir, jobs, &p.exclude_tables)
            .await
            .map_err(StepError::error)?,
        PgMethod::Physical => {
            // A new physical backup streams anew.
            if let Some(r) = ctx.drill.receiver.take() {
                r.release().await;
            }
            let tables = postgres::capture(&pool).await.map_err(StepError::error)?;
            let t0 = Instant::now();
            let (base, wal) = (dir.join("base"), dir.join("wal"));
            let name = format!("harness_drill_{}", ctx.iso.id);
            let receiver = physical::Receiver::start(&pg, &wal, &name, ctx.groups.clone())
                .await
                .map_err(StepError::error)?;
            physical::base_backup(&pg, &base)
                .await
                .map_err(StepError::error)?;
            ctx.drill.receiver = Some(receiver);
            postgres::Backup {
                id: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes: physical::tree_size(&base),
                path: base,
                jobs: 1,
                tables,
                took: t0.elapsed(),
                method: PgMethod::Physical,
                wal: Some(wal),
                replay: physical::replay_settings(&pool)
                    .await
                    .map_err(StepError::error)?,
                finished: SystemTime::now(),
            }
        }
        PgMethod::Pgbackrest => return backup_pgbackrest(p, ctx, &pool, &dir).await,
    };
    let doc = json!({
        "store": "postgres",
        "method": p.method.name(),
        "backup": b.id,
        "path": b.path,
        "bytes": b.bytes,
        "duration_ms": ms(b.took),
        "tables": tables_json(&b.tables),
    });
    ctx.drill.backups.push(b);
    Ok(Some(doc))
}

/// A pgBackRest backup of the server: the scenario's repository created by its first one
/// (the server then archives into it), `full` first and `incr` after unless the step says.
async fn backup_pgbackrest(
    p: &PgBackup,
    ctx: &mut Ctx,
    pool: &PgPool,
    dir: &std::path::Path,
) -> Result<Option<Value>, StepError> {
    if ctx.drill.target.is_some() {
        return Err(StepError::error(
            "pgBackRest reads the server's data directory, and an external target's is not on this machine: back it up with `method: physical` or `logical`",
        ));
    }
    let tables = postgres::capture(pool).await.map_err(StepError::error)?;
    let t0 = Instant::now();
    if ctx.drill.pgbackrest.is_none() {
        let server = backrest_server(ctx).await?;
        let repo_dir = match &server {
            pgbackrest::Server::Native { .. } => drill_dir(ctx).join("pgbackrest"),
            pgbackrest::Server::Container { .. } => std::path::PathBuf::from(format!(
                "/var/lib/postgresql/harness-pgbackrest-{}",
                ctx.iso.id
            )),
        };
        let repo = pgbackrest::Repo::create(server, repo_dir, pool)
            .await
            .map_err(StepError::error)?;
        ctx.drill.pgbackrest = Some(repo);
    }
    let repo = ctx
        .drill
        .pgbackrest
        .as_mut()
        .ok_or_else(|| StepError::error("no pgBackRest repository"))?;
    let kind = match (p.kind, repo.backups.is_empty()) {
        (Some(k), _) => k.name(),
        (None, true) => "full",
        (None, false) => "incr",
    };
    let b = repo.backup(kind).await.map_err(StepError::error)?;
    let setup = t0.elapsed().saturating_sub(b.took + b.verify);
    ctx.drill.backups.push(postgres::Backup {
        id: b.label.clone(),
        path: dir.to_owned(),
        jobs: 1,
        tables: tables.clone(),
        bytes: b.bytes,
        took: t0.elapsed(),
        method: PgMethod::Pgbackrest,
        wal: None,
        replay: physical::replay_settings(pool)
            .await
            .map_err(StepError::error)?,
        finished: SystemTime::now(),
    });
    Ok(Some(json!({
        "store": "postgres",
        "method": "pgbackrest",
        "backup": b.label,
        "type": b.kind,
        "bytes": b.bytes,
        "database_bytes": b.database_bytes,
        "duration_ms": ms(t0.elapsed()),
        "phases_ms": {"setup": ms(setup), "backup": ms(b.took), "verify": ms(b.verify)},
        "tables": tables_json(&tables),
    })))
}

/// The disasters that strike the server rather than a table's rows: `kill` (SIGKILL; the
/// server stays down until the scenario's end starts it again) and `corrupt` (a table's
/// first page overwritten on disk after a checkpoint, and the server restarted at once, so
/// no cached copy of the page hides the damage). Returns what was done and the file.
pub(super) async fn server_disaster(
    p: &harness_scenario::kinds::disaster::PgDisaster,
    ctx: &mut Ctx,
    pool: &PgPool,
) -> Result<(String, Option<String>), StepError> {
    use harness_scenario::Service;
    if ctx.drill.target.is_some() {
        return Err(StepError::error(
            "refused: a drill kills or corrupts only a server harness started; an external target's databases can be dropped or truncated (with its allow-list), its server is not touched",
        ));
    }
    let stack = ctx.stack.clone().ok_or_else(|| {
        StepError::error(
            "killing or corrupting the server needs a stack this run started (an attached stack is not harness's to kill)",
        )
    })?;
    if p.kill {
        stack
            .fault(Service::Postgres, crate::stack::Fault::Kill)
            .await
            .map_err(|e| StepError::error(format!("kill the stack's Postgres: {e}")))?;
        // The end of the steps starts it again, as after a `fault` step's kill.
        ctx.process_faults.note(
            crate::run::faults::Target::Service(Service::Postgres),
            Some(crate::run::faults::Left::Down),
        );
        return Ok(("kill the server (SIGKILL)".into(), None));
    }
    let table = p.corrupt.as_deref().unwrap_or_default();
    let row = sqlx::query(
        "SELECT pg_relation_filepath($1::regclass)::text, pg_relation_size($1::regclass)",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .map_err(|e| StepError::error(format!("find table {table}'s data file: {e}")))?;
    let (file, size): (String, i64) = (row.get(0), row.get(1));
    if size == 0 {
        return Err(StepError::error(format!(
            "table {table} has no page on disk to corrupt (it is empty)"
        )));
    }
    // Every page on disk as in memory first: the restart below then writes nothing back.
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .map_err(|e| StepError::error(format!("checkpoint: {e}")))?;
    let written = match stack.data_of(Service::Postgres).await {
        Some(crate::run::faults::DataAt::Folder(data)) => {
            overwrite_first_page(&data.join(&file)).map_err(|e| e.to_string())
        }
        Some(crate::run::faults::DataAt::Container { id, .. }) => crate::stack::docker::exec(
            &id,
            "postgres",
            &[
                "sh".into(),
                "-c".into(),
                format!(
                    "yes harness-corrupted-this-page | head -c 8192 | dd of=\"$PGDATA/{file}\" bs=8192 count=1 conv=notrunc status=none"
                ),
            ],
            b"",
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
        None => Err("the stack's Postgres is not one harness started".into()),
    };
    written.map_err(|e| StepError::error(format!("corrupt {file}: {e}")))?;
    // A crash and a start: shared buffers are gone, nothing is flushed over the damage.
    for fault in [crate::stack::Fault::Kill, crate::stack::Fault::Start] {
        stack
            .fault(Service::Postgres, fault)
            .await
            .map_err(|e| StepError::error(format!("restart the stack's Postgres: {e}")))?;
    }
    Ok((
        format!("corrupt table {table} (its data file {file}: the first page overwritten)"),
        Some(file),
    ))
}

/// Overwrites the first 8 kB page of a relation file with text, which no page header
/// check accepts.
fn overwrite_first_page(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let page: Vec<u8> = b"harness-corrupted-this-page\n"
        .iter()
        .copied()
        .cycle()
        .take(8192)
        .collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(&page)
}

/// Where the stack's Postgres runs, for pgBackRest to run beside it.
async fn backrest_server(ctx: &Ctx) -> Result<pgbackrest::Server, StepError> {
    let stack = ctx.stack.clone().ok_or_else(|| {
        StepError::error(
            "pgBackRest runs beside the server it backs up, and this run did not start the stack (an attached stack's data directory is not harness's)",
        )
    })?;
    let pg = ctx
        .endpoints
        .postgres
        .clone()
        .ok_or_else(|| StepError::error("the stack has no Postgres"))?;
    match stack.data_of(harness_scenario::Service::Postgres).await {
        Some(crate::run::faults::DataAt::Folder(data)) => Ok(pgbackrest::Server::Native {
            socket: data
                .parent()
                .map(std::path::Path::to_owned)
                .unwrap_or_default(),
            data,
            port: pg.port,
        }),
        Some(crate::run::faults::DataAt::Container { id, run_id }) => {
            let image = crate::stack::docker::image_of(&run_id, "postgres")
                .await
                .map_err(|e| StepError::error(e.to_string()))?;
            Ok(pgbackrest::Server::Container { id, image })
        }
        None => Err(StepError::error(
            "pgBackRest runs beside the server it backs up, and the stack's Postgres is not one harness started",
        )),
    }
}

/// The latest pgBackRest backup restored into a fresh instance, the WAL replayed from the
/// repository to the target; the scenario's pool then reaches its copy of the database.
pub(super) async fn restore_pgbackrest(
    p: &PgRestore,
    ctx: &mut Ctx,
    started: Instant,
    detect: Duration,
) -> Result<Option<Value>, StepError> {
    let (_, db, _) = drill_db(ctx).await?;
    let backup = latest(ctx, PgMethod::Pgbackrest)?;
    let matching = backup.replay.clone();
    let down = ctx.drill.disaster.as_ref().is_some_and(|d| d.down);
    ctx.drill.stop_writer().await;
    let target = pitr_target(p, ctx)?;
    not_before_backup(&target, &backup, ctx).await?;
    // The WAL up to now goes to the archive (the server is still up after a drop or a
    // truncate); a replay cannot pass what was never archived.
    let t = Instant::now();
    let repo = ctx
        .drill
        .pgbackrest
        .take()
        .ok_or_else(|| StepError::error("no pgBackRest repository"))?;
    // A killed server archives nothing more: what it had not archived is lost.
    let archived = if down {
        Ok(())
    } else {
        repo.archive_current().await
    };
    let archive = t.elapsed();
    let dir = drill_dir(ctx).join(format!("restored-{}", ctx.drill.instances.len() + 1));
    let pg_password = ctx
        .endpoints
        .postgres
        .as_ref()
        .map(|e| e.password.clone())
        .unwrap_or_else(|| crate::secret::Secret::random(24));
    let on = restore_provider(ctx, "postgres", &pg_password).await;
    let restored = match (archived, on) {
        (Err(e), _) => Err(StepError::error(format!(
            "archive the server's current WAL before the restore: {e}"
        ))),
        (_, Err(e)) => Err(e),
        (Ok(()), Ok(on)) => repo
            .restore(&dir, &target, &on, &matching, ctx.groups.clone())
            .await
            .map_err(StepError::error),
    };
    ctx.drill.pgbackrest = Some(repo);
    let (instance, mut phases) = restored?;
    phases[0].1 += archive;
    let endpoint = adopt(ctx, instance, &db).await?;
    let phases_ms = record_restore(ctx, detect, phases);
    let doc = json!({
        "store": "postgres",
        "method": "pgbackrest",
        "backup": backup.id,
        "target": target.describe(),
        "archived_current_wal": !down,
        "instance": endpoint,
        "phases_ms": phases_ms,
        "duration_ms": ms(started.elapsed()),
    });
    Ok(Some(doc))
}

/// A logical backup restored into a fresh instance of Postgres (`into: instance`); the
/// scenario's pool then reaches its copy of the database there, as after a physical restore.
pub(super) async fn restore_logical_instance(
    p: &PgRestore,
    ctx: &mut Ctx,
    started: Instant,
    detect: Duration,
) -> Result<Option<Value>, StepError> {
    let (pg, db, _) = drill_db(ctx).await?;
    let backup = latest(ctx, PgMethod::Logical)?;
    ctx.drill.stop_writer().await;
    let dir = drill_dir(ctx).join(format!("restored-{}", ctx.drill.instances.len() + 1));
    let on = if ctx.drill.target.is_some() {
        drills::Provider::Native
    } else {
        restore_provider(ctx, "postgres", &pg.password).await?
    };
    let jobs = p.jobs.unwrap_or(backup.jobs);
    let (instance, phases) =
        postgres::restore_into_instance(&backup, &db, &dir, jobs, &on, ctx.groups.clone())
            .await
            .map_err(StepError::error)?;
    let endpoint = adopt(ctx, instance, &db).await?;
    let phases_ms = record_restore(ctx, detect, phases);
    let doc = json!({
        "store": "postgres",
        "method": "logical",
        "into": "instance",
        "backup": backup.id,
        "instance": endpoint,
        "phases_ms": phases_ms,
        "duration_ms": ms(started.elapsed()),
    });
    Ok(Some(doc))
}

/// Makes a restored instance the drill's: it is stopped with the drill, and the scenario's
/// pool (or the target's) reaches its copy of `db` from now on. Returns its address for the
/// step's document.
async fn adopt(ctx: &mut Ctx, instance: physical::Instance, db: &str) -> Result<Value, StepError> {
    let pool = postgres::reconnect(&instance.endpoint, db).await;
    let endpoint = json!({"host": instance.endpoint.host, "port": instance.endpoint.port});
    ctx.drill.instances.push(instance);
    let pool = pool.map_err(StepError::error)?;
    if ctx.drill.target.is_some() {
        ctx.drill.target_pool = Some(pool);
    } else {
        ctx.iso.pool = Some(pool);
    }
    Ok(endpoint)
}

/// The latest backup, which must have been taken with `method`.
fn latest(ctx: &Ctx, method: PgMethod) -> Result<postgres::Backup, StepError> {
    let backup = ctx.drill.backups.last().cloned().ok_or_else(|| {
        StepError::error("there is no backup to restore: a `backup` step comes first")
    })?;
    if backup.method != method {
        return Err(StepError::error(format!(
            "backup {} was taken with `method: {}`: restore it with the same method",
            backup.id,
            backup.method.name()
        )));
    }
    Ok(backup)
}

/// A base backup restores to its end at the earliest: a time before it cannot be reached.
async fn not_before_backup(
    target: &physical::Target,
    backup: &postgres::Backup,
    ctx: &mut Ctx,
) -> Result<(), StepError> {
    let physical::Target::Time(t) = target else {
        return Ok(());
    };
    let (_, _, pool) = drill_db(ctx).await?;
    let finished = drills::unix_ms(backup.finished) / 1000.0;
    let before: bool = sqlx::query_scalar("SELECT $1::timestamptz < to_timestamp($2)")
        .bind(t)
        .bind(finished)
        .fetch_one(&pool)
        .await
        .map_err(|e| StepError::error(format!("`target.time` {t:?}: {e}")))?;
    if before {
        return Err(StepError::error(format!(
            "`target.time` {t} is before backup {} was complete: a backup restores to the moment it finished at the earliest; take the backup before the moment to restore to",
            backup.id
        )));
    }
    Ok(())
}

/// Where a point-in-time restore stops: the step's target, by default just before the
/// disaster (or the end of the WAL without one).
pub(super) fn pitr_target(p: &PgRestore, ctx: &mut Ctx) -> Result<physical::Target, StepError> {
    let before = ctx.drill.disaster.as_ref().and_then(|d| d.lsn.clone());
    let down = ctx.drill.disaster.as_ref().is_some_and(|d| d.down);
    Ok(match &p.target {
        // A killed server's last WAL position may never have left it: everything that did.
        None if down => physical::Target::EndOfWal,
        None => before.map_or(physical::Target::EndOfWal, physical::Target::Before),
        Some(PitrTarget::BeforeDisaster) => physical::Target::Before(before.ok_or_else(|| {
            StepError::error(
                "`target: before_disaster` needs a `disaster` step on Postgres before the restore",
            )
        })?),
        Some(PitrTarget::EndOfWal) => physical::Target::EndOfWal,
        Some(PitrTarget::Time(t)) => physical::Target::Time(ctx.render(t)?),
        Some(PitrTarget::Lsn(t)) => {
            let lsn = ctx.render(t)?;
            if !physical::is_lsn(&lsn) {
                return Err(StepError::error(format!(
                    "`target.lsn` is {lsn:?}, not a WAL position such as 0/3000060"
                )));
            }
            physical::Target::Lsn(lsn)
        }
        Some(PitrTarget::RestorePoint(t)) => physical::Target::RestorePoint(ctx.render(t)?),
    })
}

/// A physical backup restored into a fresh instance, its WAL replayed to the target; the
/// scenario's pool then reaches its copy of the database there.
pub(super) async fn restore_physical(
    p: &PgRestore,
    ctx: &mut Ctx,
    started: Instant,
    detect: Duration,
) -> Result<Option<Value>, StepError> {
    let (pg, db, _) = drill_db(ctx).await?;
    let backup = latest(ctx, PgMethod::Physical)?;
    // The fresh instance takes the backed-up server's connection and worker limits: a replay
    // with lower ones is aborted.
    let matching = backup.replay.clone();
    let down = ctx.drill.disaster.as_ref().is_some_and(|d| d.down);
    let wal = backup
        .wal
        .clone()
        .ok_or_else(|| StepError::error("the physical backup has no WAL"))?;
    ctx.drill.stop_writer().await;
    let target = pitr_target(p, ctx)?;
    not_before_backup(&target, &backup, ctx).await?;
    // The stream catches up with the server (the target's position at least), then stops.
    let t = Instant::now();
    if let Some(r) = ctx.drill.receiver.take() {
        let upto = match &target {
            physical::Target::Lsn(l) | physical::Target::Before(l) => Some(l.as_str()),
            _ => None,
        };
        if let Some(stale) = r.drain(&pg, upto, down).await.map_err(StepError::error)? {
            ctx.drill.stale_slots.push(stale);
        }
    }
    let drained = t.elapsed();
    let dir = drill_dir(ctx).join(format!("restored-{}", ctx.drill.instances.len() + 1));
    // The instance comes from the stack's provider: a container of the same image on the
    // Docker provider (its locale and build are the backed-up server's); on an external
    // target, a local process.
    let on = if ctx.drill.target.is_some() {
        drills::Provider::Native
    } else {
        restore_provider(ctx, "postgres", &pg.password).await?
    };
    let (instance, mut phases) = physical::restore(
        &backup.path,
        &wal,
        &dir,
        &target,
        &on,
        &matching,
        ctx.groups.clone(),
    )
    .await
    .map_err(StepError::error)?;
    phases[0].1 += drained;
    let endpoint = adopt(ctx, instance, &db).await?;
    let phases_ms = record_restore(ctx, detect, phases);
    let doc = json!({
        "store": "postgres",
        "method": "physical",
        "backup": backup.id,
        "target": target.describe(),
        "instance": endpoint,
        "phases_ms": phases_ms,
        "duration_ms": ms(started.elapsed()),
    });
    Ok(Some(doc))
}

pub(super) async fn verify_pg(
    step: &Verify,
    p: &PgVerify,
    ctx: &mut Ctx,
    started: Instant,
) -> Result<Option<Value>, StepError> {
    let (_, _, pool) = drill_db(ctx).await?;
    let backup = ctx.drill.backups.last().cloned().ok_or_else(|| {
        StepError::error("there is nothing to verify against: a `backup` step comes first")
    })?;
    let mut problems = Vec::new();
    let mut tables = serde_json::Map::new();
    for name in &p.tables {
        let key = name.trim_start_matches("public.").to_owned();
        let Some(expected) = backup.tables.get(&key) else {
            return Err(StepError::error(format!(
                "table {name} was not in the database when backup {} was taken",
                backup.id
            )));
        };
        match postgres::table_state(&pool, name)
            .await
            .map_err(StepError::error)?
        {
            None => problems.push(format!(
                "table {name} is missing from the restored database"
            )),
            Some(got) => {
                if got.rows != expected.rows {
                    problems.push(format!(
                        "table {name} has {} rows; it had {} when backed up",
                        got.rows, expected.rows
                    ));
                } else if got.checksum != expected.checksum {
                    problems.push(format!(
                            "table {name} has its {} rows but not their contents (checksum {} instead of {})",
                            got.rows, got.checksum, expected.checksum
                        ));
                }
                tables.insert(
                    key,
                    json!({"rows": got.rows, "checksum": got.checksum,
                               "expected_rows": expected.rows}),
                );
            }
        }
    }
    if !problems.is_empty() {
        return Err(lost_data(step, ctx, &p.tables.join(", "), &problems));
    }
    // The writer's records, one by one.
    let found = match ctx.drill.acknowledged {
        Some(_) => postgres::written(&pool).await.map_err(StepError::error)?,
        None => Vec::new(),
    };
    let loss = loss(ctx, found);
    verdict(step, ctx, started, json!({"tables": tables}), loss)
}
