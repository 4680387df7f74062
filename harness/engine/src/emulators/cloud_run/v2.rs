//! The v2 REST surface of services (`/v2/projects/{p}/locations/{l}/services|revisions|operations`;
//! jobs and executions are in `v2_jobs.rs`)
//! that Google's client libraries use (`google-cloud-run` with the REST transport). It is a
//! translation over the same model as the v1 surface: a v2 Service is turned into the v1
//! body the model applies, and the model's v1 view is turned back into a v2 Service. Writes
//! answer with a long-running operation that is done once the service has settled.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Map, Value, json};

use super::{
    Shared,
    error::{ApiError, ApiResult},
    meta,
    services::{self, API_VERSION},
    spec::{known_keys, seconds},
};

const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";

/// A write the client polls.
#[derive(Clone, Debug)]
pub enum OpTarget {
    /// Done when the service's generation is observed and Ready is decided.
    Service { name: String, generation: i64 },
    /// Done when the execution has ended (a job's run).
    Execution { job: String, name: String },
    /// Known up front (a delete, a job's write): the type of the response and the response.
    Done(&'static str, Value),
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub target: OpTarget,
}

pub(super) fn prefix(sh: &Shared) -> String {
    format!("projects/{}/locations/{}", sh.cfg.project, sh.cfg.region)
}

pub(super) fn location(sh: &Shared, project: &str, location: &str) -> ApiResult<()> {
    sh.namespace(project)?;
    if location != sh.cfg.region && location != "-" {
        return Err(ApiError::not_found(format!(
            "Location {location} is not served: the emulator runs region {}.",
            sh.cfg.region
        )));
    }
    Ok(())
}

pub(super) fn condition_v2(c: &Value) -> Value {
    let state = match c["status"].as_str() {
        Some("True") => "CONDITION_SUCCEEDED",
        Some("False") => "CONDITION_FAILED",
        _ => "CONDITION_RECONCILING",
    };
    let mut v =
        json!({"type": c["type"], "state": state, "lastTransitionTime": c["lastTransitionTime"]});
    if let Some(m) = c["message"].as_str() {
        v["message"] = json!(m);
    }
    if c["status"] == "False" {
        v["severity"] = json!("ERROR");
    }
    v
}

fn find<'a>(conditions: &'a Value, kind: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == kind)
}

pub(super) fn container_v2(c: &Value) -> Value {
    let mut out = json!({"image": c["image"]});
    for k in [
        "name",
        "command",
        "args",
        "ports",
        "resources",
        "startupProbe",
        "livenessProbe",
        "workingDir",
    ] {
        if let Some(v) = c.get(k).filter(|v| !v.is_null()) {
            out[k] = v.clone();
        }
    }
    if let Some(env) = c["env"].as_array() {
        out["env"] = json!(
            env.iter()
                .map(|e| match e["valueFrom"]["secretKeyRef"].as_object() {
                    Some(r) => json!({"name": e["name"], "valueSource": {"secretKeyRef": {
                    "secret": r.get("name"), "version": r.get("key")}}}),
                    None => json!({"name": e["name"], "value": e["value"]}),
                })
                .collect::<Vec<_>>()
        );
    }
    out
}

