//! Jobs (`run.googleapis.com/v1`): a job is a task template, checked and given its
//! defaults as the real API does. Running it (`POST …/jobs/NAME:run`, with its overrides)
//! makes an execution, which [`super::executions`] runs.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    Shared,
    error::{ApiError, ApiResult},
    executions::{Execution, Task, TaskState, execute, execution_json, execution_not_found},
    meta::{self, Meta},
    revisions,
    services::{Cond, named_body, parse_body, selector_of},
    spec::{self, known_keys},
};

pub const API_VERSION: &str = "run.googleapis.com/v1";

pub struct Job {
    pub meta: Meta,
    pub template: Value,
    pub execution_count: u64,
    pub latest: Option<String>,
}

fn job_json(sh: &Shared, j: &Job) -> Value {
    let ns = &sh.cfg.project;
    let mut metadata = j.meta.json(
        ns,
        &format!("/apis/{API_VERSION}/namespaces/{ns}/jobs/{}", j.meta.name),
    );
    metadata["labels"]["cloud.googleapis.com/location"] = json!(sh.cfg.region);
    metadata["annotations"]["run.googleapis.com/creator"] = json!("harness-emulator");
    let mut status = json!({
        "observedGeneration": j.meta.generation,
        "conditions": [meta::condition("Ready", Some(true), "", "")],
        "executionCount": j.execution_count,
    });
    if let Some(name) = &j.latest {
        let st = sh.lock();
        if let Some(e) = st.executions.get(name) {
            let mut l = json!({"name": name, "creationTimestamp": e.meta.created,
                "completionStatus": match e.completed_cond.state {
                    Some(true) => "EXECUTION_SUCCEEDED", Some(false) => "EXECUTION_FAILED", None => "EXECUTION_RUNNING" }});
            if let Some(c) = &e.completed {
                l["completionTimestamp"] = json!(c);
            }
            status["latestCreatedExecution"] = l;
        }
    }
    json!({"apiVersion": API_VERSION, "kind": "Job", "metadata": metadata,
           "spec": {"template": j.template}, "status": status})
}

fn job_not_found(sh: &Shared, name: &str) -> ApiError {
    sh.missing("JOB", name)
}

/// Checks a Job body and fills the defaults of its task template.
fn job_template(body: &Value) -> ApiResult<(String, Value)> {
    let name = super::services::envelope(body, "Job", API_VERSION)?;
    let spec_v = body.get("spec").cloned().unwrap_or(json!({}));
    let Some(spec_obj) = spec_v.as_object() else {
        return Err(ApiError::invalid_field("spec", "Invalid value at 'spec'."));
    };
    known_keys(
        spec_obj,
        &["template", "startExecutionToken", "runExecutionToken"],
        "spec",
    )?;
    let mut template = spec_v.get("template").cloned().unwrap_or(json!({}));
    let Some(t) = template.as_object_mut() else {
        return Err(ApiError::invalid_field(
            "spec.template",
            "Invalid value at 'spec.template'.",
        ));
    };
    known_keys(t, &["metadata", "spec"], "spec.template")?;
    let es = t.entry("spec").or_insert(json!({}));
    let Some(es) = es.as_object_mut() else {
        return Err(ApiError::invalid_field(
            "spec.template.spec",
            "Invalid value at 'spec.template.spec'.",
        ));
    };
    known_keys(
        es,
        &["parallelism", "taskCount", "template"],
        "spec.template.spec",
    )?;
    let task_count = es.get("taskCount").and_then(Value::as_u64).unwrap_or(1);
    if task_count == 0 || task_count > 10_000 {
        return Err(ApiError::invalid_field(
            "spec.template.spec.taskCount",
            format!("spec.template.spec.taskCount: must be between 1 and 10000, got {task_count}"),
        ));
    }
    es.insert("taskCount".into(), json!(task_count));
    let tt = es.entry("template").or_insert(json!({}));
    let Some(tt) = tt.as_object_mut() else {
        return Err(ApiError::invalid_field(
            "spec.template.spec.template",
            "Invalid value.",
        ));
    };
    known_keys(tt, &["metadata", "spec"], "spec.template.spec.template")?;
    let ts = tt.entry("spec").or_insert(json!({}));
    let Some(ts) = ts.as_object_mut() else {
        return Err(ApiError::invalid_field(
            "spec.template.spec.template.spec",
            "Invalid value.",
        ));
    };
    spec::normalize_spec(ts, "spec.template.spec.template.spec", true)?;
    ts.entry("maxRetries").or_insert(json!(3));
    Ok((name, template))
}

