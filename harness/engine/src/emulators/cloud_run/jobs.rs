//! Jobs, executions and tasks (`run.googleapis.com/v1`). A job is a task template; running
//! it (`POST …/jobs/NAME:run`) makes an execution of `taskCount` tasks, run `parallelism`
//! at a time as real processes of the job's image with Cloud Run's `CLOUD_RUN_JOB`,
//! `CLOUD_RUN_EXECUTION`, `CLOUD_RUN_TASK_INDEX`, `CLOUD_RUN_TASK_COUNT` and
//! `CLOUD_RUN_TASK_ATTEMPT`. A task that exits non-zero or passes its timeout is retried up to
//! `maxRetries` times; the execution completes when every task has succeeded, and fails
//! when one has run out of attempts.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

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
    instances::{self, Launch},
    meta::{self, Meta},
    revisions,
    services::{Cond, parse_body, selector_of},
    spec::{self, RunSpec, known_keys},
};

pub const API_VERSION: &str = "run.googleapis.com/v1";

pub struct Job {
    pub meta: Meta,
    pub template: Value,
    pub execution_count: u64,
    pub latest: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct Task {
    pub index: usize,
    pub attempt: u32,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub message: String,
    pub started: Option<String>,
    pub completed: Option<String>,
}

pub struct Execution {
    pub meta: Meta,
    pub job: String,
    pub spec: Value,
    pub tasks: Vec<Task>,
    pub started: Option<String>,
    pub completed: Option<String>,
    pub completed_cond: Cond,
    pub cancel: CancellationToken,
    pub runner: Option<tokio::task::JoinHandle<()>>,
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

fn counts(tasks: &[Task]) -> (usize, usize, usize, usize, u32) {
    let n = |s: TaskState| tasks.iter().filter(|t| t.state == s).count();
    let retried = tasks.iter().map(|t| t.attempt).sum();
    (
        n(TaskState::Succeeded),
        n(TaskState::Failed),
        n(TaskState::Running),
        n(TaskState::Cancelled),
        retried,
    )
}

fn execution_json(sh: &Shared, e: &Execution) -> Value {
    let ns = &sh.cfg.project;
    let metadata = e.meta.json(
        ns,
        &format!(
            "/apis/{API_VERSION}/namespaces/{ns}/executions/{}",
            e.meta.name
        ),
    );
    let (succeeded, failed, running, cancelled, retried) = counts(&e.tasks);
    let mut status = json!({
        "observedGeneration": 1,
        "conditions": [
            e.completed_cond.json("Completed"),
            meta::condition("ResourcesAvailable", Some(true), "", ""),
            meta::condition("Started", Some(e.started.is_some()), "", ""),
        ],
        "succeededCount": succeeded,
        "failedCount": failed,
        "runningCount": running,
        "cancelledCount": cancelled,
        "retriedCount": retried,
        "logUri": format!("file://{}", sh.cfg.log_dir.join(&e.meta.name).display()),
    });
    if let Some(s) = &e.started {
        status["startTime"] = json!(s);
    }
    if let Some(c) = &e.completed {
        status["completionTime"] = json!(c);
    }
    json!({"apiVersion": API_VERSION, "kind": "Execution", "metadata": metadata,
           "spec": e.spec, "status": status})
}

fn task_json(sh: &Shared, e: &Execution, t: &Task) -> Value {
    let ns = &sh.cfg.project;
    let name = format!("{}-task{}", e.meta.name, t.index);
    let mut m = e.meta.clone();
    m.name.clone_from(&name);
    m.labels
        .insert("run.googleapis.com/execution".into(), json!(e.meta.name));
    m.labels
        .insert("run.googleapis.com/task".into(), json!(t.index.to_string()));
    let metadata = m.json(
        ns,
        &format!("/apis/{API_VERSION}/namespaces/{ns}/tasks/{name}"),
    );
    let state = match t.state {
        TaskState::Succeeded => Some(true),
        TaskState::Failed | TaskState::Cancelled => Some(false),
        _ => None,
    };
    let mut status = json!({
        "observedGeneration": 1,
        "index": t.index,
        "retried": t.attempt,
        "conditions": [meta::condition("Completed", state, "", &t.message),
                       meta::condition("Started", Some(t.started.is_some()), "", "")],
        "logUri": format!("file://{}", sh.cfg.log_dir.join(&e.meta.name).display()),
    });
    if let Some(code) = t.exit_code {
        status["lastAttemptResult"] = json!({"exitCode": code, "status": {"code": i32::from(code != 0) * 2, "message": t.message}});
    }
    if let Some(s) = &t.started {
        status["startTime"] = json!(s);
    }
    if let Some(c) = &t.completed {
        status["completionTime"] = json!(c);
    }
    json!({"apiVersion": API_VERSION, "kind": "Task", "metadata": metadata,
           "spec": e.spec["template"]["spec"], "status": status})
}

fn job_not_found(sh: &Shared, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Resource '{name}' of kind 'JOB' in region '{}' in project '{}' does not exist.",
        sh.cfg.region, sh.cfg.project
    ))
}

