//! The `/v1/projects/{p}/locations/{l}/…` form of the API: lists and gets of services and
//! jobs (gcloud lists across regions with location `-`), and the IAM calls gcloud makes on services and jobs
//! (`/v1/projects/{p}/locations/{l}/services/{name}:getIamPolicy|setIamPolicy|testIamPermissions`).
//! The emulator checks no permission: every permission asked for is granted, and a policy
//! that is set is kept and read back.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
};
use serde_json::{Value, json};

use super::{
    Shared,
    error::{ApiError, ApiResult},
};

fn split(name: &str) -> ApiResult<(&str, &str)> {
    name.rsplit_once(':')
        .ok_or_else(|| ApiError::not_found(format!("The emulator does not serve {name}.")))
}

fn key(project: &str, location: &str, kind: &str, name: &str) -> String {
    format!("projects/{project}/locations/{location}/{kind}/{name}")
}

fn exists(sh: &Shared, kind: &str, name: &str) -> ApiResult<()> {
    let st = sh.lock();
    let found = match kind {
        "services" => st.services.contains_key(name),
        "jobs" => st.jobs.contains_key(name),
        _ => false,
    };
    if found {
        Ok(())
    } else {
        Err(sh.missing(&kind.trim_end_matches('s').to_uppercase(), name))
    }
}

/// `GET /v1/projects/{p}/locations/{l}/services|jobs`: as the namespaced list.
pub async fn list(
    State(sh): State<Arc<Shared>>,
    Path((project, location, kind)): Path<(String, String, String)>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    location_of(&sh, &project, &location)?;
    match kind.as_str() {
        "services" => super::services::list(State(sh), Path(project), uri, headers).await,
        "jobs" => super::jobs::list(State(sh), Path(project), uri, headers).await,
        other => Err(ApiError::not_found(format!(
            "The emulator does not serve {other}."
        ))),
    }
}

fn location_of(sh: &Shared, project: &str, location: &str) -> ApiResult<()> {
    sh.namespace(project)?;
    if location != "-" && location != sh.cfg.region {
        return Err(ApiError::not_found(format!(
            "Location {location} is not served: the emulator runs region {}.",
            sh.cfg.region
        )));
    }
    Ok(())
}

pub async fn get(
    State(sh): State<Arc<Shared>>,
    Path((project, location, kind, name)): Path<(String, String, String, String)>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Value>> {
    if !name.contains(':') {
        location_of(&sh, &project, &location)?;
        return match kind.as_str() {
            "services" => super::services::get(State(sh), Path((project, name)), headers).await,
            "jobs" => super::jobs::get(State(sh), Path((project, name)), headers).await,
            other => Err(ApiError::not_found(format!(
                "The emulator does not serve {other}."
            ))),
        };
    }
    let (name, verb) = split(&name)?;
    if verb != "getIamPolicy" {
        return Err(ApiError::not_found(format!(
            "The emulator does not serve GET :{verb}."
        )));
    }
    exists(&sh, &kind, name)?;
    let st = sh.lock();
    Ok(Json(
        st.iam
            .get(&key(&project, &location, &kind, name))
            .cloned()
            .unwrap_or_else(|| json!({"version": 1, "etag": "ACAB"})),
    ))
}

pub async fn post(
    State(sh): State<Arc<Shared>>,
    Path((project, location, kind, name)): Path<(String, String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let (name, verb) = split(&name)?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        super::services::parse_body(&body)?
    };
    match verb {
        "testIamPermissions" => {
            // Permissions on a service that does not exist yet are asked before a deploy.
            Ok(Json(json!({"permissions": body["permissions"]})))
        }
        "setIamPolicy" => {
            exists(&sh, &kind, name)?;
            let mut policy = body["policy"].clone();
            policy["etag"] = json!("BwYh");
            if policy.get("version").is_none() {
                policy["version"] = json!(1);
            }
            sh.lock()
                .iam
                .insert(key(&project, &location, &kind, name), policy.clone());
            Ok(Json(policy))
        }
        other => Err(ApiError::not_found(format!(
            "The emulator does not serve POST :{other}."
        ))),
    }
}
