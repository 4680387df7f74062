//! Services (`serving.knative.dev/v1`): create, replace, get, list and delete, and the
//! reconciliation behind them: a changed template makes a new immutable revision, whose
//! first instance must pass its startup probe before it is Ready; the traffic targets are
//! then resolved (a `latestRevision` target follows the latest *ready* revision, so a
//! revision that fails leaves the traffic exactly as it was) and handed to the ingress.

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
    ingress::Ingress,
    meta::{self, Meta, condition},
    revisions::{self, Revision},
    spec::{self, known_keys},
    traffic::{self, Target},
};

pub const API_VERSION: &str = "serving.knative.dev/v1";
const CREATOR: &str = "harness-emulator";

/// A readiness condition as kept: its state, reason, message and when it last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub state: Option<bool>,
    pub reason: String,
    pub message: String,
    pub at: String,
}

impl Cond {
    pub fn unknown(reason: &str) -> Self {
        Cond {
            state: None,
            reason: reason.into(),
            message: String::new(),
            at: meta::now(),
        }
    }

    pub fn set(&mut self, state: Option<bool>, reason: &str, message: &str) {
        if self.state != state || self.reason != reason || self.message != message {
            *self = Cond {
                state,
                reason: reason.into(),
                message: message.into(),
                at: meta::now(),
            };
        }
    }

    pub fn json(&self, kind: &str) -> Value {
        let mut c = condition(kind, self.state, &self.reason, &self.message);
        c["lastTransitionTime"] = json!(self.at);
        c
    }
}

pub struct Service {
    pub meta: Meta,
    pub template: Value,
    pub traffic: Vec<Target>,
    pub latest_created: Option<String>,
    pub latest_ready: Option<String>,
    pub config: Cond,
    pub routes: Cond,
    pub status_traffic: Vec<Value>,
    pub ingress: Arc<Ingress>,
}

impl Service {
    pub fn ready(&self) -> Cond {
        let mut c = Cond::unknown("");
        let (state, reason, message, at) = match (self.config.state, self.routes.state) {
            (Some(false), _) => (
                Some(false),
                &self.config.reason,
                &self.config.message,
                &self.config.at,
            ),
            (_, Some(false)) => (
                Some(false),
                &self.routes.reason,
                &self.routes.message,
                &self.routes.at,
            ),
            (Some(true), Some(true)) => (
                Some(true),
                &self.routes.reason,
                &self.routes.message,
                (&self.config.at).max(&self.routes.at),
            ),
            (None, _) => (
                None,
                &self.config.reason,
                &self.config.message,
                &self.config.at,
            ),
            (_, None) => (
                None,
                &self.routes.reason,
                &self.routes.message,
                &self.routes.at,
            ),
        };
        c.state = state;
        c.reason.clone_from(reason);
        c.message.clone_from(message);
        c.at.clone_from(at);
        c
    }
}

fn self_link(ns: &str, name: &str) -> String {
    format!("/apis/{API_VERSION}/namespaces/{ns}/services/{name}")
}

pub(super) fn json_of(sh: &Shared, s: &Service) -> Value {
    let ns = &sh.cfg.project;
    let mut metadata = s.meta.json(ns, &self_link(ns, &s.meta.name));
    metadata["labels"]["cloud.googleapis.com/location"] = json!(sh.cfg.region);
    let ann = &mut metadata["annotations"];
    ann["serving.knative.dev/creator"] = json!(CREATOR);
    ann["serving.knative.dev/lastModifier"] = json!(CREATOR);
    if ann.get("run.googleapis.com/ingress").is_none() {
        ann["run.googleapis.com/ingress"] = json!("all");
    }
    ann["run.googleapis.com/ingress-status"] = ann["run.googleapis.com/ingress"].clone();
    ann["run.googleapis.com/urls"] = json!(json!([s.ingress.url()]).to_string());
    let mut status = json!({
        "observedGeneration": s.meta.generation,
        "conditions": [s.ready().json("Ready"), s.config.json("ConfigurationsReady"), s.routes.json("RoutesReady")],
        "traffic": s.status_traffic,
        "url": s.ingress.url(),
        "address": {"url": s.ingress.url()},
    });
    if let Some(r) = &s.latest_created {
        status["latestCreatedRevisionName"] = json!(r);
    }
    if let Some(r) = &s.latest_ready {
        status["latestReadyRevisionName"] = json!(r);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": s.template,
            "traffic": s.traffic.iter().map(Target::json).collect::<Vec<_>>(),
        },
        "status": status,
    })
}