fn execution_not_found(sh: &Shared, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Resource '{name}' of kind 'EXECUTION' in region '{}' in project '{}' does not exist.",
        sh.cfg.region, sh.cfg.project
    ))
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

async fn put_job(sh: Arc<Shared>, body: Value, existing: bool) -> ApiResult<Json<Value>> {
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
    let st = sh.lock();
    let j = st
        .jobs
        .get(&name)
        .ok_or_else(|| job_not_found(&sh, &name))?;
    let j = json!({"meta": j.meta.name});
    drop(st);
    let _ = j;
    let st = sh.lock();
    let job = st
        .jobs
        .get(&name)
        .ok_or_else(|| job_not_found(&sh, &name))?;
    let meta_clone = (
        job.meta.clone(),
        job.template.clone(),
        job.execution_count,
        job.latest.clone(),
    );
    drop(st);
    let view = Job {
        meta: meta_clone.0,
        template: meta_clone.1,
        execution_count: meta_clone.2,
        latest: meta_clone.3,
    };
    Ok(Json(job_json(&sh, &view)))
}

pub async fn create(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    put_job(sh, parse_body(&body)?, false).await
}

pub async fn replace(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let body = parse_body(&body)?;
    if body["metadata"]["name"].as_str() != Some(name.as_str()) {
        return Err(ApiError::invalid_field(
            "metadata.name",
            format!("metadata.name: the name in the body must be \"{name}\", as in the path"),
        ));
    }
    put_job(sh, body, true).await
}

fn job_view(sh: &Shared, name: &str) -> ApiResult<Value> {
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
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    Ok(Json(job_view(&sh, &name)?))
}

pub async fn list(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let sel = selector_of(&uri)?;
    let names: Vec<String> = sh.lock().jobs.keys().cloned().collect();
    let items = names
        .iter()
        .filter_map(|n| job_view(&sh, n).ok())
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
    sh.namespace(&ns)?;
    sh.region(&headers)?;
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
    Ok(Json(
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success",
                   "details": {"name": name, "group": "run.googleapis.com", "kind": "jobs"}}),
    ))
}

