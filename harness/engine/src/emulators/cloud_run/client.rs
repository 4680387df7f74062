//! What harness's own steps (`deploy`, `traffic`, `rollback`) do to the emulator, written as
//! gcloud does it: through the v1 API, reading the service, changing its spec and writing
//! it back, then waiting for the reconciliation to settle. Nothing here reaches around the
//! API into the model.

use std::time::Duration;

use serde_json::{Value, json};

use super::{CloudRun, meta};

/// A probe as a step writes it.
#[derive(Clone, Debug, Default)]
pub struct ProbeSpec {
    pub path: Option<String>,
    pub initial_delay: Option<Duration>,
    pub period: Option<Duration>,
    pub timeout: Option<Duration>,
    pub failure_threshold: Option<u64>,
}

/// A deploy as a step writes it.
#[derive(Clone, Debug, Default)]
pub struct DeploySpec {
    pub service: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub revision: Option<String>,
    pub tag: Option<String>,
    pub no_traffic: bool,
    pub min_instances: Option<u64>,
    pub max_instances: Option<u64>,
    pub concurrency: Option<u64>,
    pub startup_probe: Option<ProbeSpec>,
    pub liveness_probe: Option<ProbeSpec>,
}

fn probe_json(p: &ProbeSpec) -> Value {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs().max(1));
    let mut v = json!({});
    match &p.path {
        Some(path) => v["httpGet"] = json!({"path": path}),
        None => v["tcpSocket"] = json!({}),
    }
    if let Some(d) = p.initial_delay {
        v["initialDelaySeconds"] = json!(d.as_secs());
    }
    if let Some(s) = secs(p.period) {
        v["periodSeconds"] = json!(s);
    }
    if let Some(s) = secs(p.timeout) {
        v["timeoutSeconds"] = json!(s);
    }
    if let Some(n) = p.failure_threshold {
        v["failureThreshold"] = json!(n);
    }
    v
}

/// `STATUS: message` of an API error answer.
fn api_error(status: reqwest::StatusCode, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match v["error"]["message"].as_str() {
        Some(m) => format!("{}: {m}", v["error"]["status"].as_str().unwrap_or("ERROR")),
        None => format!("HTTP {status}: {body}"),
    }
}

/// The condition of `kind` in a resource's status.
pub fn condition<'a>(resource: &'a Value, kind: &str) -> Option<&'a Value> {
    resource["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The document of a Cloud Run step: the service as it stands.
pub fn summary(svc: &Value) -> Value {
    let ready = condition(svc, "Ready");
    let traffic: Vec<Value> = svc["status"]["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            json!({
                "revision": t["revisionName"],
                "percent": t["percent"].as_u64().unwrap_or(0),
                "latest": t["latestRevision"].as_bool().unwrap_or(false),
                "tag": t["tag"],
                "url": t["url"],
            })
        })
        .collect();
    let tags: serde_json::Map<String, Value> = traffic
        .iter()
        .filter_map(|t| Some((t["tag"].as_str()?.to_owned(), t["url"].clone())))
        .collect();
    json!({
        "service": svc["metadata"]["name"],
        "revision": svc["status"]["latestCreatedRevisionName"],
        "ready": ready.map(|c| c["status"] == "True"),
        "reason": ready.and_then(|c| c.get("reason")).cloned().unwrap_or(Value::Null),
        "message": ready.and_then(|c| c.get("message")).cloned().unwrap_or(Value::Null),
        "url": svc["status"]["url"],
        "latest_ready": svc["status"]["latestReadyRevisionName"],
        "latest_created": svc["status"]["latestCreatedRevisionName"],
        "generation": svc["metadata"]["generation"],
        "traffic": traffic,
        "tags": tags,
    })
}

impl CloudRun {
    fn services_api(&self) -> String {
        format!(
            "{}/apis/serving.knative.dev/v1/namespaces/{}/services",
            self.url(),
            self.project()
        )
    }

