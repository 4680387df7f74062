//! The drill steps' Postgres side: the database they act on (the scenario's, or an external
//! target's), the logical and physical backups and restores, and the table-by-table verify.

use super::*;

/// The database the drill acts on: the scenario's own, or on an external target the
/// target's (its pool opened once).
pub(super) async fn drill_db(
    ctx: &mut Ctx,
) -> Result<(PostgresEndpoint, String, PgPool), StepError> {
    let (pg, db, pool) = scenario_db(ctx)?;
    let Some(t) = &ctx.drill.target else {
        return Ok((pg, db, pool));
    };
    let database = t.database.clone();
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
            ctx.drill.receiver = None;
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
                wal: Some(wal),
                finished: SystemTime::now(),
            }
        }
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

/// Where a point-in-time restore stops: the step's target, by default just before the
/// disaster (or the end of the WAL without one).
pub(super) fn pitr_target(p: &PgRestore, ctx: &mut Ctx) -> Result<physical::Target, StepError> {
    let before = ctx.drill.disaster.as_ref().and_then(|d| d.lsn.clone());
    Ok(match &p.target {
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
    let (pg, db, source) = drill_db(ctx).await?;
    let backup = ctx.drill.backups.last().cloned().ok_or_else(|| {
        StepError::error("there is no backup to restore: a `backup` step comes first")
    })?;
    // The fresh instance takes the backed-up server's connection and worker limits: a replay
    // with lower ones is aborted.
    let matching = physical::replay_settings(&source)
        .await
        .map_err(StepError::error)?;
    let Some(wal) = backup.wal.clone() else {
        return Err(StepError::error(format!(
            "backup {} is logical: a physical restore needs a `backup` with `method: physical`",
            backup.id
        )));
    };
    ctx.drill.stop_writer().await;
    let target = pitr_target(p, ctx)?;
    // A base backup restores to its end at the earliest: a time before it cannot be reached.
    if let physical::Target::Time(t) = &target {
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
                "`target.time` {t} is before backup {} was complete: a base backup restores to the moment it finished at the earliest; take the backup before the moment to restore to",
                backup.id
            )));
        }
    }
    // The stream catches up with the server (the target's position at least), then stops.
    let t = Instant::now();
    if let Some(r) = ctx.drill.receiver.take() {
        let upto = match &target {
            physical::Target::Lsn(l) | physical::Target::Before(l) => Some(l.as_str()),
            _ => None,
        };
        r.drain(&pg, upto).await.map_err(StepError::error)?;
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
    let pool = postgres::reconnect(&instance.endpoint, &db).await;
    let endpoint = json!({"host": instance.endpoint.host, "port": instance.endpoint.port});
    ctx.drill.instances.push(instance);
    let pool = pool.map_err(StepError::error)?;
    if ctx.drill.target.is_some() {
        ctx.drill.target_pool = Some(pool);
    } else {
        ctx.iso.pool = Some(pool);
    }
    let doc = json!({
        "store": "postgres",
        "method": "physical",
        "backup": backup.id,
        "target": target.describe(),
        "instance": endpoint,
        "phases_ms": phases.iter().map(|(k, d)| ((*k).to_owned(), json!(ms(*d)))).collect::<serde_json::Map<_, _>>(),
        "duration_ms": ms(started.elapsed()),
    });
    ctx.drill.restore = Some(drills::Restored {
        detect,
        phases,
        ended: Instant::now(),
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
