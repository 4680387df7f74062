//! The v2 REST surface of jobs and executions
//! (`/v2/projects/{p}/locations/{l}/jobs[/{j}[:run]]`, `…/jobs/{j}/executions[/{e}[:cancel]]`),
//! as Google's client libraries call it. Like `v2.rs` for services, it translates: a v2 Job
//! becomes the v1 body the model applies, and the model's v1 views of jobs and executions
//! are turned back into v2 resources. A write answers with a long-running operation: a job's
//! is done at once (a job has nothing to roll out), a run's once its execution has ended.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Map, Value, json};

use super::{
    Shared,
    error::{ApiError, ApiResult},
    executions, jobs, meta,
    services::parse_body,
    spec::{known_keys, seconds},
    v2::{self, OpTarget},
};

pub const JOB_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Job";
pub const EXECUTION_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Execution";

/// Fields of a v2 Job; the output-only ones are accepted and ignored, as the real API does.
const JOB_KEYS: &[&str] = &[
    "name",
    "uid",
    "generation",
    "labels",
    "annotations",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "creator",
    "lastModifier",
    "client",
    "clientVersion",
    "launchStage",
    "binaryAuthorization",
    "template",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "executionCount",
    "latestCreatedExecution",
    "reconciling",
    "satisfiesPzs",
    "startExecutionToken",
    "runExecutionToken",
    "etag",
];
const EXECUTION_TEMPLATE_KEYS: &[&str] = &[
    "labels",
    "annotations",
    "parallelism",
    "taskCount",
    "template",
];
const TASK_TEMPLATE_KEYS: &[&str] = &[
    "containers",
    "volumes",
    "maxRetries",
    "timeout",
    "serviceAccount",
    "executionEnvironment",
    "encryptionKey",
    "vpcAccess",
    "nodeSelector",
    "gpuZonalRedundancyDisabled",
];

/// Only the user's own labels and annotations (not the ones the model keeps).
fn user(m: &Value) -> Map<String, Value> {
    m.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !k.starts_with("cloud.googleapis.com/") && !k.starts_with("run.googleapis.com/")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn object<'a>(v: &'a Value, at: &str) -> ApiResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ApiError::invalid_field(at, format!("Invalid value at '{at}'.")))
}

