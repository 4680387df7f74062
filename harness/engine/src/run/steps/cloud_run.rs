//! `deploy`, `traffic` and `rollback`: the scenario's Cloud Run emulator (started at the
//! first of them), driven through its API. The steps map their arguments; the emulator's
//! client does the rest. Each document is the service as it stands afterwards.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use harness_scenario::{Command, Deploy, Job, ProbeArgs, Rollback, Traffic};
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::{
    emulators::cloud_run::{
        CloudRun,
        client::{DeploySpec, JobSpec, ProbeSpec, job_summary, summary},
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pass_env`: the variables of harness's own environment that are set.
fn passed(names: &[String], env: &mut Vec<(String, String)>) {
    for n in names {
        if let Ok(v) = std::env::var(n)
            && !env.iter().any(|(k, _)| k == n)
        {
            env.push((n.clone(), v));
        }
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

/// Maps `image` to the step's `cargo` or `command`, when it names one.
fn map_image(
    ctx: &mut Ctx,
    emulator: &CloudRun,
    image: &str,
    cargo: Option<&String>,
    command: Option<&Command>,
) -> Result<(), StepError> {
    let program = match (cargo, command) {
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
            image,
            Image {
                program,
                env: Default::default(),
                dir: ctx.dir.clone(),
            },
        );
    }
    Ok(())
}

/// What a `deploy` or `job` step runs, filled in: the image (mapped to the step's `cargo`
/// or `command`), the arguments and the environment (`env`, then `pass_env`).
struct Container {
    image: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn container(
    ctx: &mut Ctx,
    emulator: &CloudRun,
    image: &harness_scenario::template::Template,
    (cargo, command): (Option<&String>, Option<&Command>),
    args: &[harness_scenario::template::Template],
    (env, pass_env): (
        &BTreeMap<String, harness_scenario::template::Template>,
        &[String],
    ),
) -> Result<Container, StepError> {
    let image = ctx.render(image)?;
    map_image(ctx, emulator, &image, cargo, command)?;
    let mut rendered = Vec::new();
    for a in args {
        rendered.push(ctx.render(a)?);
    }
    let mut vars = Vec::new();
    for (k, v) in env {
        vars.push((k.clone(), ctx.render(v)?));
    }
    passed(pass_env, &mut vars);
    Ok(Container {
        image,
        args: rendered,
        env: vars,
    })
}

impl Handler for Deploy {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let emulator = ctx.cloud_run().await?;
        let Container { image, args, env } = container(
            ctx,
            &emulator,
            &self.image,
            (self.cargo.as_ref(), self.command.as_ref()),
            &self.args,
            (&self.env, &self.pass_env),
        )?;
        let spec = DeploySpec {
            service: self.service.clone(),
            image,
            args,
            env,
            revision: self.revision.clone(),
            tag: self.tag.clone(),
            no_traffic: self.no_traffic == Some(true) || self.canary.is_some(),
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
        let mut doc = summary(&after);
        let want_ready = self.expect.ready.unwrap_or(true);
        let ready = doc["ready"] == true;
        let revision = doc["revision"].as_str().unwrap_or_default().to_owned();
        if want_ready && !ready {
            // The instance's own last words usually say why.
            let log = emulator
                .events()
                .iter()
                .rev()
                .find(|e| e["event"] == "instance_failed" && e["revision"] == revision.as_str())
                .and_then(|e| e["log"].as_str().map(str::to_owned))
                .filter(|l| !l.trim().is_empty());
            let mut message = format!(
                "revision {revision} of {} did not become ready",
                self.service
            );
            if let Some(log) = log {
                message.push_str(&format!("; its log ends with:\n{}", tail(&log, 10)));
            }
            return Err(mismatch(
                message,
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
        if let (Some(c), true) = (&self.canary, ready) {
            // What served before, pinned by revision name: a `latestRevision` target would
            // now follow the canary itself.
            let before: Value = before
                .as_ref()
                .and_then(|b| b["status"]["traffic"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    let mut pinned = json!({"revisionName": t["revisionName"]});
                    if t["percent"].as_u64().unwrap_or(0) > 0 {
                        pinned["percent"] = t["percent"].clone();
                    }
                    if t["tag"].is_string() {
                        pinned["tag"] = t["tag"].clone();
                    }
                    pinned
                })
                .collect();
            let verdict = canary(&emulator, &self.service, &revision, before, c).await?;
            doc = summary(
                &emulator
                    .get_service(&self.service)
                    .await
                    .map_err(StepError::error)?
                    .unwrap_or_default(),
            );
            doc["revision"] = json!(revision);
            let promoted = verdict["decision"] == "promoted";
            doc["canary"] = verdict;
            if !promoted {
                return Err(mismatch(
                    format!(
                        "the canary of {revision} was rolled back: {} of its {} answers were 5xx",
                        doc["canary"]["errors"], doc["canary"]["requests"]
                    ),
                    format!(
                        "an error rate of at most {}",
                        doc["canary"]["max_error_rate"]
                    ),
                    doc["canary"]["error_rate"].to_string(),
                ));
            }
        }
        Ok(Some(doc))
    }
}

/// The canary analysis: `percent` of the traffic to `revision`, requests through the
/// service over the window, and a decision from the canary's own answers (the ingress's
/// request events): promote it to 100 %, or put `before` back.
async fn canary(
    emulator: &CloudRun,
    service: &str,
    revision: &str,
    before: Value,
    c: &harness_scenario::CanaryArgs,
) -> Result<Value, StepError> {
    let fail = |e: String| StepError::error(format!("canary of {revision}: {e}"));
    let svc = emulator
        .get_service(service)
        .await
        .map_err(fail)?
        .unwrap_or_default();
    let serving = svc["status"]["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["percent"].as_u64().unwrap_or(0) > 0)
        .filter_map(|t| t["revisionName"].as_str())
        .find(|r| *r != revision)
        .map(str::to_owned)
        .ok_or_else(|| {
            fail(format!(
                "a canary needs a revision of {service} that serves already"
            ))
        })?;
    let (rev, pct, base) = (revision.to_owned(), c.percent, serving.clone());
    emulator
        .set_traffic(service, SETTLE, move |_, traffic| {
            let tags: Vec<Value> = traffic
                .iter()
                .filter(|t| t["tag"].is_string())
                .map(|t| json!({"revisionName": t["revisionName"], "tag": t["tag"]}))
                .collect();
            *traffic = vec![
                json!({"revisionName": base, "percent": 100 - pct}),
                json!({"revisionName": rev, "percent": pct}),
            ];
            traffic.extend(tags);
            Ok(())
        })
        .await
        .map_err(fail)?;
    emulator.record(
        "canary_started",
        json!({"service": service, "revision": revision,
        "percent": c.percent, "baseline": serving}),
    );
    let url = svc["status"]["url"].as_str().unwrap_or_default().to_owned();
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    let requests = c.requests.unwrap_or(40).max(1);
    let window = c.window.map_or(Duration::from_secs(2), |d| d.0);
    let gap = window / u32::try_from(requests).unwrap_or(u32::MAX);
    let from = emulator.events().len();
    let client = reqwest::Client::new();
    for _ in 0..requests {
        // Each answer counts through the ingress's request events, whatever it is.
        let _ = client
            .get(format!("{url}{path}"))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        tokio::time::sleep(gap).await;
    }
    let seen: Vec<Value> = emulator.events()[from..]
        .iter()
        .filter(|e| e["event"] == "request" && e["revision"] == revision)
        .cloned()
        .collect();
    let errors = seen
        .iter()
        .filter(|e| e["status"].as_u64().unwrap_or(0) >= 500)
        .count();
    let rate = if seen.is_empty() {
        0.0
    } else {
        errors as f64 / seen.len() as f64
    };
    let max = c.max_error_rate.unwrap_or(0.0);
    let promoted = rate <= max;
    let (rev, keep) = (revision.to_owned(), before.clone());
    emulator
        .set_traffic(service, SETTLE, move |_, traffic| {
            let tags: Vec<Value> = traffic
                .iter()
                .filter(|t| t["tag"].is_string())
                .map(|t| json!({"revisionName": t["revisionName"], "tag": t["tag"]}))
                .collect();
            if promoted {
                *traffic = vec![json!({"revisionName": rev, "percent": 100})];
                traffic.extend(tags);
            } else {
                *traffic = keep.as_array().cloned().unwrap_or_default();
            }
            Ok(())
        })
        .await
        .map_err(fail)?;
    let verdict = json!({
        "decision": if promoted { "promoted" } else { "rolled_back" },
        "percent": c.percent,
        "baseline": serving,
        "requests": seen.len(),
        "errors": errors,
        "error_rate": rate,
        "max_error_rate": max,
    });
    let mut event = verdict.clone();
    event["service"] = json!(service);
    event["revision"] = json!(revision);
    emulator.record("canary_decided", event);
    Ok(verdict)
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

impl Handler for Job {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let emulator = ctx.cloud_run().await?;
        let Container { image, args, env } = container(
            ctx,
            &emulator,
            &self.image,
            (self.cargo.as_ref(), self.command.as_ref()),
            &self.args,
            (&self.env, &self.pass_env),
        )?;
        let spec = JobSpec {
            name: self.name.clone(),
            image,
            args,
            env,
            tasks: self.tasks,
            parallelism: self.parallelism,
            max_retries: self.max_retries,
            task_timeout: self.task_timeout.map(|d| d.0),
        };
        let timeout = self.timeout.map_or(Duration::from_secs(300), |d| d.0);
        let (execution, tasks) = emulator
            .run_job(&spec, timeout)
            .await
            .map_err(|e| StepError::error(format!("job {}: {e}", self.name)))?;
        let doc = job_summary(&execution, &tasks);
        let want = self.expect.succeeded.unwrap_or(true);
        let got = doc["succeeded"] == true;
        if want != got {
            return Err(mismatch(
                format!(
                    "execution {} of job {} {}",
                    doc["execution"].as_str().unwrap_or_default(),
                    self.name,
                    if got { "succeeded" } else { "failed" }
                ),
                if want {
                    "every task to succeed"
                } else {
                    "the execution to fail"
                },
                doc["message"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .unwrap_or(if got { "succeeded" } else { "failed" }),
            ));
        }
        Ok(Some(doc))
    }
}

/// Starts the scenario's emulator: seeded by the scenario, logs in a folder of its own.
pub async fn start(
    seed: u64,
    id: &str,
    builds: Arc<crate::run::processes::Builds>,
    groups: Option<crate::stack::records::Groups>,
) -> Result<Arc<CloudRun>, StepError> {
    // In the run's folder, beside the processes' logs, when there is one.
    let dir = match &groups {
        Some(g) => g.run_dir().join(format!("cloud-run-{id}")),
        None => std::env::temp_dir().join(format!("harness-cloud-run-{id}")),
    };
    let mut cfg = crate::emulators::cloud_run::Config::new(dir);
    cfg.seed = seed;
    cfg.builds = Some(builds);
    cfg.groups = groups;
    CloudRun::start(cfg)
        .await
        .map(Arc::new)
        .map_err(|e| StepError::error(format!("start the Cloud Run emulator: {e}")))
}
