//! The drill steps' Neo4j side: the scenario's graph, its offline backup and its verify.

use super::*;

/// The scenario's graph client and label.
pub(super) fn scenario_graph(ctx: &Ctx) -> Result<(neo4rs::Graph, String), StepError> {
    match (&ctx.iso.graph, &ctx.iso.graph_label) {
        (Some(g), Some(l)) => Ok((g.clone(), l.clone())),
        _ => Err(StepError::error(
            "the scenario has no graph (is `neo4j` in its `stack`?)",
        )),
    }
}

/// Stops the stack's Neo4j, copies its store, starts it again.
pub(super) async fn backup_neo4j(ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
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

pub(super) async fn verify_neo4j(
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