fn template_v2(t: &Value) -> Value {
    let ann = &t["metadata"]["annotations"];
    let scale = |k: &str| ann[k].as_str().and_then(|v| v.parse::<u64>().ok());
    let annotations: Map<String, Value> = ann
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.starts_with("autoscaling.knative.dev/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut scaling = json!({});
    if let Some(n) = scale("autoscaling.knative.dev/minScale") {
        scaling["minInstanceCount"] = json!(n);
    }
    if let Some(n) = scale("autoscaling.knative.dev/maxScale") {
        scaling["maxInstanceCount"] = json!(n);
    }
    let mut v = json!({
        "labels": t["metadata"]["labels"].as_object().cloned().unwrap_or_default(),
        "annotations": annotations,
        "scaling": scaling,
        "timeout": format!("{}s", t["spec"]["timeoutSeconds"].as_u64().unwrap_or(300)),
        "maxInstanceRequestConcurrency": t["spec"]["containerConcurrency"],
        "containers": t["spec"]["containers"].as_array().map(|c| c.iter().map(container_v2).collect::<Vec<_>>()),
    });
    if let Some(r) = t["metadata"]["name"].as_str() {
        v["revision"] = json!(r);
    }
    v
}

/// The model's v1 view of a service as a v2 Service.
pub fn service_v2(sh: &Shared, v1: &Value) -> Value {
    let p = prefix(sh);
    let name = v1["metadata"]["name"].as_str().unwrap_or_default();
    let rev = |r: &Value| {
        r.as_str()
            .map(|r| format!("{p}/services/{name}/revisions/{r}"))
    };
    let status = &v1["status"];
    let ready = find(&status["conditions"], "Ready")
        .cloned()
        .unwrap_or(Value::Null);
    let traffic: Vec<Value> = v1["spec"]["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let mut o = if t["latestRevision"] == true {
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"})
            } else {
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": t["revisionName"]})
            };
            if let Some(pc) = t["percent"].as_u64() {
                o["percent"] = json!(pc);
            }
            if let Some(tag) = t["tag"].as_str() {
                o["tag"] = json!(tag);
            }
            o
        })
        .collect();
    let statuses: Vec<Value> = status["traffic"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let kind = if t["latestRevision"] == true {
                "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
            } else {
                "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
            };
            let mut o = json!({"type": kind, "revision": t["revisionName"], "percent": t["percent"].as_u64().unwrap_or(0)});
            if let Some(tag) = t["tag"].as_str() {
                o["tag"] = json!(tag);
                o["uri"] = t["url"].clone();
            }
            o
        })
        .collect();
    let user = |k: &str| -> Map<String, Value> {
        v1["metadata"][k]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !k.starts_with("serving.knative.dev/")
                            && !k.starts_with("cloud.googleapis.com/")
                            && !k.starts_with("run.googleapis.com/")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sub: Vec<Value> = ["RoutesReady", "ConfigurationsReady"]
        .iter()
        .filter_map(|k| find(&status["conditions"], k))
        .map(condition_v2)
        .collect();
    let mut out = json!({
        "name": format!("{p}/services/{name}"),
        "uid": v1["metadata"]["uid"],
        "generation": v1["metadata"]["generation"].as_i64().unwrap_or(0).to_string(),
        "labels": user("labels"),
        "annotations": user("annotations"),
        "createTime": v1["metadata"]["creationTimestamp"],
        "updateTime": ready["lastTransitionTime"],
        "creator": "harness-emulator",
        "lastModifier": "harness-emulator",
        "ingress": "INGRESS_TRAFFIC_ALL",
        "launchStage": "GA",
        "template": template_v2(&v1["spec"]["template"]),
        "traffic": traffic,
        "observedGeneration": status["observedGeneration"].as_i64().unwrap_or(0).to_string(),
        "terminalCondition": condition_v2(&ready),
        "conditions": sub,
        "trafficStatuses": statuses,
        "uri": status["url"],
        "urls": [status["url"]],
        "reconciling": ready["status"] == "Unknown",
        "etag": format!("\"{}\"", v1["metadata"]["resourceVersion"].as_str().unwrap_or("1")),
    });
    if let Some(r) = rev(&status["latestReadyRevisionName"]) {
        out["latestReadyRevision"] = json!(r);
    }
    if let Some(r) = rev(&status["latestCreatedRevisionName"]) {
        out["latestCreatedRevision"] = json!(r);
    }
    out
}

fn revision_v2(sh: &Shared, v1: &Value) -> Value {
    let p = prefix(sh);
    let service = v1["metadata"]["labels"]["serving.knative.dev/service"]
        .as_str()
        .unwrap_or_default();
    let name = v1["metadata"]["name"].as_str().unwrap_or_default();
    let t = json!({"metadata": v1["metadata"], "spec": v1["spec"]});
    let tv2 = template_v2(&t);
    let ready = find(&v1["status"]["conditions"], "Ready")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "name": format!("{p}/services/{service}/revisions/{name}"),
        "uid": v1["metadata"]["uid"],
        "generation": "1",
        "labels": tv2["labels"],
        "annotations": tv2["annotations"],
        "createTime": v1["metadata"]["creationTimestamp"],
        "updateTime": ready["lastTransitionTime"],
        "launchStage": "GA",
        "service": format!("{p}/services/{service}"),
        "scaling": tv2["scaling"],
        "timeout": tv2["timeout"],
        "maxInstanceRequestConcurrency": tv2["maxInstanceRequestConcurrency"],
        "containers": tv2["containers"],
        "conditions": v1["status"]["conditions"].as_array().map(|c| c.iter().map(condition_v2).collect::<Vec<_>>()),
        "observedGeneration": "1",
        "logUri": v1["status"]["logUrl"],
        "reconciling": ready["status"] == "Unknown",
        "etag": "\"1\"",
    })
}

