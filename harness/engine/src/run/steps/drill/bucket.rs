//! The drill steps' object-store side: the scenario's bucket, its backup and its verify.

use super::*;

/// The bucket the drill acts on, and the client that reaches it: the scenario's, or on an
/// external target that names one, the target's.
pub(super) fn scenario_bucket(ctx: &Ctx) -> Result<(aws_sdk_s3::Client, String), StepError> {
    if let Some(bucket) = ctx.drill.target.as_ref().and_then(|t| t.bucket.clone()) {
        let endpoint =
            ctx.endpoints.s3.as_ref().ok_or_else(|| {
                StepError::error("the target names a bucket but no `s3` endpoint")
            })?;
        return Ok((endpoint.client(), bucket));
    }
    match (&ctx.iso.s3, &ctx.iso.bucket) {
        (Some(c), Some(b)) => Ok((c.clone(), b.clone())),
        _ => Err(StepError::error(
            "the scenario has no bucket (is `s3` in its `stack`?)",
        )),
    }
}

/// Refuses a destructive step on a target bucket that does not allow it, before it touches
/// anything.
pub(super) fn guard_bucket(ctx: &Ctx, step: &str) -> Result<(), StepError> {
    match ctx
        .drill
        .target
        .as_ref()
        .and_then(|t| t.bucket_refusal(step))
    {
        Some(why) => Err(StepError::error(why)),
        None => Ok(()),
    }
}

pub(super) async fn backup_s3(s: &S3Backup, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
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

pub(super) async fn verify_s3(
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
