//! `deploy`, `traffic` and `rollback`: the scenario's Cloud Run emulator (started at the
//! first of them), driven through its API. The steps map their arguments; the emulator's
//! client does the rest. Each document is the service as it stands afterwards.

use std::{sync::Arc, time::Duration};

use harness_scenario::{Command, Deploy, ProbeArgs, Rollback, Traffic};
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::{
    emulators::cloud_run::{
        CloudRun,
        client::{DeploySpec, ProbeSpec, summary},
        images::{Image, Program},
    },
    run::context::Ctx,
};

fn mismatch(message: String, expected: impl Into<String>, actual: impl Into<String>) -> StepError {
    StepError::Failed {
        message,
        expected: Some(expected.into()),
        actual: Some(actual.into()),
        span: None,
    }
}

/// How long a traffic change may take to settle.
const SETTLE: Duration = Duration::from_secs(30);

fn probe(p: &ProbeArgs) -> ProbeSpec {
    ProbeSpec {
        path: p.path.clone(),
        initial_delay: p.initial_delay.map(|d| d.0),
        period: p.period.map(|d| d.0),
        timeout: p.timeout.map(|d| d.0),
        failure_threshold: p.failure_threshold,
    }
}

impl Handler for Deploy {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let emulator = ctx.cloud_run().await?;
        let image = ctx.render(&self.image)?;
        let program = match (&self.cargo, &self.command) {
            (Some(package), _) => Some(Program::Cargo(package.clone())),
            (None, Some(Command::Shell(line))) => Some(Program::Command(vec![
                "sh".into(),
                "-c".into(),
                ctx.render_str(line)?,
            ])),
            (None, Some(Command::Argv(argv))) => {
                let mut all = Vec::new();
                for a in argv {
                    all.push(ctx.render_str(a)?);
                }
                Some(Program::Command(all))
            }
            (None, None) => None,
        };
        if let Some(program) = program {
            emulator.map_image(
                &image,
                Image {
                    program,
                    env: Default::default(),
                    dir: ctx.dir.clone(),
                },
            );
        }
        let mut args = Vec::new();
        for a in &self.args {
            args.push(ctx.render(a)?);
        }
        let mut env = Vec::new();
        for (k, v) in &self.env {
            env.push((k.clone(), ctx.render(v)?));
        }
        let spec = DeploySpec {
            service: self.service.clone(),
            image,
            args,
            env,
            revision: self.revision.clone(),
            tag: self.tag.clone(),
            no_traffic: self.no_traffic == Some(true),
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            concurrency: self.concurrency,
            startup_probe: self.startup_probe.as_ref().map(probe),
            liveness_probe: self.liveness_probe.as_ref().map(probe),
        };
        let timeout = self.timeout.map_or(Duration::from_secs(60), |d| d.0);
        let (before, after) = emulator
            .deploy(&spec, timeout)
            .await
            .map_err(|e| StepError::error(format!("deploy {}: {e}", self.service)))?;
        let doc = summary(&after);
        let want_ready = self.expect.ready.unwrap_or(true);
        let ready = doc["ready"] == true;
        let revision = doc["revision"].as_str().unwrap_or_default().to_owned();
        if want_ready && !ready {
            return Err(mismatch(
                format!(
                    "revision {revision} of {} did not become ready",
                    self.service
                ),
                "ready",
                doc["message"].as_str().unwrap_or("not ready"),
            ));
        }
        if !want_ready {
            if ready {
                return Err(mismatch(
                    format!("revision {revision} of {} became ready", self.service),
                    "the deploy to fail",
                    "ready",
                ));
            }
            let before_traffic = before.as_ref().map(|b| summary(b)["traffic"].clone());
            if let Some(t) = before_traffic
                && t != doc["traffic"]
            {
                return Err(mismatch(
                    format!("the failed deploy of {} changed its traffic", self.service),
                    t.to_string(),
                    doc["traffic"].to_string(),
                ));
            }
        }
        Ok(Some(doc))
    }
}