    /// The service, or `None` when it does not exist.
    pub async fn get_service(&self, name: &str) -> Result<Option<Value>, String> {
        let r = reqwest::Client::new()
            .get(format!("{}/{name}", self.services_api()))
            .send()
            .await
            .map_err(|e| format!("ask the Cloud Run emulator for {name}: {e}"))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| e.to_string())?;
        match status.as_u16() {
            200 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| e.to_string()),
            404 => Ok(None),
            _ => Err(api_error(status, &body)),
        }
    }

    async fn write_service(&self, body: &Value, exists: bool) -> Result<Value, String> {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        let client = reqwest::Client::new();
        let req = if exists {
            client.put(format!("{}/{name}", self.services_api()))
        } else {
            client.post(self.services_api())
        };
        let r = req
            .json(body)
            .send()
            .await
            .map_err(|e| format!("write {name} to the Cloud Run emulator: {e}"))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            Err(api_error(status, &text))
        }
    }

    /// Waits until the service's generation is observed and Ready is no longer Unknown.
    pub async fn settled(&self, name: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let svc = self
                .get_service(name)
                .await?
                .ok_or_else(|| format!("service {name} is gone"))?;
            let fresh = svc["status"]["observedGeneration"] == svc["metadata"]["generation"];
            let decided = condition(&svc, "Ready").is_some_and(|c| c["status"] != "Unknown");
            if fresh && decided {
                return Ok(svc);
            }
            if tokio::time::Instant::now() >= deadline {
                let why = condition(&svc, "Ready")
                    .and_then(|c| c["message"].as_str())
                    .unwrap_or("")
                    .to_owned();
                return Err(format!(
                    "service {name} did not settle within {timeout:?} ({why})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Deploys a revision as `gcloud run deploy` does; returns the service before (if it
    /// existed) and after it settled.
    pub async fn deploy(
        &self,
        spec: &DeploySpec,
        timeout: Duration,
    ) -> Result<(Option<Value>, Value), String> {
        let before = self.get_service(&spec.service).await?;
        let mut body = before.clone().unwrap_or_else(|| {
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": spec.service, "namespace": self.project()},
                "spec": {"template": {"metadata": {}, "spec": {"containers": [{}]}}},
            })
        });
        if let Some(o) = body.as_object_mut() {
            o.remove("status");
        }
        let generation = body["metadata"]["generation"].as_i64().unwrap_or(0);
        let name = match &spec.revision {
            Some(suffix) => format!("{}-{suffix}", spec.service),
            None => format!(
                "{}-{:05}-{}",
                spec.service,
                generation + 1,
                meta::suffix(&mut self.shared.rng(), 3, false)
            ),
        };
        let template = &mut body["spec"]["template"];
        template["metadata"]["name"] = json!(name);
        let ann = &mut template["metadata"]["annotations"];
        if !ann.is_object() {
            *ann = json!({});
        }
        for (key, v) in [
            ("autoscaling.knative.dev/minScale", spec.min_instances),
            ("autoscaling.knative.dev/maxScale", spec.max_instances),
        ] {
            match v {
                Some(n) => ann[key] = json!(n.to_string()),
                None => {
                    if let Some(o) = ann.as_object_mut() {
                        o.remove(key);
                    }
                }
            }
        }
        let tspec = &mut template["spec"];
        match spec.concurrency {
            Some(c) => tspec["containerConcurrency"] = json!(c),
            None => {
                if let Some(o) = tspec.as_object_mut() {
                    o.remove("containerConcurrency");
                }
            }
        }
        let c = &mut tspec["containers"][0];
        c["image"] = json!(spec.image);
        c["args"] = json!(spec.args);
        c["env"] = json!(
            spec.env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>()
        );
        if let Some(o) = c.as_object_mut() {
            o.remove("startupProbe");
            o.remove("livenessProbe");
        }
        if let Some(p) = &spec.startup_probe {
            c["startupProbe"] = probe_json(p);
        }
        if let Some(p) = &spec.liveness_probe {
            c["livenessProbe"] = probe_json(p);
        }
        let mut traffic: Vec<Value> = body["spec"]["traffic"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if spec.no_traffic {
            // Pin what follows the latest revision to the one that serves now.
            let serving = before
                .as_ref()
                .and_then(|b| {
                    b["status"]["latestReadyRevisionName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    format!(
                        "`no_traffic` needs a revision of {} that serves already",
                        spec.service
                    )
                })?;
            for t in &mut traffic {
                if t["latestRevision"] == true {
                    *t = json!({"revisionName": serving, "percent": t["percent"], "tag": t["tag"]});
                }
            }
        }
        if let Some(tag) = &spec.tag {
            traffic.retain(|t| {
                t["tag"].as_str() != Some(tag.as_str()) || t["percent"].as_u64().unwrap_or(0) > 0
            });
            traffic.push(json!({"revisionName": name, "tag": tag}));
        }
        if traffic.is_empty() {
            traffic.push(json!({"latestRevision": true, "percent": 100}));
        }
        body["spec"]["traffic"] = json!(traffic);
        self.write_service(&body, before.is_some()).await?;
        let after = self.settled(&spec.service, timeout).await?;
        Ok((before, after))
    }

    /// Changes a service's `spec.traffic` with `change` and waits for it to settle.
    pub async fn set_traffic(
        &self,
        service: &str,
        timeout: Duration,
        change: impl FnOnce(&Value, &mut Vec<Value>) -> Result<(), String>,
    ) -> Result<Value, String> {
        let mut body = self.get_service(service).await?.ok_or_else(|| {
            format!("Cloud Run service `{service}` does not exist: deploy it first")
        })?;
        let mut traffic: Vec<Value> = body["spec"]["traffic"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        change(&body, &mut traffic)?;
        body["spec"]["traffic"] = json!(traffic);
        if let Some(o) = body.as_object_mut() {
            o.remove("status");
        }
        self.write_service(&body, true).await?;
        self.settled(service, timeout).await
    }

    /// The ready revisions of a service, newest first.
    pub async fn ready_revisions(&self, service: &str) -> Result<Vec<String>, String> {
        let url = format!(
            "{}/apis/serving.knative.dev/v1/namespaces/{}/revisions?labelSelector=serving.knative.dev/service%3D{service}",
            self.url(),
            self.project()
        );
        let list: Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|r| condition(r, "Ready").is_some_and(|c| c["status"] == "True"))
            .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_owned))
            .collect())
    }
}

