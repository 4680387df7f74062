//! The steps of a restore drill: `backup`, `disaster`, `restore`, `verify`, over the
//! scenario's [`Drill`](crate::drills::Drill) (`harness/engine/src/drills/`).

use std::time::{Duration, Instant, SystemTime};

use harness_scenario::kinds::{
    backup::{Backup, PgBackup, PgMethod, S3Backup, S3Method},
    disaster::Disaster,
    restore::{PgRestore, PitrTarget, Restore, RestoreInto},
    verify::{PgVerify, S3Verify, Verify},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use self::{
    bucket::{backup_s3, guard_bucket, scenario_bucket, verify_s3},
    graph::{backup_neo4j, scenario_graph, verify_neo4j},
    pg::{
        backup_pg, drill_db, guard, restore_logical_instance, restore_pgbackrest, restore_physical,
        server_disaster, verify_pg,
    },
};
use super::{Ctx, Handler, StepError};
use crate::{
    drills::{self, Loss, ms, neo4j, object_store, pgbackrest, physical, postgres, writer::Writer},
    stack::native::postgres::PostgresEndpoint,
};

mod bucket;
mod graph;
mod pg;

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

/// Keeps a restore's phases for the verdict (the recovery's end is now) and returns them as
/// the step document's `phases_ms`.
fn record_restore(ctx: &mut Ctx, detect: Duration, phases: Vec<(&'static str, Duration)>) -> Value {
    let doc = phases
        .iter()
        .map(|(k, d)| ((*k).to_owned(), json!(ms(*d))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    ctx.drill.restore = Some(drills::Restored {
        detect,
        phases,
        ended: Instant::now(),
    });
    doc
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
                down: false,
            });
            return Ok(Some(
                json!({"store": "neo4j", "what": what, "deleted": deleted}),
            ));
        }
        if let (None, Some(s)) = (&self.postgres, &self.s3) {
            guard_bucket(ctx, "disaster")?;
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
                down: false,
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
        let (what, file) = if p.kill || p.corrupt.is_some() {
            server_disaster(p, ctx, &pool).await?
        } else {
            let what = postgres::damage(&pool, p.drop_table.as_deref(), p.truncate.as_deref())
                .await
                .map_err(StepError::error)?;
            (what, None)
        };
        ctx.drill.disaster = Some(drills::Disaster {
            at,
            wall,
            what: what.clone(),
            lsn: lsn.clone(),
            down: p.kill,
        });
        Ok(Some(json!({
            "store": "postgres",
            "what": what,
            "table": p.drop_table.as_ref().or(p.truncate.as_ref()).or(p.corrupt.as_ref()),
            "file": file,
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
            let phases_ms = record_restore(ctx, detect, phases);
            let doc = json!({
                "store": "neo4j",
                "method": "offline",
                "backup": backup.id,
                "consistency_check_ms": checked.map(ms),
                "instance": {"bolt_url": bolt},
                "phases_ms": phases_ms,
                "duration_ms": ms(started.elapsed()),
            });
            return Ok(Some(doc));
        }
        if let (None, Some(_)) = (&self.postgres, &self.s3) {
            guard_bucket(ctx, "restore")?;
            let (client, bucket) = scenario_bucket(ctx)?;
            let backup = ctx.drill.s3_backups.last().cloned().ok_or_else(|| {
                StepError::error("there is no backup of the bucket to restore: a `backup` step with `s3` comes first")
            })?;
            let restored = object_store::restore(&client, &bucket, &backup)
                .await
                .map_err(StepError::error)?;
            let took = started.elapsed();
            let phases = vec![
                ("provision", Duration::ZERO),
                ("restore", took),
                ("replay", Duration::ZERO),
            ];
            let phases_ms = record_restore(ctx, detect, phases);
            return Ok(Some(json!({
                "store": "s3",
                "method": if backup.mirror { "mirror" } else { "versions" },
                "backup": backup.id,
                "restored": restored,
                "phases_ms": phases_ms,
                "duration_ms": ms(took),
            })));
        }
        let p = self
            .postgres
            .as_ref()
            .ok_or_else(|| StepError::error("a `restore` step names no store"))?;
        match p.method {
            PgMethod::Physical => return restore_physical(p, ctx, started, detect).await,
            PgMethod::Pgbackrest => {
                guard(ctx, "restore")?;
                return restore_pgbackrest(p, ctx, started, detect).await;
            }
            PgMethod::Logical => {}
        }
        if p.into == Some(RestoreInto::Instance) {
            return restore_logical_instance(p, ctx, started, detect).await;
        }
        guard(ctx, "restore")?;
        if ctx.drill.disaster.as_ref().is_some_and(|d| d.down) {
            return Err(StepError::error(
                "the server is down (the disaster killed it), and a logical backup restores into the same server by default: restore it with `into: instance` (a fresh instance), or back up with `method: physical` or `pgbackrest`",
            ));
        }
        let (pg, db, pool) = drill_db(ctx).await?;
        let backup = ctx.drill.backups.last().cloned().ok_or_else(|| {
            StepError::error("there is no backup to restore: a `backup` step comes first")
        })?;
        if backup.method != PgMethod::Logical {
            return Err(StepError::error(format!(
                "backup {} was taken with `method: {}`: restore it with the same method",
                backup.id,
                backup.method.name()
            )));
        }
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
        let phases_ms = record_restore(ctx, detect, phases);
        let doc = json!({
            "store": "postgres",
            "method": "logical",
            "backup": backup.id,
            "phases_ms": phases_ms,
            "duration_ms": ms(started.elapsed()),
        });
        Ok(Some(doc))
    }
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
