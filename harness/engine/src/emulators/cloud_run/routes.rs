//! Routes and configurations (`serving.knative.dev/v1`), read-only views of a service: its
//! resolved traffic, and its template with the latest created and ready revisions.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Value, json};

use super::{
    Shared,
    error::ApiResult,
    meta,
    services::{self, API_VERSION, Service, not_found},
};

fn route_of(sh: &Shared, s: &Service) -> Value {
    let ns = &sh.cfg.project;
    let mut metadata = s.meta.json(
        ns,
        &format!("/apis/{API_VERSION}/namespaces/{ns}/routes/{}", s.meta.name),
    );
    metadata["labels"]["serving.knative.dev/service"] = json!(s.meta.name);
    json!({
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": metadata,
        "spec": {"traffic": s.traffic.iter().map(|t| {
            let mut v = t.json();
            if t.latest {
                v["configurationName"] = json!(s.meta.name);
            }
            v
        }).collect::<Vec<_>>()},
        "status": {
            "observedGeneration": s.meta.generation,
            "conditions": [s.routes.json("Ready"), s.routes.json("AllTrafficAssigned")],
            "traffic": s.status_traffic,
            "url": s.ingress.url(),
            "address": {"url": s.ingress.url()},
        },
    })
}

fn configuration_of(sh: &Shared, s: &Service) -> Value {
    let ns = &sh.cfg.project;
    let mut metadata = s.meta.json(
        ns,
        &format!(
            "/apis/{API_VERSION}/namespaces/{ns}/configurations/{}",
            s.meta.name
        ),
    );
    metadata["labels"]["serving.knative.dev/service"] = json!(s.meta.name);
    let mut status = json!({
        "observedGeneration": s.meta.generation,
        "conditions": [s.config.json("Ready")],
    });
    if let Some(r) = &s.latest_created {
        status["latestCreatedRevisionName"] = json!(r);
    }
    if let Some(r) = &s.latest_ready {
        status["latestReadyRevisionName"] = json!(r);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Configuration",
        "metadata": metadata,
        "spec": {"template": s.template},
        "status": status,
    })
}

pub async fn list_routes(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let st = sh.lock();
    let items = st.services.values().map(|s| route_of(&sh, s)).collect();
    Ok(Json(meta::list(API_VERSION, "Route", items)))
}

pub async fn get_route(
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
    Ok(Json(route_of(&sh, s)))
}

pub async fn list_configurations(
    State(sh): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let st = sh.lock();
    let items = st
        .services
        .values()
        .map(|s| configuration_of(&sh, s))
        .collect();
    Ok(Json(meta::list(API_VERSION, "Configuration", items)))
}

pub async fn get_configuration(
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
    let _ = services::revisions_of;
    Ok(Json(configuration_of(&sh, s)))
}