const SERVICE_KEYS: &[&str] = &[
    "name",
    "description",
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
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "template",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "urls",
    "customAudiences",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "uri",
    "satisfiesPzs",
    "reconciling",
    "etag",
];
const TEMPLATE_KEYS: &[&str] = &[
    "revision",
    "labels",
    "annotations",
    "scaling",
    "vpcAccess",
    "timeout",
    "serviceAccount",
    "containers",
    "volumes",
    "executionEnvironment",
    "encryptionKey",
    "maxInstanceRequestConcurrency",
    "sessionAffinity",
    "healthCheckDisabled",
    "nodeSelector",
];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "resources",
    "ports",
    "volumeMounts",
    "workingDir",
    "livenessProbe",
    "startupProbe",
    "dependsOn",
    "baseImageUri",
    "buildInfo",
];

pub(super) fn container_v1(c: &Value, at: &str) -> ApiResult<Value> {
    let Some(obj) = c.as_object() else {
        return Err(ApiError::invalid_field(
            at,
            format!("Invalid value at '{at}'."),
        ));
    };
    known_keys(obj, CONTAINER_KEYS, at)?;
    let mut out = json!({});
    for k in [
        "name",
        "image",
        "command",
        "args",
        "ports",
        "resources",
        "startupProbe",
        "livenessProbe",
        "workingDir",
    ] {
        if let Some(v) = obj.get(k) {
            out[k] = v.clone();
        }
    }
    if let Some(env) = obj.get("env").and_then(Value::as_array) {
        out["env"] = json!(env
            .iter()
            .map(|e| match e["valueSource"]["secretKeyRef"].as_object() {
                Some(r) => json!({"name": e["name"], "valueFrom": {"secretKeyRef": {
                    "name": r.get("secret"), "key": r.get("version").cloned().unwrap_or(json!("latest"))}}}),
                None => json!({"name": e["name"], "value": e["value"]}),
            })
            .collect::<Vec<_>>());
    }
    Ok(out)
}