/// `POST …/jobs/NAME:run`: a new execution, with the overrides of the body.
pub async fn run(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
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

/// Runs an execution's tasks, `parallelism` at a time (0: all at once).
async fn execute(
    sh: Arc<Shared>,
    name: String,
    spec: Arc<RunSpec>,
    launch: Launch,
    cancel: CancellationToken,
) {
    let (job, count, parallelism, retries) = {
        let st = sh.lock();
        let Some(e) = st.executions.get(&name) else {
            return;
        };
        let count = e.tasks.len();
        let p = usize::try_from(e.spec["parallelism"].as_u64().unwrap_or(0)).unwrap_or(0);
        let retries = u32::try_from(
            e.spec["template"]["spec"]["maxRetries"]
                .as_u64()
                .unwrap_or(3),
        )
        .unwrap_or(3);
        (
            e.job.clone(),
            count,
            if p == 0 { count } else { p.min(count) },
            retries,
        )
    };
    let next = Arc::new(Mutex::new(0usize));
    let failed = CancellationToken::new();
    let workers = (0..parallelism).map(|_| {
        let (sh, name, spec, launch, cancel, next, job, failed) = (
            Arc::clone(&sh),
            name.clone(),
            Arc::clone(&spec),
            launch.clone(),
            cancel.clone(),
            Arc::clone(&next),
            job.clone(),
            failed.clone(),
        );
        async move {
            loop {
                if cancel.is_cancelled() || failed.is_cancelled() {
                    return;
                }
                let index = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    if *n >= count {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                if !run_task(
                    &sh, &name, &job, index, count, retries, &spec, &launch, &cancel,
                )
                .await
                {
                    failed.cancel();
                }
            }
        }
    });
    futures::future::join_all(workers).await;
    let mut st = sh.lock();
    let Some(e) = st.executions.get_mut(&name) else {
        return;
    };
    for t in &mut e.tasks {
        if t.state == TaskState::Pending || t.state == TaskState::Running {
            t.state = TaskState::Cancelled;
        }
    }
    let (succeeded, failed_n, _, cancelled, _) = counts(&e.tasks);
    e.completed = Some(meta::now());
    if cancel.is_cancelled() {
        e.completed_cond
            .set(Some(false), "Cancelled", "The execution was cancelled.");
    } else if succeeded == count {
        e.completed_cond.set(Some(true), "", "");
    } else {
        let first = e.tasks.iter().find(|t| t.state == TaskState::Failed);
        let msg = first.map_or_else(String::new, |t| {
            format!("Task {}-task{} failed: {}", name, t.index, t.message)
        });
        e.completed_cond.set(
            Some(false),
            "NonZeroExitCode",
            &format!("{msg} ({failed_n} failed, {cancelled} cancelled, {succeeded} succeeded)"),
        );
    }
    sh.events.push("execution_completed", json!({"job": job, "execution": name,
        "succeeded": succeeded, "failed": failed_n, "cancelled": cancelled, "ok": succeeded == count}));
}

/// One task, with its retries. True when it succeeded.
#[allow(clippy::too_many_arguments)]
async fn run_task(
    sh: &Shared,
    execution: &str,
    job: &str,
    index: usize,
    count: usize,
    retries: u32,
    spec: &RunSpec,
    launch: &Launch,
    cancel: &CancellationToken,
) -> bool {
    let dir = sh.cfg.log_dir.join(execution);
    let _ = std::fs::create_dir_all(&dir);
    for attempt in 0..=retries {
        let set = |f: &dyn Fn(&mut Task)| {
            if let Some(t) = sh
                .lock()
                .executions
                .get_mut(execution)
                .and_then(|e| e.tasks.get_mut(index))
            {
                f(t);
            }
        };
        set(&|t| {
            t.attempt = attempt;
            t.state = TaskState::Running;
            t.started = Some(meta::now());
        });
        let log = dir.join(format!("task{index}-attempt{attempt}.log"));
        let extra = [
            ("CLOUD_RUN_JOB", job.to_owned()),
            ("CLOUD_RUN_EXECUTION", execution.to_owned()),
            ("CLOUD_RUN_TASK_INDEX", index.to_string()),
            ("CLOUD_RUN_TASK_COUNT", count.to_string()),
            ("CLOUD_RUN_TASK_ATTEMPT", attempt.to_string()),
        ];
        let outcome: Result<i32, String> = async {
            let name = launch
                .container
                .as_ref()
                .map(|_| format!("harness-crt-{execution}-{index}-{attempt}-{}", std::process::id()));
            let mut cmd = instances::command(launch, &extra, &log, name.as_deref())?;
            cmd.kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| format!("could not start the program of image '{}': {e}", spec.image))?;
            let _recorded = Recorded::new(sh.cfg.groups.clone(), child.id());
            tokio::select! {
                s = child.wait() => s.map(|s| s.code().unwrap_or(-1)).map_err(|e| e.to_string()),
                () = tokio::time::sleep(spec.timeout) => {
                    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = child.wait().await;
                    if let Some(n) = &name {
                        instances::remove_container(n).await;
                    }
                    Err(format!("The task timed out after {}s.", spec.timeout.as_secs()))
                }
                () = cancel.cancelled() => {
                    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                    Err("cancelled".into())
                }
            }
        }
        .await;
        let done = meta::now();
        match outcome {
            Ok(0) => {
                set(&|t| {
                    t.state = TaskState::Succeeded;
                    t.exit_code = Some(0);
                    t.message = String::new();
                    t.completed = Some(done.clone());
                });
                sh.events.push("task", json!({"execution": execution, "index": index, "attempt": attempt, "exit_code": 0}));
                return true;
            }
            other => {
                let (code, message) = match &other {
                    Ok(c) => (
                        Some(*c),
                        format!("The container exited with an error (exit code {c})."),
                    ),
                    Err(e) => (None, e.clone()),
                };
                sh.events.push(
                    "task",
                    json!({"execution": execution, "index": index, "attempt": attempt,
                                              "exit_code": code, "message": message}),
                );
                let last = attempt == retries || cancel.is_cancelled();
                set(&|t| {
                    t.exit_code = code;
                    t.message.clone_from(&message);
                    if last {
                        t.state = if cancel.is_cancelled() {
                            TaskState::Cancelled
                        } else {
                            TaskState::Failed
                        };
                        t.completed = Some(done.clone());
                    }
                });
                if last {
                    return false;
                }
            }
        }
    }
    false
}

pub async fn list_executions(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let sel = selector_of(&uri)?;
    let st = sh.lock();
    let mut list: Vec<&Execution> = st
        .executions
        .values()
        .filter(|e| meta::matches(&e.meta.labels, &sel))
        .collect();
    list.sort_by(|a, b| b.meta.created.cmp(&a.meta.created));
    let items = list.into_iter().map(|e| execution_json(&sh, e)).collect();
    Ok(Json(meta::list(API_VERSION, "Execution", items)))
}

pub async fn get_execution(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let st = sh.lock();
    let e = st
        .executions
        .get(&name)
        .ok_or_else(|| execution_not_found(&sh, &name))?;
    Ok(Json(execution_json(&sh, e)))
}

pub async fn cancel_execution(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let Some(exec) = name.strip_suffix(":cancel") else {
        return Err(ApiError::not_found(format!(
            "The emulator does not serve POST {name}."
        )));
    };
    let runner = {
        let mut st = sh.lock();
        let e = st
            .executions
            .get_mut(exec)
            .ok_or_else(|| execution_not_found(&sh, exec))?;
        e.cancel.cancel();
        e.runner.take()
    };
    if let Some(r) = runner {
        let _ = r.await;
    }
    let st = sh.lock();
    let e = st
        .executions
        .get(exec)
        .ok_or_else(|| execution_not_found(&sh, exec))?;
    Ok(Json(execution_json(&sh, e)))
}

pub async fn delete_execution(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let e = sh
        .lock()
        .executions
        .remove(&name)
        .ok_or_else(|| execution_not_found(&sh, &name))?;
    e.cancel.cancel();
    if let Some(r) = e.runner {
        let _ = r.await;
    }
    Ok(Json(
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success",
                   "details": {"name": name, "group": "run.googleapis.com", "kind": "executions"}}),
    ))
}