/// Creates or replaces a job from its v1 body.
pub(super) async fn put(sh: Arc<Shared>, body: Value, existing: bool) -> ApiResult<Json<Value>> {
    let (name, template) = job_template(&body)?;
    let labels = meta::string_map(&body["metadata"], "labels");
    let annotations = meta::string_map(&body["metadata"], "annotations");
    let mut st = sh.lock();
    match (st.jobs.get_mut(&name), existing) {
        (Some(_), false) => {
            return Err(ApiError::conflict(format!(
                "Resource '{name}' already exists."
            )));
        }
        (None, true) => return Err(job_not_found(&sh, &name)),
        (Some(j), true) => {
            if j.template != template {
                j.meta.generation += 1;
            }
            j.template = template;
            j.meta.labels = labels;
            j.meta.annotations = annotations;
            j.meta.resource_version += 1;
        }
        (None, false) => {
            let mut m = Meta::new(&name, &mut sh.rng());
            m.labels = labels;
            m.annotations = annotations;
            st.jobs.insert(
                name.clone(),
                Job {
                    meta: m,
                    template,
                    execution_count: 0,
                    latest: None,
                },
            );
        }
    }
    drop(st);
    sh.events.push("job_saved", json!({"job": name}));
    Ok(Json(view(&sh, &name)?))
}

pub async fn create(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    put(sh, parse_body(&body)?, false).await
}

pub async fn replace(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let body = named_body(&body, &name)?;
    put(sh, body, true).await
}

/// The v1 view of job `name`.
pub(super) fn view(sh: &Shared, name: &str) -> ApiResult<Value> {
    let st = sh.lock();
    let j = st.jobs.get(name).ok_or_else(|| job_not_found(sh, name))?;
    let view = Job {
        meta: j.meta.clone(),
        template: j.template.clone(),
        execution_count: j.execution_count,
        latest: j.latest.clone(),
    };
    drop(st);
    Ok(job_json(sh, &view))
}

pub async fn get(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    Ok(Json(view(&sh, &name)?))
}

pub async fn list(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let sel = selector_of(&uri)?;
    let names: Vec<String> = sh.lock().jobs.keys().cloned().collect();
    let items = names
        .iter()
        .filter_map(|n| view(&sh, n).ok())
        .filter(|v| {
            v["metadata"]["labels"]
                .as_object()
                .is_some_and(|l| meta::matches(l, &sel))
        })
        .collect();
    Ok(Json(meta::list(API_VERSION, "Job", items)))
}

pub async fn delete(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let runners = {
        let mut st = sh.lock();
        let j = st
            .jobs
            .remove(&name)
            .ok_or_else(|| job_not_found(&sh, &name))?;
        let _ = j;
        let names: Vec<String> = st
            .executions
            .values()
            .filter(|e| e.job == name)
            .map(|e| e.meta.name.clone())
            .collect();
        names
            .iter()
            .filter_map(|n| st.executions.remove(n))
            .map(|e| {
                e.cancel.cancel();
                e.runner
            })
            .collect::<Vec<_>>()
    };
    for r in runners.into_iter().flatten() {
        let _ = r.await;
    }
    Ok(Json(meta::deleted(&name, "run.googleapis.com", "jobs")))
}