/// Annotations and labels a client may not set: the server writes them.
fn client_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, _)| {
            !k.starts_with("serving.knative.dev/")
                && k != "run.googleapis.com/ingress-status"
                && k != "run.googleapis.com/urls"
                && k != "cloud.googleapis.com/location"
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 49
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a Service body's envelope; returns its name.
pub(super) fn envelope(body: &Value, kind: &str, api_version: &str) -> ApiResult<String> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid(
            "Invalid JSON payload received: expected an object.",
        ));
    };
    known_keys(
        obj,
        &["apiVersion", "kind", "metadata", "spec", "status"],
        "",
    )?;
    if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
        && v != api_version
    {
        return Err(ApiError::invalid_field(
            "apiVersion",
            format!("apiVersion: Unsupported value: \"{v}\": supported values: \"{api_version}\""),
        ));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != kind
    {
        return Err(ApiError::invalid_field(
            "kind",
            format!("kind: Unsupported value: \"{k}\": supported values: \"{kind}\""),
        ));
    }
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !valid_name(&name) {
        return Err(ApiError::invalid_field(
            "metadata.name",
            format!(
                "metadata.name: Resource name must use only lowercase letters, numbers and '-'. Must begin with a letter and cannot end with a '-'. Maximum length is 49 characters. Got \"{name}\"."
            ),
        ));
    }
    Ok(name)
}

/// A revision that a create or replace made and that still has to be checked.
struct NewRevision {
    name: String,
    pool: Option<Arc<super::instances::Pool>>,
}