/// A v2 Service as the v1 body the model applies; `existing` fills what the body leaves out.
fn service_v1(name: &str, v2: &Value, existing: Option<&Value>) -> ApiResult<Value> {
    let Some(obj) = v2.as_object() else {
        return Err(ApiError::invalid(
            "Invalid JSON payload received: expected an object.",
        ));
    };
    known_keys(obj, SERVICE_KEYS, "service")?;
    let mut body = existing.cloned().unwrap_or_else(|| {
        json!({"apiVersion": API_VERSION, "kind": "Service", "metadata": {"name": name},
               "spec": {"template": {"metadata": {}, "spec": {}}}})
    });
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    for k in ["labels", "annotations"] {
        if let Some(m) = obj.get(k) {
            body["metadata"][k] = m.clone();
        }
    }
    if let Some(t) = obj.get("template") {
        let Some(tobj) = t.as_object() else {
            return Err(ApiError::invalid_field(
                "service.template",
                "Invalid value at 'service.template'.",
            ));
        };
        known_keys(tobj, TEMPLATE_KEYS, "service.template")?;
        let mut annotations = t["annotations"].as_object().cloned().unwrap_or_default();
        if let Some(n) = t["scaling"]["minInstanceCount"].as_u64() {
            annotations.insert(
                "autoscaling.knative.dev/minScale".into(),
                json!(n.to_string()),
            );
        }
        if let Some(n) = t["scaling"]["maxInstanceCount"].as_u64() {
            annotations.insert(
                "autoscaling.knative.dev/maxScale".into(),
                json!(n.to_string()),
            );
        }
        let mut metadata = json!({"annotations": annotations, "labels": t["labels"].as_object().cloned().unwrap_or_default()});
        if let Some(r) = t["revision"].as_str().filter(|r| !r.is_empty()) {
            metadata["name"] = json!(r);
        }
        let mut containers = Vec::new();
        for (i, c) in t["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            containers.push(container_v1(
                c,
                &format!("service.template.containers[{i}]"),
            )?);
        }
        let mut spec = json!({"containers": containers});
        if let Some(c) = t["maxInstanceRequestConcurrency"].as_u64() {
            spec["containerConcurrency"] = json!(c);
        }
        if let Some(s) = seconds(t.get("timeout")) {
            spec["timeoutSeconds"] = json!(s);
        }
        body["spec"]["template"] = json!({"metadata": metadata, "spec": spec});
    }
    if let Some(traffic) = obj
        .get("traffic")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        let mut list = Vec::new();
        for (i, t) in traffic.iter().enumerate() {
            let kind = match &t["type"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_u64() {
                    Some(1) => "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST".into(),
                    Some(2) => "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION".into(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            let mut o = match kind.as_str() {
                "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST" => json!({"latestRevision": true}),
                "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION" => json!({"revisionName": t["revision"]}),
                _ => {
                    return Err(ApiError::invalid_field(
                        &format!("service.traffic[{i}].type"),
                        format!(
                            "service.traffic[{i}].type: must be TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST or TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
                        ),
                    ));
                }
            };
            if let Some(p) = t.get("percent") {
                o["percent"] = p.clone();
            }
            if let Some(tag) = t.get("tag") {
                o["tag"] = tag.clone();
            }
            list.push(o);
        }
        body["spec"]["traffic"] = json!(list);
    }
    Ok(body)
}

fn operation_json(
    sh: &Shared,
    id: &str,
    kind: &str,
    done: Option<Result<Value, ApiError>>,
) -> Value {
    let mut op = json!({
        "name": format!("{}/operations/{id}", prefix(sh)),
        "metadata": {"@type": kind},
        "done": done.is_some(),
    });
    match done {
        Some(Ok(found)) => {
            let mut r = found;
            r["@type"] = json!(kind);
            op["response"] = r;
        }
        Some(Err(e)) => {
            op["error"] = json!({"code": grpc_code(&e), "message": e.message});
        }
        None => {}
    }
    op
}

fn grpc_code(e: &ApiError) -> u16 {
    match e.code.as_u16() {
        400 => 3,
        403 => 7,
        404 => 5,
        409 => 6,
        412 => 9,
        _ => 13,
    }
}

pub(super) fn new_operation(sh: &Shared, target: OpTarget) -> String {
    let id = meta::uid(&mut sh.rng());
    sh.lock()
        .operations
        .insert(id.clone(), Operation { target });
    id
}

/// A new operation that is done already, answering `response` of type `kind`.
pub(super) fn done_operation(sh: &Shared, kind: &'static str, response: Value) -> Value {
    let id = new_operation(sh, OpTarget::Done(kind, response.clone()));
    operation_json(sh, &id, kind, Some(Ok(response)))
}

fn current_v1(sh: &Shared, name: &str) -> Option<Value> {
    let st = sh.lock();
    st.services.get(name).map(|s| services::json_of(sh, s))
}

/// Checks the id a create names (`serviceId`, `jobId`), as the real API words it.
pub(super) fn resource_id(field: &str, name: &str, max: usize) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            field,
            format!(
                "{field}: Resource name must use only lowercase letters, numbers and '-'. Must begin with a letter and cannot end with a '-'. Maximum length is {max} characters. Got \"{name}\"."
            ),
        ))
    }
}

pub async fn list_services(
    State(sh): State<Arc<Shared>>,
    Path((project, loc)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let names: Vec<String> = sh.lock().services.keys().cloned().collect();
    let list: Vec<Value> = names
        .iter()
        .filter_map(|n| current_v1(&sh, n))
        .map(|v| service_v2(&sh, &v))
        .collect();
    Ok(Json(json!({"services": list})))
}

pub async fn create_service(
    State(sh): State<Arc<Shared>>,
    Path((project, loc)): Path<(String, String)>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let id = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "serviceId")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    resource_id("service_id", &id, 49)?;
    let v2 = services::parse_body(&body)?;
    let v1 = service_v1(&id, &v2, None)?;
    let Json(made) = services::create_or_replace(Arc::clone(&sh), v1, false).await?;
    let generation = made["metadata"]["generation"].as_i64().unwrap_or(1);
    let op = new_operation(
        &sh,
        OpTarget::Service {
            name: id,
            generation,
        },
    );
    Ok(Json(operation_now(&sh, &op)))
}

pub async fn service(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let v1 = current_v1(&sh, &name).ok_or_else(|| services::not_found(&sh, &name))?;
    Ok(Json(service_v2(&sh, &v1)))
}