impl Handler for Traffic {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let emulator = ctx.cloud_run().await?;
        let mut split = Vec::new();
        for s in &self.split {
            let mut t = match &s.revision {
                Some(r) => json!({"revisionName": ctx.render(r)?}),
                None => json!({"latestRevision": true}),
            };
            t["percent"] = json!(s.percent);
            if let Some(tag) = &s.tag {
                t["tag"] = json!(tag);
            }
            split.push(t);
        }
        let mut tags = Vec::new();
        for (tag, rev) in &self.tags {
            tags.push((tag.clone(), ctx.render(rev)?));
        }
        let to_latest = self.to_latest == Some(true);
        let remove = self.remove_tags.clone();
        let after = emulator
            .set_traffic(&self.service, SETTLE, |_, traffic| {
                let kept_tags: Vec<Value> = traffic
                    .iter()
                    .filter(|t| t["tag"].is_string())
                    .map(|t| json!({"revisionName": t["revisionName"], "tag": t["tag"]}))
                    .collect();
                if !split.is_empty() {
                    *traffic = split;
                } else if to_latest {
                    *traffic = vec![json!({"latestRevision": true, "percent": 100})];
                }
                if !self.split.is_empty() || to_latest {
                    for t in kept_tags {
                        if !traffic.iter().any(|x| x["tag"] == t["tag"]) {
                            traffic.push(t);
                        }
                    }
                }
                for (tag, rev) in tags {
                    for t in traffic.iter_mut() {
                        if t["tag"] == tag.as_str()
                            && let Some(o) = t.as_object_mut()
                        {
                            o.remove("tag");
                        }
                    }
                    traffic.push(json!({"revisionName": rev, "tag": tag}));
                }
                for tag in remove {
                    for t in traffic.iter_mut() {
                        if t["tag"] == tag.as_str()
                            && let Some(o) = t.as_object_mut()
                        {
                            o.remove("tag");
                        }
                    }
                }
                traffic.retain(|t| t["tag"].is_string() || t["percent"].as_u64().unwrap_or(0) > 0);
                Ok(())
            })
            .await
            .map_err(|e| StepError::error(format!("traffic of {}: {e}", self.service)))?;
        let doc = summary(&after);
        if doc["ready"] != true {
            return Err(StepError::error(format!(
                "traffic of {}: {}",
                self.service,
                doc["message"].as_str().unwrap_or("not ready")
            )));
        }
        Ok(Some(doc))
    }
}

impl Handler for Rollback {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let emulator = ctx.cloud_run().await?;
        let svc = emulator
            .get_service(&self.service)
            .await
            .map_err(StepError::error)?
            .ok_or_else(|| {
                StepError::error(format!(
                    "Cloud Run service `{}` does not exist: deploy it first",
                    self.service
                ))
            })?;
        let from = summary(&svc)["traffic"].clone();
        let serving: Vec<String> = from
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["percent"].as_u64().unwrap_or(0) > 0)
            .filter_map(|t| t["revision"].as_str().map(str::to_owned))
            .collect();
        let to = match &self.to {
            Some(t) => ctx.render(t)?,
            None => {
                let ready = emulator
                    .ready_revisions(&self.service)
                    .await
                    .map_err(StepError::error)?;
                // The newest ready revision that does not serve now.
                ready
                    .into_iter()
                    .find(|r| !serving.contains(r))
                    .ok_or_else(|| {
                        StepError::error(format!(
                            "{} has no earlier ready revision to roll back to",
                            self.service
                        ))
                    })?
            }
        };
        let target = to.clone();
        let after = emulator
            .set_traffic(&self.service, SETTLE, move |_, traffic| {
                let tags: Vec<Value> = traffic
                    .iter()
                    .filter(|t| t["tag"].is_string())
                    .map(|t| json!({"revisionName": t["revisionName"], "tag": t["tag"]}))
                    .collect();
                *traffic = vec![json!({"revisionName": target, "percent": 100})];
                traffic.extend(tags);
                Ok(())
            })
            .await
            .map_err(|e| StepError::error(format!("roll back {}: {e}", self.service)))?;
        let mut doc = summary(&after);
        doc["from"] = from;
        doc["to"] = json!(to);
        Ok(Some(doc))
    }
}

/// Starts the scenario's emulator: seeded by the scenario, logs in a folder of its own.
pub async fn start(seed: u64, id: &str) -> Result<Arc<CloudRun>, StepError> {
    let dir = std::env::temp_dir().join(format!("harness-cloud-run-{id}"));
    let mut cfg = crate::emulators::cloud_run::Config::new(dir);
    cfg.seed = seed;
    CloudRun::start(cfg)
        .await
        .map(Arc::new)
        .map_err(|e| StepError::error(format!("start the Cloud Run emulator: {e}")))
}