/// A job as a step writes it.
#[derive(Clone, Debug, Default)]
pub struct JobSpec {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub tasks: Option<u64>,
    pub parallelism: Option<u64>,
    pub max_retries: Option<u64>,
    pub task_timeout: Option<Duration>,
}

impl CloudRun {
    fn run_api(&self) -> String {
        format!(
            "{}/apis/run.googleapis.com/v1/namespaces/{}",
            self.url(),
            self.project()
        )
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
        let r = req.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            Err(api_error(status, &text))
        }
    }

    /// Creates or replaces the job as `gcloud run jobs create|update` does, executes it as
    /// `gcloud run jobs execute --wait` does, and returns the finished execution and its
    /// tasks.
    pub async fn run_job(
        &self,
        spec: &JobSpec,
        timeout: Duration,
    ) -> Result<(Value, Vec<Value>), String> {
        let client = reqwest::Client::new();
        let url = format!("{}/jobs/{}", self.run_api(), spec.name);
        let exists = client
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status()
            .is_success();
        let mut task = json!({
            "containers": [{
                "image": spec.image,
                "args": spec.args,
                "env": spec.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
            }],
        });
        if let Some(n) = spec.max_retries {
            task["maxRetries"] = json!(n);
        }
        if let Some(t) = spec.task_timeout {
            task["timeoutSeconds"] = json!(t.as_secs().max(1));
        }
        let mut exec = json!({"template": {"spec": task}});
        if let Some(n) = spec.tasks {
            exec["taskCount"] = json!(n);
        }
        if let Some(n) = spec.parallelism {
            exec["parallelism"] = json!(n);
        }
        let body = json!({
            "apiVersion": "run.googleapis.com/v1",
            "kind": "Job",
            "metadata": {"name": spec.name, "namespace": self.project()},
            "spec": {"template": {"spec": exec}},
        });
        let write = if exists {
            client.put(&url).json(&body)
        } else {
            client.post(format!("{}/jobs", self.run_api())).json(&body)
        };
        self.call(write, &format!("write job {}", spec.name))
            .await?;
        let started = self
            .call(
                client.post(format!("{url}:run")).json(&json!({})),
                &format!("run job {}", spec.name),
            )
            .await?;
        let name = started["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let deadline = tokio::time::Instant::now() + timeout;
        let done = loop {
            let e = self
                .call(
                    client.get(format!("{}/executions/{name}", self.run_api())),
                    "read the execution",
                )
                .await?;
            if condition(&e, "Completed").is_some_and(|c| c["status"] != "Unknown") {
                break e;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "execution {name} did not finish within {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let tasks = self
            .call(
                client.get(format!(
                    "{}/tasks?labelSelector=run.googleapis.com/execution%3D{name}",
                    self.run_api()
                )),
                "list the execution's tasks",
            )
            .await?;
        let mut tasks = tasks["items"].as_array().cloned().unwrap_or_default();
        tasks.sort_by_key(|t| t["status"]["index"].as_u64().unwrap_or(0));
        Ok((done, tasks))
    }
}

/// The document of a `job` step.
pub fn job_summary(execution: &Value, tasks: &[Value]) -> Value {
    let s = &execution["status"];
    let completed = condition(execution, "Completed");
    let ms = match (s["startTime"].as_str(), s["completionTime"].as_str()) {
        (Some(a), Some(b)) => chrono::DateTime::parse_from_rfc3339(b)
            .ok()
            .zip(chrono::DateTime::parse_from_rfc3339(a).ok())
            .map(|(b, a)| (b - a).num_milliseconds()),
        _ => None,
    };
    json!({
        "job": execution["metadata"]["labels"]["run.googleapis.com/job"],
        "execution": execution["metadata"]["name"],
        "succeeded": completed.is_some_and(|c| c["status"] == "True"),
        "message": completed.and_then(|c| c.get("message")).cloned().unwrap_or(Value::Null),
        "tasks": tasks.len(),
        "succeeded_count": s["succeededCount"],
        "failed_count": s["failedCount"],
        "retried_count": s["retriedCount"],
        "cancelled_count": s["cancelledCount"],
        "duration_ms": ms,
        "task_results": tasks.iter().map(|t| json!({
            "index": t["status"]["index"],
            "exit_code": t["status"]["lastAttemptResult"]["exitCode"],
            "retried": t["status"]["retried"],
        })).collect::<Vec<_>>(),
    })
}