/// A v2 Job as the v1 body the model applies.
fn job_v1(name: &str, v2: &Value) -> ApiResult<Value> {
    known_keys(object(v2, "job")?, JOB_KEYS, "job")?;
    let et = v2.get("template").cloned().unwrap_or(json!({}));
    known_keys(
        object(&et, "job.template")?,
        EXECUTION_TEMPLATE_KEYS,
        "job.template",
    )?;
    let tt = et.get("template").cloned().unwrap_or(json!({}));
    known_keys(
        object(&tt, "job.template.template")?,
        TASK_TEMPLATE_KEYS,
        "job.template.template",
    )?;
    let containers = tt["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| v2::container_v1(c, &format!("job.template.template.containers[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut task = json!({"containers": containers});
    if let Some(n) = tt["maxRetries"].as_u64() {
        task["maxRetries"] = json!(n);
    }
    if let Some(t) = tt.get("timeout") {
        task["timeoutSeconds"] = json!(seconds(Some(t)).ok_or_else(|| {
            ApiError::invalid_field(
                "job.template.template.timeout",
                format!("Invalid value at 'job.template.template.timeout' ({t}): a duration such as \"600s\"."),
            )
        })?);
    }
    if let Some(sa) = tt["serviceAccount"].as_str() {
        task["serviceAccountName"] = json!(sa);
    }
    let mut espec = json!({"template": {"spec": task}});
    for k in ["parallelism", "taskCount"] {
        if let Some(n) = et.get(k).filter(|v| !v.is_null()) {
            espec[k] = n.clone();
        }
    }
    Ok(json!({
        "apiVersion": jobs::API_VERSION,
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": v2.get("labels").cloned().unwrap_or(json!({})),
            "annotations": v2.get("annotations").cloned().unwrap_or(json!({})),
        },
        "spec": {"template": {
            "metadata": {
                "labels": et.get("labels").cloned().unwrap_or(json!({})),
                "annotations": et.get("annotations").cloned().unwrap_or(json!({})),
            },
            "spec": espec,
        }},
    }))
}

/// A task template of the model (v1 `TaskSpec`) as a v2 `TaskTemplate`.
fn task_template_v2(ts: &Value) -> Value {
    let mut out = json!({
        "containers": ts["containers"].as_array().map(|c| c.iter().map(v2::container_v2).collect::<Vec<_>>()),
        "maxRetries": ts["maxRetries"].as_u64().unwrap_or(3),
        "timeout": format!("{}s", ts["timeoutSeconds"].as_u64().unwrap_or(600)),
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
    });
    if let Some(sa) = ts["serviceAccountName"].as_str() {
        out["serviceAccount"] = json!(sa);
    }
    out
}

fn int(v: &Value) -> String {
    v.as_i64().unwrap_or(0).to_string()
}

/// The model's v1 view of a job as a v2 Job.
fn job_v2(sh: &Shared, v1: &Value) -> Value {
    let p = v2::prefix(sh);
    let m = &v1["metadata"];
    let name = m["name"].as_str().unwrap_or_default();
    let et = &v1["spec"]["template"];
    let status = &v1["status"];
    let ready = status["conditions"][0].clone();
    let mut out = json!({
        "name": format!("{p}/jobs/{name}"),
        "uid": m["uid"],
        "generation": int(&m["generation"]),
        "labels": user(&m["labels"]),
        "annotations": user(&m["annotations"]),
        "createTime": m["creationTimestamp"],
        "updateTime": ready["lastTransitionTime"],
        "creator": "harness-emulator",
        "lastModifier": "harness-emulator",
        "launchStage": "GA",
        "template": {
            "labels": user(&et["metadata"]["labels"]),
            "annotations": user(&et["metadata"]["annotations"]),
            "parallelism": et["spec"]["parallelism"].as_u64().unwrap_or(0),
            "taskCount": et["spec"]["taskCount"].as_u64().unwrap_or(1),
            "template": task_template_v2(&et["spec"]["template"]["spec"]),
        },
        "observedGeneration": int(&status["observedGeneration"]),
        "terminalCondition": v2::condition_v2(&ready),
        "conditions": [],
        "executionCount": status["executionCount"].as_u64().unwrap_or(0),
        "reconciling": false,
        "etag": format!("\"{}\"", m["resourceVersion"].as_str().unwrap_or("1")),
    });
    let l = &status["latestCreatedExecution"];
    if let Some(e) = l["name"].as_str() {
        let mut latest = json!({
            "name": format!("{p}/jobs/{name}/executions/{e}"),
            "createTime": l["creationTimestamp"],
            "completionStatus": l["completionStatus"],
        });
        if let Some(c) = l["completionTimestamp"].as_str() {
            latest["completionTime"] = json!(c);
        }
        out["latestCreatedExecution"] = latest;
    }
    out
}

/// The model's v1 view of an execution as a v2 Execution.
pub fn execution_v2(sh: &Shared, v1: &Value) -> Value {
    let p = v2::prefix(sh);
    let m = &v1["metadata"];
    let name = m["name"].as_str().unwrap_or_default();
    let job = m["labels"]["run.googleapis.com/job"]
        .as_str()
        .unwrap_or_default();
    let status = &v1["status"];
    let conditions: Vec<Value> = status["conditions"]
        .as_array()
        .map(|c| c.iter().map(v2::condition_v2).collect())
        .unwrap_or_default();
    let done = status["completionTime"].is_string();
    let count = |k: &str| status[k].as_u64().unwrap_or(0);
    let mut out = json!({
        "name": format!("{p}/jobs/{job}/executions/{name}"),
        "uid": m["uid"],
        "generation": "1",
        "labels": user(&m["labels"]),
        "annotations": user(&m["annotations"]),
        "createTime": m["creationTimestamp"],
        "updateTime": status["completionTime"].as_str().or(m["creationTimestamp"].as_str()),
        "launchStage": "GA",
        "job": job,
        "parallelism": v1["spec"]["parallelism"].as_u64().unwrap_or(0),
        "taskCount": v1["spec"]["taskCount"].as_u64().unwrap_or(1),
        "template": task_template_v2(&v1["spec"]["template"]["spec"]),
        "reconciling": !done,
        "conditions": conditions,
        "observedGeneration": "1",
        "runningCount": count("runningCount"),
        "succeededCount": count("succeededCount"),
        "failedCount": count("failedCount"),
        "cancelledCount": count("cancelledCount"),
        "retriedCount": count("retriedCount"),
        "logUri": status["logUri"],
        "etag": format!("\"{}\"", m["resourceVersion"].as_str().unwrap_or("1")),
    });
    for (from, to) in [
        ("startTime", "startTime"),
        ("completionTime", "completionTime"),
    ] {
        if let Some(t) = status[from].as_str() {
            out[to] = json!(t);
        }
    }
    out
}

/// The model's v1 view of execution `name`, if it belongs to `job`.
pub fn execution_of(sh: &Shared, job: &str, name: &str) -> Option<Value> {
    let st = sh.lock();
    let e = st.executions.get(name).filter(|e| e.job == job)?;
    Some(executions::execution_json(sh, e))
}

fn job_now(sh: &Shared, name: &str) -> ApiResult<Value> {
    Ok(job_v2(sh, &jobs::view(sh, name)?))
}

/// A job's name in a path that may end in `:run`.
fn split_verb<'a>(name: &'a str, verb: &str) -> (&'a str, bool) {
    match name.strip_suffix(verb) {
        Some(n) => (n, true),
        None => (name, false),
    }
}