pub async fn update_service(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let existing = current_v1(&sh, &name).ok_or_else(|| services::not_found(&sh, &name))?;
    let v2 = services::parse_body(&body)?;
    let v1 = service_v1(&name, &v2, Some(&existing))?;
    let Json(made) = services::create_or_replace(Arc::clone(&sh), v1, true).await?;
    let generation = made["metadata"]["generation"].as_i64().unwrap_or(1);
    let op = new_operation(&sh, OpTarget::Service { name, generation });
    Ok(Json(operation_now(&sh, &op)))
}

pub async fn delete_service(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let last = current_v1(&sh, &name).ok_or_else(|| services::not_found(&sh, &name))?;
    let _gone = services::delete(
        State(Arc::clone(&sh)),
        Path((project, name.clone())),
        headers,
    )
    .await?;
    Ok(Json(done_operation(
        &sh,
        SERVICE_TYPE,
        service_v2(&sh, &last),
    )))
}

pub async fn operation(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    if !sh.lock().operations.contains_key(&id) {
        return Err(ApiError::not_found(format!(
            "Operation {id} was not found."
        )));
    }
    Ok(Json(operation_now(&sh, &id)))
}

/// Operation `id` as it stands now.
pub(super) fn operation_now(sh: &Shared, id: &str) -> Value {
    let Some(op) = sh.lock().operations.get(id).cloned() else {
        return json!({"name": format!("{}/operations/{id}", prefix(sh))});
    };
    match op.target {
        OpTarget::Done(kind, r) => operation_json(sh, id, kind, Some(Ok(r))),
        OpTarget::Service { name, generation } => {
            let done = match current_v1(sh, &name) {
                None => Some(Err(services::not_found(sh, &name))),
                Some(v1) => {
                    let fresh =
                        v1["status"]["observedGeneration"].as_i64().unwrap_or(0) >= generation;
                    let ready = find(&v1["status"]["conditions"], "Ready")
                        .cloned()
                        .unwrap_or(Value::Null);
                    match ready["status"].as_str() {
                        _ if !fresh => None,
                        Some("True") => Some(Ok(service_v2(sh, &v1))),
                        Some("False") => Some(Err(ApiError::new(
                            StatusCode::PRECONDITION_FAILED,
                            ready["message"]
                                .as_str()
                                .unwrap_or("the service is not ready")
                                .to_owned(),
                        ))),
                        _ => None,
                    }
                }
            };
            operation_json(sh, id, SERVICE_TYPE, done)
        }
        // Done once the execution has ended: with the execution, or, when its tasks failed,
        // with the Completed condition's message as the error (a cancelled one ends without
        // an error, its counts tell).
        OpTarget::Execution { job, name } => {
            let kind = super::v2_jobs::EXECUTION_TYPE;
            let done = match super::v2_jobs::execution_of(sh, &job, &name) {
                None => Some(Err(super::executions::execution_not_found(sh, &name))),
                Some(v1) if v1["status"]["completionTime"].is_string() => {
                    let completed = find(&v1["status"]["conditions"], "Completed")
                        .cloned()
                        .unwrap_or(Value::Null);
                    if completed["status"] == "False" && completed["reason"] != "Cancelled" {
                        Some(Err(ApiError::new(
                            StatusCode::PRECONDITION_FAILED,
                            completed["message"]
                                .as_str()
                                .unwrap_or("The execution failed.")
                                .to_owned(),
                        )))
                    } else {
                        Some(Ok(super::v2_jobs::execution_v2(sh, &v1)))
                    }
                }
                Some(_) => None,
            };
            operation_json(sh, id, kind, done)
        }
    }
}

pub async fn list_revisions(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    if !sh.lock().services.contains_key(&name) {
        return Err(services::not_found(&sh, &name));
    }
    let mut list = services::revisions_of(&sh, &name);
    meta::newest_first(&mut list);
    Ok(Json(
        json!({"revisions": list.iter().map(|r| revision_v2(&sh, r)).collect::<Vec<_>>()}),
    ))
}

pub async fn revision(
    State(sh): State<Arc<Shared>>,
    Path((project, loc, name, rev)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    location(&sh, &project, &loc)?;
    let found = services::revisions_of(&sh, &name)
        .into_iter()
        .find(|r| r["metadata"]["name"] == rev.as_str())
        .ok_or_else(|| sh.missing("REVISION", &rev))?;
    Ok(Json(revision_v2(&sh, &found)))
}