/// `POST …/jobs/NAME:run`: a new execution, with the overrides of the body.
pub async fn run(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let Some(job) = name.strip_suffix(":run") else {
        return Err(ApiError::not_found(format!(
            "The emulator does not serve POST {name}."
        )));
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(&body)?
    };
    if let Some(o) = body.as_object() {
        known_keys(o, &["overrides", "validateOnly", "etag"], "")?;
    }
    let mut espec = {
        let st = sh.lock();
        let j = st.jobs.get(job).ok_or_else(|| job_not_found(&sh, job))?;
        j.template["spec"].clone()
    };
    let ov = &body["overrides"];
    if let Some(n) = ov["taskCount"].as_u64() {
        espec["taskCount"] = json!(n);
    }
    if let Some(t) = spec::seconds(ov.get("timeoutSeconds")) {
        espec["template"]["spec"]["timeoutSeconds"] = json!(t);
    }
    if let Some(c) = ov["containerOverrides"].as_array().and_then(|c| c.first()) {
        let container = &mut espec["template"]["spec"]["containers"][0];
        if c["clearArgs"].as_bool() == Some(true) {
            container["args"] = json!([]);
        }
        if let Some(args) = c["args"].as_array().filter(|a| !a.is_empty()) {
            container["args"] = json!(args);
        }
        if let Some(env) = c["env"].as_array() {
            let mut list = container["env"].as_array().cloned().unwrap_or_default();
            for e in env {
                list.retain(|x| x["name"] != e["name"]);
                list.push(e.clone());
            }
            container["env"] = json!(list);
        }
    }
    let task_template = json!({"metadata": {}, "spec": espec["template"]["spec"]});
    let prepared = revisions::prepare(&sh, &task_template).await;
    let task_count = usize::try_from(espec["taskCount"].as_u64().unwrap_or(1)).unwrap_or(1);
    let exec_name = {
        let mut rng = sh.rng();
        format!("{job}-{}", meta::suffix(&mut rng, 5, true))
    };
    let mut m = Meta::new(&exec_name, &mut sh.rng());
    m.labels.insert("run.googleapis.com/job".into(), json!(job));
    m.labels
        .insert("cloud.googleapis.com/location".into(), json!(sh.cfg.region));
    let cancel = CancellationToken::new();
    let mut execution = Execution {
        meta: m,
        job: job.to_owned(),
        spec: espec,
        tasks: (0..task_count)
            .map(|index| Task {
                index,
                attempt: 0,
                state: TaskState::Pending,
                exit_code: None,
                message: String::new(),
                started: None,
                completed: None,
            })
            .collect(),
        started: Some(meta::now()),
        completed: None,
        completed_cond: Cond::unknown("Started"),
        cancel: cancel.clone(),
        runner: None,
    };
    let launch = match prepared {
        Ok((spec, launch)) => Some((spec, launch)),
        Err((_, reason, why)) => {
            execution.completed_cond.set(Some(false), reason, &why);
            execution.completed = Some(meta::now());
            None
        }
    };
    {
        let mut st = sh.lock();
        if let Some(j) = st.jobs.get_mut(job) {
            j.execution_count += 1;
            j.latest = Some(exec_name.clone());
        }
        st.executions.insert(exec_name.clone(), execution);
    }
    sh.events.push(
        "execution_started",
        json!({"job": job, "execution": exec_name, "tasks": task_count}),
    );
    if let Some((spec, launch)) = launch {
        let handle = tokio::spawn(execute(
            Arc::clone(&sh),
            exec_name.clone(),
            spec,
            launch,
            cancel,
        ));
        if let Some(e) = sh.lock().executions.get_mut(&exec_name) {
            e.runner = Some(handle);
        }
    }
    let st = sh.lock();
    let e = st
        .executions
        .get(&exec_name)
        .ok_or_else(|| execution_not_found(&sh, &exec_name))?;
    Ok(Json(execution_json(&sh, e)))
}