pub async fn list_jobs(
    State(sh): State<Arc<Shared>>,
    Path((project, loc)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let names: Vec<String> = sh.lock().jobs.keys().cloned().collect();
    let list: Vec<Value> = names.iter().filter_map(|n| job_now(&sh, n).ok()).collect();
    Ok(Json(json!({"jobs": list})))
}

pub async fn create_job(
    State(sh): State<Arc<Shared>>,
    Path((project, loc)): Path<(String, String)>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let id = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "jobId")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    v2::resource_id("job_id", &id, 63)?;
    let v1 = job_v1(&id, &parse_body(&body)?)?;
    let Json(made) = jobs::put(Arc::clone(&sh), v1, false).await?;
    let job = job_v2(&sh, &made);
    Ok(Json(v2::done_operation(&sh, JOB_TYPE, job)))
}

pub async fn job(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    Ok(Json(job_now(&sh, &name)?))
}

pub async fn update_job(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    jobs::view(&sh, &name)?;
    let v1 = job_v1(&name, &parse_body(&body)?)?;
    let Json(made) = jobs::put(Arc::clone(&sh), v1, true).await?;
    let job = job_v2(&sh, &made);
    Ok(Json(v2::done_operation(&sh, JOB_TYPE, job)))
}

pub async fn delete_job(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let last = job_now(&sh, &name)?;
    let _gone = jobs::delete(State(Arc::clone(&sh)), Path((project, name)), headers).await?;
    Ok(Json(v2::done_operation(&sh, JOB_TYPE, last)))
}

/// `POST …/jobs/NAME:run`: an operation that is done when the execution has ended.
pub async fn run_job(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let (job, run) = split_verb(&name, ":run");
    if !run {
        return Err(ApiError::not_found(format!(
            "The emulator does not serve POST {}.",
            v2::prefix(&sh) + "/jobs/" + &name
        )));
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        parse_body(&body)?
    };
    known_keys(
        object(&body, "")?,
        &["name", "validateOnly", "etag", "overrides"],
        "",
    )?;
    // v2 overrides as v1's: `timeout` is a duration there, seconds here.
    let mut ov = body.get("overrides").cloned().unwrap_or(json!({}));
    if let Some(o) = ov.as_object_mut() {
        known_keys(
            o,
            &["containerOverrides", "taskCount", "timeout"],
            "overrides",
        )?;
        if let Some(t) = o.remove("timeout") {
            let s = seconds(Some(&t)).ok_or_else(|| {
                ApiError::invalid_field(
                    "overrides.timeout",
                    format!("Invalid value at 'overrides.timeout' ({t})."),
                )
            })?;
            o.insert("timeoutSeconds".into(), json!(s));
        }
    }
    let Json(started) = jobs::run(
        State(Arc::clone(&sh)),
        Path((project, format!("{job}:run"))),
        headers,
        axum::body::Bytes::from(json!({"overrides": ov}).to_string()),
    )
    .await?;
    let exec = started["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let op = v2::new_operation(
        &sh,
        OpTarget::Execution {
            job: job.to_owned(),
            name: exec,
        },
    );
    Ok(Json(v2::operation_now(&sh, &op)))
}

pub async fn list_executions(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, job)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    jobs::view(&sh, &job)?;
    let mut list: Vec<Value> = {
        let st = sh.lock();
        st.executions
            .values()
            .filter(|e| e.job == job)
            .map(|e| executions::execution_json(&sh, e))
            .collect()
    };
    meta::newest_first(&mut list);
    Ok(Json(
        json!({"executions": list.iter().map(|e| execution_v2(&sh, e)).collect::<Vec<_>>()}),
    ))
}

pub async fn execution(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, job, name)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let v1 = execution_of(&sh, &job, &name)
        .ok_or_else(|| executions::execution_not_found(&sh, &name))?;
    Ok(Json(execution_v2(&sh, &v1)))
}

/// `POST …/executions/NAME:cancel`.
pub async fn cancel_execution(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, job, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let (exec, cancel) = split_verb(&name, ":cancel");
    if !cancel {
        return Err(ApiError::not_found(format!(
            "The emulator does not serve POST {}/jobs/{job}/executions/{name}.",
            v2::prefix(&sh)
        )));
    }
    execution_of(&sh, &job, exec).ok_or_else(|| executions::execution_not_found(&sh, exec))?;
    let Json(v1) = executions::cancel_execution(
        State(Arc::clone(&sh)),
        Path((project, name.clone())),
        headers,
    )
    .await?;
    let e = execution_v2(&sh, &v1);
    Ok(Json(v2::done_operation(&sh, EXECUTION_TYPE, e)))
}

pub async fn delete_execution(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, job, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    v2::location(&sh, &project, &loc)?;
    let last = execution_of(&sh, &job, &name)
        .ok_or_else(|| executions::execution_not_found(&sh, &name))?;
    let last = execution_v2(&sh, &last);
    let _gone =
        executions::delete_execution(State(Arc::clone(&sh)), Path((project, name)), headers)
            .await?;
    Ok(Json(v2::done_operation(&sh, EXECUTION_TYPE, last)))
}