/// Applies a Service body to the model (a new one, or a replacement of `name`). Returns
/// the revision to check, if the template changed.
async fn apply(
    sh: &Arc<Shared>,
    body: Value,
    existing: bool,
) -> ApiResult<(String, Option<NewRevision>)> {
    let name = envelope(&body, "Service", API_VERSION)?;
    let spec_v = body.get("spec").cloned().unwrap_or(json!({}));
    let Some(spec_obj) = spec_v.as_object() else {
        return Err(ApiError::invalid_field("spec", "Invalid value at 'spec'."));
    };
    known_keys(spec_obj, &["template", "traffic"], "spec")?;
    let mut template = spec_v.get("template").cloned().unwrap_or(Value::Null);
    spec::normalize_template(&mut template, "spec.template", false)?;
    let targets = traffic::parse(spec_v.get("traffic"))?;
    let prepared = revisions::prepare(sh, &template).await;
    let labels = client_map(meta::string_map(&body["metadata"], "labels"));
    let annotations = client_map(meta::string_map(&body["metadata"], "annotations"));

    // A new service gets its ingress before the model is touched.
    let ingress = if existing {
        None
    } else {
        if sh.lock().services.contains_key(&name) {
            return Err(ApiError::conflict(format!(
                "Resource '{name}' already exists."
            )));
        }
        Some(
            Ingress::start(&name, sh.cfg.seed, Arc::clone(&sh.events))
                .await
                .map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("could not open the service's ingress: {e}"),
                    )
                })?,
        )
    };

    let mut st = sh.lock();
    let st = &mut *st;
    let (old_template, old_traffic, generation) = match st.services.get(&name) {
        Some(s) if existing => (
            Some(s.template.clone()),
            s.traffic.clone(),
            s.meta.generation,
        ),
        Some(_) => {
            return Err(ApiError::conflict(format!(
                "Resource '{name}' already exists."
            )));
        }
        None if existing => {
            return Err(sh.missing("SERVICE", &name));
        }
        None => (None, Vec::new(), 0),
    };
    let template_changed = old_template.as_ref() != Some(&template);
    let spec_changed = template_changed || old_traffic != targets;
    let new_generation = if spec_changed {
        generation + 1
    } else {
        generation.max(1)
    };

    let mut new_revision = None;
    if template_changed {
        let asked = template["metadata"]["name"].as_str().map(str::to_owned);
        let rev_name = match asked {
            Some(n) => {
                if !n.starts_with(&format!("{name}-")) {
                    return Err(ApiError::invalid_field(
                        "spec.template.metadata.name",
                        format!(
                            "spec.template.metadata.name: Revision name \"{n}\" must be prefixed by the service name \"{name}-\"."
                        ),
                    ));
                }
                if st.revisions.contains_key(&n) {
                    return Err(ApiError::conflict(format!(
                        "Revision named '{n}' with different configuration already exists."
                    )));
                }
                n
            }
            None => {
                let mut rng = sh.rng();
                loop {
                    let n = format!(
                        "{name}-{new_generation:05}-{}",
                        meta::suffix(&mut rng, 3, false)
                    );
                    if !st.revisions.contains_key(&n) {
                        break n;
                    }
                }
            }
        };
        new_revision = Some(rev_name);
    }
    // Traffic may only name revisions that exist, or the one this request makes.
    for (i, t) in targets.iter().enumerate() {
        if let Some(r) = &t.revision {
            let known = st.revisions.get(r).is_some_and(|rev| rev.service == name);
            if !known && new_revision.as_deref() != Some(r.as_str()) {
                return Err(ApiError::invalid_field(
                    &format!("spec.traffic[{i}].revisionName"),
                    format!("Revision '{r}' referenced in traffic not found."),
                ));
            }
        }
    }

    let service = match st.services.get_mut(&name) {
        Some(s) => s,
        None => {
            let mut m = Meta::new(&name, &mut sh.rng());
            m.generation = 0;
            let ingress = ingress.ok_or_else(|| ApiError::invalid("no ingress"))?;
            st.services.insert(
                name.clone(),
                Service {
                    meta: m,
                    template: Value::Null,
                    traffic: Vec::new(),
                    latest_created: None,
                    latest_ready: None,
                    config: Cond::unknown("Deploying"),
                    routes: Cond::unknown("Deploying"),
                    status_traffic: Vec::new(),
                    ingress,
                },
            );
            st.services
                .get_mut(&name)
                .ok_or_else(|| ApiError::invalid("lost"))?
        }
    };
    service.meta.labels = labels;
    service.meta.annotations = annotations;
    service.meta.generation = new_generation;
    service.meta.resource_version += 1;
    service.traffic = targets;
    let mut made = None;
    if let Some(rev_name) = new_revision {
        service.template = template.clone();
        service.latest_created = Some(rev_name.clone());
        service.config.set(
            None,
            "Deploying",
            &format!("Revision '{rev_name}' is being deployed."),
        );
        let service_uid = service.meta.uid.clone();
        let rev = Revision::new(
            sh,
            &name,
            &service_uid,
            &rev_name,
            new_generation,
            template,
            prepared,
        );
        let pool = match rev {
            Ok(r) => {
                let pool = r.pool.clone();
                st.revisions.insert(rev_name.clone(), r);
                pool
            }
            Err((r, why)) => {
                st.revisions.insert(rev_name.clone(), r);
                if let Some(s) = st.services.get_mut(&name) {
                    s.config.set(
                        Some(false),
                        "RevisionFailed",
                        &format!(
                            "Revision '{rev_name}' is not ready and cannot serve traffic. {why}"
                        ),
                    );
                }
                None
            }
        };
        sh.events.push(
            "revision_created",
            json!({"service": name, "revision": rev_name, "generation": new_generation}),
        );
        made = Some(NewRevision {
            name: rev_name,
            pool,
        });
    }
    Ok((name, made))
}

