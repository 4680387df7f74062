//! Executions and tasks (`run.googleapis.com/v1`). An execution runs `taskCount` tasks,
//! `parallelism` at a time, as real processes (or containers) of the job's image with Cloud
//! Run's `CLOUD_RUN_JOB`, `CLOUD_RUN_EXECUTION`, `CLOUD_RUN_TASK_INDEX`,
//! `CLOUD_RUN_TASK_COUNT` and `CLOUD_RUN_TASK_ATTEMPT`. A task that exits non-zero or passes
//! its timeout is retried up to `maxRetries` times; the execution completes when every task
//! has succeeded, and fails when one has run out of attempts.

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
    jobs::API_VERSION,
    meta::{self, Meta},
    services::{Cond, selector_of},
    spec::RunSpec,
};

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

pub(super) fn counts(tasks: &[Task]) -> (usize, usize, usize, usize, u32) {
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

pub(super) fn execution_json(sh: &Shared, e: &Execution) -> Value {
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

pub(super) fn execution_not_found(sh: &Shared, name: &str) -> ApiError {
    sh.missing("EXECUTION", name)
}

/// Runs an execution's tasks, `parallelism` at a time (0: all at once).
pub(super) async fn execute(
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
    sh.scope(&ns, &headers)?;
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
    sh.scope(&ns, &headers)?;
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
    sh.scope(&ns, &headers)?;
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
    sh.scope(&ns, &headers)?;
    let e = sh
        .lock()
        .executions
        .remove(&name)
        .ok_or_else(|| execution_not_found(&sh, &name))?;
    e.cancel.cancel();
    if let Some(r) = e.runner {
        let _ = r.await;
    }
    Ok(Json(meta::deleted(
        &name,
        "run.googleapis.com",
        "executions",
    )))
}

pub async fn list_tasks(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
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
    sh.scope(&ns, &headers)?;
    let st = sh.lock();
    let found = name.rsplit_once("-task").and_then(|(exec, i)| {
        let e = st.executions.get(exec)?;
        let t = e.tasks.get(i.parse::<usize>().ok()?)?;
        Some(task_json(&sh, e, t))
    });
    found.map(Json).ok_or_else(|| sh.missing("TASK", &name))
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