pub async fn list_tasks(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let sel = selector_of(&uri)?;
    let st = sh.lock();
    let items: Vec<Value> = st
        .executions
        .values()
        .flat_map(|e| e.tasks.iter().map(move |t| (e, t)))
        .map(|(e, t)| task_json(&sh, e, t))
        .filter(|v| {
            v["metadata"]["labels"]
                .as_object()
                .is_some_and(|l| meta::matches(l, &sel))
        })
        .collect();
    Ok(Json(meta::list(API_VERSION, "Task", items)))
}

pub async fn get_task(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.namespace(&ns)?;
    sh.region(&headers)?;
    let st = sh.lock();
    let found = name.rsplit_once("-task").and_then(|(exec, i)| {
        let e = st.executions.get(exec)?;
        let t = e.tasks.get(i.parse::<usize>().ok()?)?;
        Some(task_json(&sh, e, t))
    });
    found.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "Resource '{name}' of kind 'TASK' in region '{}' in project '{}' does not exist.",
            sh.cfg.region, sh.cfg.project
        ))
    })
}

/// A task's process group in the run's record while it runs.
struct Recorded(Option<(crate::stack::records::Groups, u32)>);

impl Recorded {
    fn new(groups: Option<crate::stack::records::Groups>, pid: Option<u32>) -> Self {
        let both = groups.zip(pid);
        if let Some((g, pgid)) = &both {
            g.add("cloud-run-task", *pgid);
        }
        Recorded(both)
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some((g, pgid)) = &self.0 {
            g.remove(*pgid);
        }
    }
}

/// Waits for every execution's runner after a shutdown cancelled them.
pub async fn wait_all(sh: &Shared) {
    let runners: Vec<_> = sh
        .lock()
        .executions
        .values_mut()
        .filter_map(|e| e.runner.take())
        .collect();
    for r in runners {
        let _ = r.await;
    }
}