/// Resolves a service's traffic targets against its revisions and routes its ingress by
/// them. A target that cannot be resolved leaves the routing as it was and says why in
/// `RoutesReady`.
pub(super) async fn sync_route(sh: &Arc<Shared>, name: &str) {
    let _routing = sh.routing.lock().await;
    let (ingress, split, tags, mut entries) = {
        let mut st = sh.lock();
        let st = &mut *st;
        let Some(s) = st.services.get_mut(name) else {
            return;
        };
        let mut split = Vec::new();
        let mut tags = Vec::new();
        let mut entries = Vec::new();
        let mut problem: Option<(Option<bool>, String, String)> = None;
        for t in &s.traffic {
            let rev = if t.latest {
                s.latest_ready.clone()
            } else {
                t.revision.clone()
            };
            let Some(rev) = rev else {
                problem = Some((
                    Some(false),
                    "RevisionMissing".into(),
                    format!("Configuration '{name}' does not have any ready Revision."),
                ));
                break;
            };
            match st.revisions.get(&rev) {
                None => {
                    problem = Some((
                        Some(false),
                        "RevisionMissing".into(),
                        format!("Revision '{rev}' referenced in traffic not found."),
                    ));
                    break;
                }
                Some(r) if r.ready.state == Some(false) => {
                    problem = Some((
                        Some(false),
                        "RevisionFailed".into(),
                        format!("Revision '{rev}' failed to become ready."),
                    ));
                    break;
                }
                Some(r) if r.ready.state.is_none() => {
                    problem = Some((
                        None,
                        "Deploying".into(),
                        format!("Waiting for revision '{rev}' to be ready."),
                    ));
                    break;
                }
                Some(r) => {
                    if let Some(pool) = &r.pool {
                        split.push((Arc::clone(pool), t.percent));
                        if let Some(tag) = &t.tag {
                            tags.push((tag.clone(), Arc::clone(pool)));
                        }
                    }
                    let mut e = json!({"revisionName": rev, "percent": t.percent});
                    if t.percent == 0 {
                        e.as_object_mut().map(|o| o.remove("percent"));
                    }
                    if t.latest {
                        e["latestRevision"] = json!(true);
                    }
                    if let Some(tag) = &t.tag {
                        e["tag"] = json!(tag);
                    }
                    entries.push(e);
                }
            }
        }
        if let Some((state, reason, message)) = problem {
            s.routes.set(state, &reason, &message);
            return;
        }
        (Arc::clone(&s.ingress), split, tags, entries)
    };
    let serving: Vec<String> = split
        .iter()
        .filter(|(_, p)| *p > 0)
        .map(|(pool, _)| pool.revision.clone())
        .chain(tags.iter().map(|(_, pool)| pool.revision.clone()))
        .collect();
    let routed = ingress.route(split, tags).await;
    let mut st = sh.lock();
    let st = &mut *st;
    let urls = match routed {
        Ok(u) => u,
        Err(e) => {
            if let Some(s) = st.services.get_mut(name) {
                s.routes.set(
                    Some(false),
                    "IngressFailed",
                    &format!("could not open a tag's URL: {e}"),
                );
            }
            return;
        }
    };
    for e in &mut entries {
        if let Some(tag) = e["tag"].as_str()
            && let Some(u) = urls.get(tag)
        {
            e["url"] = json!(u);
        }
    }
    for r in st.revisions.values_mut().filter(|r| r.service == name) {
        let on = serving.contains(&r.meta.name);
        r.set_serving(on, name);
    }
    if let Some(s) = st.services.get_mut(name) {
        if s.status_traffic != entries {
            sh.events
                .push("traffic", json!({"service": name, "traffic": entries}));
        }
        s.status_traffic = entries;
        s.routes.set(Some(true), "", "");
    }
}

/// Checks a new revision (its first instance and startup probe), records the outcome, and
/// routes the service again.
async fn check(sh: Arc<Shared>, service: String, rev: NewRevision) {
    let outcome = match &rev.pool {
        Some(pool) => pool.check().await,
        None => Err(String::new()),
    };
    {
        let mut st = sh.lock();
        let st = &mut *st;
        if let Some(r) = st.revisions.get_mut(&rev.name) {
            match &outcome {
                Ok(()) => r.ready.set(Some(true), "", ""),
                Err(why) if !why.is_empty() => {
                    r.ready.set(Some(false), "HealthCheckContainerError", why)
                }
                Err(_) => {}
            }
        }
        if let Some(s) = st.services.get_mut(&service)
            && s.latest_created.as_deref() == Some(rev.name.as_str())
        {
            match &outcome {
                Ok(()) => {
                    s.latest_ready = Some(rev.name.clone());
                    s.config.set(Some(true), "", "");
                }
                Err(why) if !why.is_empty() => s.config.set(
                    Some(false),
                    "RevisionFailed",
                    &format!(
                        "Revision '{}' is not ready and cannot serve traffic. {why}",
                        rev.name
                    ),
                ),
                Err(_) => {}
            }
        }
        sh.events.push(
            "revision_checked",
            json!({"service": service, "revision": rev.name, "ready": outcome.is_ok(),
                   "reason": outcome.as_ref().err()}),
        );
    }
    sync_route(&sh, &service).await;
}

