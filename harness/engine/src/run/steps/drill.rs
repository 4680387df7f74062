//! The steps of a restore drill: `backup`, `disaster`, `restore`, `verify`, over the
//! scenario's [`Drill`](crate::drills::Drill) (`harness/engine/src/drills/`).

use std::time::{Duration, Instant, SystemTime};

use harness_scenario::kinds::{
    backup::{Backup, PgBackup, PgMethod, S3Backup, S3Method},
    disaster::Disaster,
    restore::{PgRestore, PitrTarget, Restore},
    verify::{PgVerify, S3Verify, Verify},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Ctx, Handler, StepError};
use crate::{
    drills::{self, Loss, ms, neo4j, object_store, physical, postgres, writer::Writer},
    stack::native::postgres::PostgresEndpoint,
};

/// The database the drill acts on: the scenario's own, or on an external target the
/// target's (its pool opened once).
async fn drill_db(ctx: &mut Ctx) -> Result<(PostgresEndpoint, String, PgPool), StepError> {
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
fn guard(ctx: &Ctx, step: &str) -> Result<(), StepError> {
    match ctx.drill.target.as_ref().and_then(|t| t.refusal(step)) {
        Some(why) => Err(StepError::error(why)),
        None => Ok(()),
    }
}

/// The stack's Postgres, the scenario's database and its pool. When the scenario has a
/// fault proxy of Postgres, the endpoint is the proxy's: the drill's tools then take the
/// path a network fault acts on.
fn scenario_db(ctx: &Ctx) -> Result<(PostgresEndpoint, String, PgPool), StepError> {
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

/// Where the scenario's backups go: in the run's folder when there is one.
fn drill_dir(ctx: &mut Ctx) -> std::path::PathBuf {
    if let Some(d) = ctx.drill.dir() {
        return d.to_owned();
    }
    let dir = match &ctx.groups {
        Some(g) => g.run_dir().join(format!("drill-{}", ctx.iso.id)),
        None => std::env::temp_dir().join(format!(
            "harness-drill-{}-{}",
            std::process::id(),
            ctx.iso.id
        )),
    };
    ctx.drill.set_dir(dir.clone());
    dir
}

fn tables_json(t: &drills::Tables) -> Value {
    t.iter()
        .map(|(k, v)| (k.clone(), json!({"rows": v.rows, "checksum": v.checksum})))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The writer's records for the timeline, lost ones marked (at most 10,000, evenly taken).
fn strip(
    acked: Option<&[drills::writer::Record]>,
    loss: Option<&Loss>,
) -> Vec<drills::StripRecord> {
    let Some(acked) = acked else {
        return Vec::new();
    };
    let lost: std::collections::BTreeSet<i64> = loss
        .map(|l| l.lost.iter().map(|r| r.seq).collect())
        .unwrap_or_default();
    let every = acked.len().div_ceil(10_000).max(1);
    acked
        .iter()
        .step_by(every)
        .map(|r| drills::StripRecord {
            seq: r.seq,
            committed_unix_ms: drills::unix_ms(r.committed),
            lost: lost.contains(&r.seq),
        })
        .collect()
}

impl Handler for Backup {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        if let (Some(w), None) = (&self.writer, &ctx.drill.writer) {
            let sink = writer_sink(self, ctx).await?;
            let writer = Writer::start(sink, w.rate)
                .await
                .map_err(StepError::error)?;
            ctx.drill.writer = Some(writer);
            let lead = w.lead.map_or(Duration::from_millis(500), |d| d.0);
            tokio::time::sleep(lead).await;
        }
        let mut doc = match (&self.postgres, &self.s3) {
            (Some(p), _) => backup_pg(p, ctx).await?,
            (None, Some(s)) => backup_s3(s, ctx).await?,
            (None, None) if self.neo4j.is_some() => backup_neo4j(ctx).await?,
            (None, None) => return Err(StepError::error("a `backup` step names no store")),
        };
        if let (Some(d), Some(w)) = (doc.as_mut(), &ctx.drill.writer) {
            d["writer"] = json!({"rate": w.rate, "acknowledged": w.acknowledged()});
        }
        Ok(doc)
    }
}

/// Where the backup's writer commits: the store the step backs up.
async fn writer_sink(step: &Backup, ctx: &mut Ctx) -> Result<drills::writer::Sink, StepError> {
    use drills::writer::Sink;
    if step.postgres.is_some() {
        let (pg, db, _) = drill_db(ctx).await?;
        return Ok(Sink::Postgres(Box::new(pg.connect_options().database(&db))));
    }
    if step.s3.is_some() {
        let (client, bucket) = scenario_bucket(ctx)?;
        return Ok(Sink::S3 { client, bucket });
    }
    let (_, label) = scenario_graph(ctx)?;
    let endpoint = ctx
        .endpoints
        .neo4j
        .clone()
        .ok_or_else(|| StepError::error("the stack has no Neo4j"))?;
    Ok(Sink::Neo4j { endpoint, label })
}

/// The writer's acknowledged records that `found` lacks: the data lost.
fn loss(ctx: &Ctx, found: Vec<i64>) -> Option<Loss> {
    let acked = ctx.drill.acknowledged.as_ref()?;
    let found: std::collections::BTreeSet<i64> = found.into_iter().collect();
    Some(Loss {
        acknowledged: acked.len(),
        lost: acked
            .iter()
            .filter(|r| !found.contains(&r.seq))
            .copied()
            .collect(),
    })
}

/// Who starts a restore's fresh instance of `service`: a container of the stack's own image
/// on the Docker provider (labelled with this run of scenarios, so the reaper finds it), a
/// process otherwise.
async fn restore_provider(
    ctx: &Ctx,
    service: &str,
    password: &crate::secret::Secret,
) -> Result<drills::Provider, StepError> {
    let Some(stack) = ctx.builds.container_run().map(str::to_owned) else {
        return Ok(drills::Provider::Native);
    };
    let image = crate::stack::docker::image_of(&stack, service)
        .await
        .map_err(|e| StepError::error(e.to_string()))?;
    let run_id = ctx.groups.as_ref().map_or(stack, |g| g.run_id());
    if let Some(g) = &ctx.groups {
        let _ = g.clone().with_containers();
    }
    Ok(drills::Provider::Docker {
        image,
        run_id,
        password: password.clone(),
    })
}

/// The scenario's graph client and label.
fn scenario_graph(ctx: &Ctx) -> Result<(neo4rs::Graph, String), StepError> {
    match (&ctx.iso.graph, &ctx.iso.graph_label) {
        (Some(g), Some(l)) => Ok((g.clone(), l.clone())),
        _ => Err(StepError::error(
            "the scenario has no graph (is `neo4j` in its `stack`?)",
        )),
    }
}

/// Stops the stack's Neo4j, copies its store, starts it again.
async fn backup_neo4j(ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
    use harness_scenario::Service;
    let (graph, label) = scenario_graph(ctx)?;
    let stack = ctx.stack.clone().ok_or_else(|| {
        StepError::error(
            "a graph backup stops the stack's Neo4j for its copy, and this run did not start the stack (an attached stack is not stopped)",
        )
    })?;
    let data = stack
        .data_of(Service::Neo4j)
        .await
        .ok_or_else(|| StepError::error("the stack has no Neo4j"))?;
    let n = ctx.drill.graph_backups.len() + 1;
    let dir = drill_dir(ctx).join(format!("graph-backup-{n}"));
    let state = neo4j::capture(&graph, &label)
        .await
        .map_err(StepError::error)?;
    let t0 = Instant::now();
    stack
        .fault(Service::Neo4j, crate::stack::Fault::Stop)
        .await
        .map_err(|e| StepError::error(format!("stop the stack's Neo4j for the copy: {e}")))?;
    let copied = match &data {
        crate::run::faults::DataAt::Folder(home) => neo4j::copy_store(home, &dir).await,
        crate::run::faults::DataAt::Container { id, .. } => {
            crate::stack::docker::copy_out(id, "/data", &dir)
                .await
                .map(|()| physical::tree_size(&dir))
                .map_err(|e| e.to_string())
        }
    };
    // Whatever the copy did, the DBMS starts again.
    let started = stack
        .fault(Service::Neo4j, crate::stack::Fault::Start)
        .await;
    let downtime = t0.elapsed();
    let bytes = copied.map_err(StepError::error)?;
    started.map_err(|e| {
        StepError::error(format!(
            "the stack's Neo4j did not start again after the copy: {e}"
        ))
    })?;
    // A client of the restarted DBMS (the old one's connections are gone).
    if let Some(ep) = &ctx.endpoints.neo4j {
        ctx.iso.graph = Some(ep.graph().map_err(|e| StepError::error(e.to_string()))?);
    }
    let b = neo4j::Backup {
        id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: dir,
        graph: state,
        bytes,
        took: t0.elapsed(),
        downtime,
    };
    let doc = json!({
        "store": "neo4j",
        "method": "offline",
        "backup": b.id,
        "path": b.path,
        "bytes": b.bytes,
        "duration_ms": ms(b.took),
        "downtime_ms": ms(b.downtime),
        "graph": b.graph.json(),
    });
    ctx.drill.graph_backups.push(b);
    Ok(Some(doc))
}

async fn backup_pg(p: &PgBackup, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
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

/// The scenario's bucket and the client that reaches it.
fn scenario_bucket(ctx: &Ctx) -> Result<(aws_sdk_s3::Client, String), StepError> {
    match (&ctx.iso.s3, &ctx.iso.bucket) {
        (Some(c), Some(b)) => Ok((c.clone(), b.clone())),
        _ => Err(StepError::error(
            "the scenario has no bucket (is `s3` in its `stack`?)",
        )),
    }
}

async fn backup_s3(s: &S3Backup, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
    let (client, bucket) = scenario_bucket(ctx)?;
    let n = ctx.drill.backups.len() + ctx.drill.s3_backups.len() + 1;
    let dir = drill_dir(ctx).join(format!("backup-{n}"));
    let mirror = s.method == S3Method::Mirror;
    let b = object_store::backup(&client, &bucket, &dir, mirror)
        .await
        .map_err(StepError::error)?;
    let objects: serde_json::Map<String, Value> = b
        .objects
        .iter()
        .map(|(k, o)| {
            (
                k.clone(),
                json!({"sha256": o.sha256, "size": o.size, "version_id": o.version_id}),
            )
        })
        .collect();
    let doc = json!({
        "store": "s3",
        "method": if mirror { "mirror" } else { "versions" },
        "backup": b.id,
        "path": b.path,
        "bytes": b.bytes,
        "duration_ms": ms(b.took),
        "objects": objects,
    });
    ctx.drill.s3_backups.push(b);
    Ok(Some(doc))
}

impl Handler for Disaster {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        if self.postgres.is_some() {
            guard(ctx, "disaster")?;
        }
        // The writer stops first: its last acknowledged record precedes the disaster.
        ctx.drill.stop_writer().await;
        let at = Instant::now();
        let wall = SystemTime::now();
        if let Some(g) = &self.neo4j {
            let (graph, label) = scenario_graph(ctx)?;
            let (what, deleted) = neo4j::damage(&graph, &label, g.delete_label.as_deref())
                .await
                .map_err(StepError::error)?;
            ctx.drill.disaster = Some(drills::Disaster {
                at,
                wall,
                what: what.clone(),
                lsn: None,
            });
            return Ok(Some(
                json!({"store": "neo4j", "what": what, "deleted": deleted}),
            ));
        }
        if let (None, Some(s)) = (&self.postgres, &self.s3) {
            let (client, bucket) = scenario_bucket(ctx)?;
            let (what, keys) =
                object_store::damage(&client, &bucket, &s.delete, s.delete_all, &s.overwrite)
                    .await
                    .map_err(StepError::error)?;
            ctx.drill.disaster = Some(drills::Disaster {
                at,
                wall,
                what: what.clone(),
                lsn: None,
            });
            return Ok(Some(json!({"store": "s3", "what": what, "keys": keys})));
        }
        let p = self
            .postgres
            .as_ref()
            .ok_or_else(|| StepError::error("a `disaster` step names no store"))?;
        let (_, _, pool) = drill_db(ctx).await?;
        // Where the WAL stood just before: a point-in-time restore's default target.
        let lsn = physical::insert_lsn(&pool).await.ok();
        let what = postgres::damage(&pool, p.drop_table.as_deref(), p.truncate.as_deref())
            .await
            .map_err(StepError::error)?;
        ctx.drill.disaster = Some(drills::Disaster {
            at,
            wall,
            what: what.clone(),
            lsn: lsn.clone(),
        });
        Ok(Some(json!({
            "store": "postgres",
            "what": what,
            "table": p.drop_table.as_ref().or(p.truncate.as_ref()),
            "lsn": lsn,
            "acknowledged": ctx.drill.acknowledged.as_ref().map(Vec::len),
        })))
    }
}

impl Handler for Restore {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let started = Instant::now();
        let detect = ctx
            .drill
            .disaster
            .as_ref()
            .map_or(Duration::ZERO, |d| started.duration_since(d.at));
        if let Some(g) = &self.neo4j {
            let backup = ctx.drill.graph_backups.last().cloned().ok_or_else(|| {
                StepError::error(
                    "there is no backup of the graph to restore: a `backup` step with `neo4j` comes first",
                )
            })?;
            let n = ctx.drill.graph_instances.len() + 1;
            let dir = drill_dir(ctx).join(format!("graph-restored-{n}"));
            // The fresh DBMS comes from the stack's provider: a container of the same image
            // on the Docker provider.
            let password = ctx
                .endpoints
                .neo4j
                .as_ref()
                .map(|e| e.password.clone())
                .ok_or_else(|| StepError::error("the stack has no Neo4j"))?;
            let on = restore_provider(ctx, "neo4j", &password).await?;
            let (instance, phases, checked) = neo4j::restore(
                &backup,
                &dir,
                g.check.unwrap_or(true),
                &on,
                ctx.groups.clone(),
            )
            .await
            .map_err(StepError::error)?;
            let graph = instance.endpoint.graph();
            let bolt = instance.endpoint.bolt_url.clone();
            ctx.drill.graph_instances.push(instance);
            ctx.iso.graph = Some(graph.map_err(|e| StepError::error(e.to_string()))?);
            let doc = json!({
                "store": "neo4j",
                "method": "offline",
                "backup": backup.id,
                "consistency_check_ms": checked.map(ms),
                "instance": {"bolt_url": bolt},
                "phases_ms": phases.iter().map(|(k, d)| ((*k).to_owned(), json!(ms(*d)))).collect::<serde_json::Map<_, _>>(),
                "duration_ms": ms(started.elapsed()),
            });
            ctx.drill.restore = Some(drills::Restored {
                detect,
                phases,
                ended: Instant::now(),
            });
            return Ok(Some(doc));
        }
        if let (None, Some(_)) = (&self.postgres, &self.s3) {
            let (client, bucket) = scenario_bucket(ctx)?;
            let backup = ctx.drill.s3_backups.last().cloned().ok_or_else(|| {
                StepError::error("there is no backup of the bucket to restore: a `backup` step with `s3` comes first")
            })?;
            let restored = object_store::restore(&client, &bucket, &backup)
                .await
                .map_err(StepError::error)?;
            let took = started.elapsed();
            ctx.drill.restore = Some(drills::Restored {
                detect,
                phases: vec![
                    ("provision", Duration::ZERO),
                    ("restore", took),
                    ("replay", Duration::ZERO),
                ],
                ended: Instant::now(),
            });
            return Ok(Some(json!({
                "store": "s3",
                "method": if backup.mirror { "mirror" } else { "versions" },
                "backup": backup.id,
                "restored": restored,
                "phases_ms": {"provision": 0.0, "restore": ms(took), "replay": 0.0},
                "duration_ms": ms(took),
            })));
        }
        let p = self
            .postgres
            .as_ref()
            .ok_or_else(|| StepError::error("a `restore` step names no store"))?;
        if p.method == PgMethod::Physical {
            return restore_physical(p, ctx, started, detect).await;
        }
        guard(ctx, "restore")?;
        let (pg, db, pool) = drill_db(ctx).await?;
        let backup = ctx.drill.backups.last().cloned().ok_or_else(|| {
            StepError::error("there is no backup to restore: a `backup` step comes first")
        })?;
        // A restore without a disaster step still stops the writer: what it restores is
        // compared with what had been committed.
        ctx.drill.stop_writer().await;
        let jobs = p.jobs.unwrap_or(backup.jobs);
        // The database's pool goes first: the switch drops the damaged database.
        pool.close().await;
        let on_target = ctx.drill.target.is_some();
        if on_target {
            ctx.drill.target_pool = None;
        } else {
            ctx.iso.pool = None;
        }
        let restored = postgres::restore(&pg, &db, &backup, jobs).await;
        // Whatever happened, a pool again, straight to the server.
        let direct = ctx.endpoints.postgres.clone().unwrap_or_else(|| pg.clone());
        if let Ok(p) = postgres::reconnect(&direct, &db).await {
            if on_target {
                ctx.drill.target_pool = Some(p);
            } else {
                ctx.iso.pool = Some(p);
            }
        }
        let phases = restored.map_err(StepError::error)?;
        if backup.wal.is_some() {
            return Err(StepError::error(format!(
                "backup {} is physical: restore it with `method: physical`",
                backup.id
            )));
        }
        let doc = json!({
            "store": "postgres",
            "method": "logical",
            "backup": backup.id,
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
}

/// Where a point-in-time restore stops: the step's target, by default just before the
/// disaster (or the end of the WAL without one).
fn pitr_target(p: &PgRestore, ctx: &mut Ctx) -> Result<physical::Target, StepError> {
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
async fn restore_physical(
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

impl Handler for Verify {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let started = Instant::now();
        match (&self.postgres, &self.s3) {
            (Some(p), _) => verify_pg(self, p, ctx, started).await,
            (None, Some(s)) => verify_s3(self, s, ctx, started).await,
            (None, None) if self.neo4j.is_some() => verify_neo4j(self, ctx, started).await,
            (None, None) => Err(StepError::error("a `verify` step names no store")),
        }
    }
}

/// The drill's report when verification found data missing.
fn lost_data(step: &Verify, ctx: &mut Ctx, what: &str, problems: &[String]) -> StepError {
    ctx.drill.report = Some(drills::DrillReport {
        disaster: ctx.drill.disaster.as_ref().map(|d| d.what.clone()),
        rto_max_ms: step.rto_max.map(|d| ms(d.0)),
        rpo_max_ms: step.rpo_max.map(|d| ms(d.0)),
        met: false,
        disaster_unix_ms: ctx.drill.disaster.as_ref().map(|d| drills::unix_ms(d.wall)),
        ..Default::default()
    });
    StepError::Failed {
        message: format!("the restore lost data: {}", problems.join("; ")),
        expected: Some(format!("{what} as backed up")),
        actual: Some(problems.join("; ")),
        span: None,
    }
}

async fn verify_neo4j(
    step: &Verify,
    ctx: &mut Ctx,
    started: Instant,
) -> Result<Option<Value>, StepError> {
    let (graph, label) = scenario_graph(ctx)?;
    let backup = ctx.drill.graph_backups.last().cloned().ok_or_else(|| {
        StepError::error(
            "there is nothing to verify against: a `backup` step with `neo4j` comes first",
        )
    })?;
    let got = neo4j::capture(&graph, &label)
        .await
        .map_err(StepError::error)?;
    let problems = backup.graph.differences(&got);
    if !problems.is_empty() {
        return Err(lost_data(step, ctx, "the scenario's graph", &problems));
    }
    let found = match ctx.drill.acknowledged {
        Some(_) => drills::writer::nodes_written(&graph, &label)
            .await
            .map_err(StepError::error)?,
        None => Vec::new(),
    };
    let loss = loss(ctx, found);
    verdict(step, ctx, started, json!({"graph": got.json()}), loss)
}

async fn verify_s3(
    step: &Verify,
    s: &S3Verify,
    ctx: &mut Ctx,
    started: Instant,
) -> Result<Option<Value>, StepError> {
    let (client, bucket) = scenario_bucket(ctx)?;
    let backup = ctx.drill.s3_backups.last().cloned().ok_or_else(|| {
        StepError::error(
            "there is nothing to verify against: a `backup` step with `s3` comes first",
        )
    })?;
    let keys: Vec<String> = match &s.keys {
        Some(k) => k.clone(),
        None => backup.objects.keys().cloned().collect(),
    };
    let mut problems = Vec::new();
    let mut objects = serde_json::Map::new();
    for key in &keys {
        let Some(expected) = backup.objects.get(key) else {
            return Err(StepError::error(format!(
                "object {key} was not in the bucket when backup {} was taken",
                backup.id
            )));
        };
        match object_store::state(&client, &bucket, key)
            .await
            .map_err(StepError::error)?
        {
            None => problems.push(format!("object {key} is missing from the restored bucket")),
            Some((sha, size)) => {
                if sha != expected.sha256 {
                    problems.push(format!(
                        "object {key} is not as backed up ({size} bytes, SHA-256 {sha} instead of {} bytes, {})",
                        expected.size, expected.sha256
                    ));
                }
                objects.insert(key.clone(), json!({"sha256": sha, "size": size}));
            }
        }
    }
    if !problems.is_empty() {
        return Err(lost_data(step, ctx, &keys.join(", "), &problems));
    }
    let found = match ctx.drill.acknowledged {
        Some(_) => drills::writer::objects_written(&client, &bucket)
            .await
            .map_err(StepError::error)?,
        None => Vec::new(),
    };
    let loss = loss(ctx, found);
    verdict(step, ctx, started, json!({"objects": objects}), loss)
}

async fn verify_pg(
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

/// RTO by phase and RPO, held to the step's objectives; `doc` gets them.
fn verdict(
    step: &Verify,
    ctx: &mut Ctx,
    started: Instant,
    mut doc: Value,
    loss: Option<Loss>,
) -> Result<Option<Value>, StepError> {
    let disaster_wall = ctx
        .drill
        .disaster
        .as_ref()
        .map_or_else(SystemTime::now, |d| d.wall);
    let verify = started.elapsed();
    let rto = ctx.drill.disaster.as_ref().map(|d| d.at.elapsed());
    let mut phases = serde_json::Map::new();
    if let Some(r) = &ctx.drill.restore {
        phases.insert("detect".into(), json!(ms(r.detect)));
        let mut restore = Duration::ZERO;
        for (k, d) in &r.phases {
            match *k {
                "provision" | "replay" => {
                    phases.insert((*k).into(), json!(ms(*d)));
                }
                _ => restore += *d,
            }
        }
        phases.insert("restore".into(), json!(ms(restore)));
        // From the restore's end to this verdict: the steps in between count too.
        phases.insert("verify".into(), json!(ms(r.ended.elapsed().max(verify))));
    }
    let rpo = loss.as_ref().map(|l| l.rpo(disaster_wall));
    doc["rto_ms"] = json!(rto.map(ms));
    doc["phases_ms"] = json!(phases);
    doc["rpo_ms"] = json!(rpo.map(ms));
    doc["rpo"] = json!(loss.as_ref().map(|l| l.json(disaster_wall)));
    doc["disaster"] = json!(ctx.drill.disaster.as_ref().map(|d| d.what.clone()));
    let mut report = drills::DrillReport {
        disaster: ctx.drill.disaster.as_ref().map(|d| d.what.clone()),
        rto_ms: rto.map(ms),
        rto_max_ms: step.rto_max.map(|d| ms(d.0)),
        rpo_ms: rpo.map(ms),
        rpo_max_ms: step.rpo_max.map(|d| ms(d.0)),
        phases_ms: phases
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
        acknowledged: loss.as_ref().map(|l| l.acknowledged),
        lost: loss.as_ref().map(|l| l.lost.len()),
        met: true,
        disaster_unix_ms: ctx.drill.disaster.as_ref().map(|d| drills::unix_ms(d.wall)),
        records: strip(ctx.drill.acknowledged.as_deref(), loss.as_ref()),
    };
    let mut missed = Vec::new();
    if let (Some(max), Some(rto)) = (step.rto_max, rto)
        && rto > max.0
    {
        missed.push(format!(
            "the recovery took {:.3} s (RTO), over the objective of {:.3} s",
            rto.as_secs_f64(),
            max.0.as_secs_f64()
        ));
    }
    if let (Some(max), Some(rpo), Some(l)) = (step.rpo_max, rpo, &loss)
        && rpo > max.0
    {
        missed.push(format!(
                "{} committed records were lost, {:.3} s of commits (RPO), over the objective of {:.3} s (records {} to {})",
                l.lost.len(),
                rpo.as_secs_f64(),
                max.0.as_secs_f64(),
                l.lost.first().map_or(0, |r| r.seq),
                l.lost.last().map_or(0, |r| r.seq),
            ));
    }
    report.met = missed.is_empty();
    ctx.drill.report = Some(report);
    if !missed.is_empty() {
        return Err(StepError::Failed {
            message: format!("the drill missed its objectives: {}", missed.join("; ")),
            expected: Some(
                [
                    step.rto_max
                        .map(|d| format!("RTO ≤ {:.3} s", d.0.as_secs_f64())),
                    step.rpo_max
                        .map(|d| format!("RPO ≤ {:.3} s", d.0.as_secs_f64())),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ),
            actual: Some(format!(
                "RTO {:.3} s, RPO {:.3} s",
                rto.unwrap_or_default().as_secs_f64(),
                rpo.unwrap_or_default().as_secs_f64()
            )),
            span: None,
        });
    }
    Ok(Some(doc))
}