pub(super) async fn create_or_replace(
    sh: Arc<Shared>,
    body: Value,
    existing: bool,
) -> ApiResult<Json<Value>> {
    let (name, made) = apply(&sh, body, existing).await?;
    if let Some(rev) = made {
        let waiting = rev.pool.is_some();
        let task = tokio::spawn(check(Arc::clone(&sh), name.clone(), rev));
        if !waiting {
            let _ = task.await;
        }
    } else {
        sync_route(&sh, &name).await;
    }
    let st = sh.lock();
    let s = st
        .services
        .get(&name)
        .ok_or_else(|| ApiError::not_found("gone"))?;
    Ok(Json(json_of(&sh, s)))
}

pub async fn create(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let body = parse_body(&body)?;
    create_or_replace(sh, body, false).await
}

pub async fn replace(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let body = named_body(&body, &name)?;
    create_or_replace(sh, body, true).await
}

/// A replace's body, whose `metadata.name` must be the name in the path.
pub fn named_body(bytes: &[u8], name: &str) -> ApiResult<Value> {
    let body = parse_body(bytes)?;
    if body["metadata"]["name"].as_str() != Some(name) {
        return Err(ApiError::invalid_field(
            "metadata.name",
            format!("metadata.name: the name in the body must be \"{name}\", as in the path"),
        ));
    }
    Ok(body)
}

/// A request body as JSON; bad JSON is a 400 worded like Google's decoder.
pub fn parse_body(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
}

pub fn not_found(sh: &Shared, name: &str) -> ApiError {
    sh.missing("SERVICE", name)
}

pub async fn get(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let st = sh.lock();
    let s = st
        .services
        .get(&name)
        .ok_or_else(|| not_found(&sh, &name))?;
    Ok(Json(json_of(&sh, s)))
}

/// The `labelSelector` of a list call.
pub fn selector_of(uri: &axum::http::Uri) -> ApiResult<Vec<(String, String)>> {
    let query = uri.query().unwrap_or("");
    let selector = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v.into_owned());
    match selector {
        None => Ok(Vec::new()),
        Some(s) => meta::selector(&s).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid label selector \"{s}\": only equality (key=value) is supported."
            ))
        }),
    }
}

pub async fn list(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let sel = selector_of(&uri)?;
    let st = sh.lock();
    let items = st
        .services
        .values()
        .map(|s| json_of(&sh, s))
        .filter(|v| {
            v["metadata"]["labels"]
                .as_object()
                .is_some_and(|l| meta::matches(l, &sel))
        })
        .collect();
    Ok(Json(meta::list(API_VERSION, "Service", items)))
}

pub async fn delete(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let (service, pools) = {
        let mut st = sh.lock();
        let s = st
            .services
            .remove(&name)
            .ok_or_else(|| not_found(&sh, &name))?;
        let revs: Vec<String> = st
            .revisions
            .values()
            .filter(|r| r.service == name)
            .map(|r| r.meta.name.clone())
            .collect();
        let pools: Vec<_> = revs
            .iter()
            .filter_map(|r| st.revisions.remove(r))
            .filter_map(|r| r.pool)
            .collect();
        (s, pools)
    };
    service.ingress.close();
    futures::future::join_all(pools.iter().map(|p| p.close(super::instances::GRACE))).await;
    sh.events.push("service_deleted", json!({"service": name}));
    let mut status = meta::deleted(&name, "serving.knative.dev", "services");
    status["details"]["uid"] = json!(service.meta.uid);
    Ok(Json(status))
}

pub(super) fn revisions_of(sh: &Shared, name: &str) -> Vec<Value> {
    let st = sh.lock();
    st.revisions
        .values()
        .filter(|r| r.service == name)
        .map(|r| revisions::json_of(sh, r))
        .collect()
}
