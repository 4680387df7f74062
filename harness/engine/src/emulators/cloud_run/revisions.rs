//! Revisions (`serving.knative.dev/v1`): immutable snapshots of a service's template, each
//! with its own instances. Read, listed by label (gcloud lists a service's revisions with
//! `serving.knative.dev/service=NAME`) and deleted when no traffic or tag points at them.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::{Value, json};

use super::{
    Shared,
    error::{ApiError, ApiResult},
    images::Program,
    instances::{Container, Launch, Pool},
    meta::{self, Meta},
    services::{API_VERSION, Cond, selector_of},
    spec::{EnvValue, RunSpec, run_spec},
};

pub struct Revision {
    pub meta: Meta,
    pub service: String,
    pub service_uid: String,
    pub template: Value,
    pub spec: Arc<RunSpec>,
    pub pool: Option<Arc<Pool>>,
    pub ready: Cond,
    pub serving: bool,
}

/// What a revision's template runs: its spec and how to start it, or why it cannot run
/// (a reason and a message, as the revision's Ready condition says them).
pub type Prepared = Result<(Arc<RunSpec>, Launch), (Arc<RunSpec>, &'static str, String)>;

/// Resolves a template's image (through the image map, building a `cargo:` package) and
/// its secrets.
pub async fn prepare(sh: &Shared, template: &Value) -> Prepared {
    let spec = Arc::new(run_spec(template, &template["metadata"]));
    let found = {
        let images = sh.images.lock().unwrap_or_else(|p| p.into_inner());
        images
            .resolve(&spec.image)
            .cloned()
            .ok_or_else(|| images.references().map(str::to_owned).collect::<Vec<_>>())
    };
    // With the Docker provider, a reference the map does not have runs from the local image
    // of that name, if there is one.
    let local = match (&found, sh.builds.container_run()) {
        (Err(_), Some(run)) if local_image(&spec.image).await => Some(run.to_owned()),
        _ => None,
    };
    let image = match (found, local) {
        (_, Some(run)) => {
            let container = Container {
                entrypoint: Vec::new(),
                image: spec.image.clone(),
                run_id: run,
            };
            let dir = sh.cfg.log_dir.clone();
            return launch(sh, spec, Vec::new(), &BTreeMap::new(), dir, Some(container));
        }
        (Ok(image), None) => image,
        (Err(mapped), None) => {
            let mut hint = if mapped.is_empty() {
                " The emulator has no image map (`--images FILE`).".to_owned()
            } else {
                format!(" The image map has: {}.", mapped.join(", "))
            };
            if sh.builds.container_run().is_some() {
                hint.push_str(" The Docker engine has no local image of that reference either.");
            }
            return Err((
                Arc::clone(&spec),
                "ContainerMissing",
                format!("Image '{}' not found.{hint}", spec.image),
            ));
        }
    };
    let mut container = None;
    let argv = match &image.program {
        Program::Command(argv) => argv.clone(),
        // On a Docker-provider run a package with an image runs from that image.
        Program::Cargo(package) => match sh.builds.image(&image.dir, package).await {
            Ok(Some(local)) => {
                container = Some(Container {
                    entrypoint: Vec::new(),
                    image: local,
                    run_id: sh.builds.container_run().unwrap_or_default().to_owned(),
                });
                Vec::new()
            }
            Ok(None) => match sh.builds.binary(&image.dir, package).await {
                Ok(bin) => vec![bin.display().to_string()],
                Err(e) => {
                    return Err((
                        Arc::clone(&spec),
                        "ContainerMissing",
                        format!("Image '{}' could not be built: {}", spec.image, e.message()),
                    ));
                }
            },
            Err(e) => {
                return Err((
                    Arc::clone(&spec),
                    "ContainerMissing",
                    format!("Image '{}' could not be built: {}", spec.image, e.message()),
                ));
            }
        },
    };
    launch(sh, spec, argv, &image.env, image.dir.clone(), container)
}

/// How a revision's instances start: the program's argv (replaced by the revision's
/// `command`, followed by its `args`), the image's env under the revision's (secrets
/// resolved), in `dir`, or as `container`.
fn launch(
    sh: &Shared,
    spec: Arc<RunSpec>,
    mut argv: Vec<String>,
    image_env: &BTreeMap<String, String>,
    dir: PathBuf,
    mut container: Option<Container>,
) -> Prepared {
    if !spec.command.is_empty() {
        argv = spec.command.clone();
    }
    argv.extend(spec.args.iter().cloned());
    if let Some(c) = &mut container {
        // A container keeps its image's entrypoint unless the revision sets `command`.
        c.entrypoint.clone_from(&spec.command);
        argv = spec.args.clone();
    }
    let mut env: Vec<(String, String)> = image_env.clone().into_iter().collect();
    for (k, v) in &spec.env {
        let value = match v {
            EnvValue::Plain(s) => s.clone(),
            EnvValue::Secret { secret, version } => match sh.secret(secret) {
                Some(s) => s,
                None => {
                    return Err((
                        Arc::clone(&spec),
                        "SecretsAccessCheckFailed",
                        format!(
                            "spec.template.spec.containers[0].env.{k}: Secret projects/{}/secrets/{secret}/versions/{version} was not found (the emulator was given no value for it).",
                            sh.cfg.project
                        ),
                    ));
                }
            },
        };
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), value));
    }
    Ok((
        spec,
        Launch {
            argv,
            dir,
            env,
            container,
        },
    ))
}

impl Revision {
    /// A new revision of `service`; Err when it cannot run (the revision is kept, failed).
    pub fn new(
        sh: &Shared,
        service: &str,
        service_uid: &str,
        name: &str,
        generation: i64,
        template: Value,
        prepared: Prepared,
    ) -> Result<Revision, (Revision, String)> {
        let mut m = Meta::new(name, &mut sh.rng());
        m.labels = meta::string_map(&template["metadata"], "labels");
        m.annotations = meta::string_map(&template["metadata"], "annotations");
        for (k, v) in [
            ("serving.knative.dev/service", service.to_owned()),
            ("serving.knative.dev/configuration", service.to_owned()),
            (
                "serving.knative.dev/configurationGeneration",
                generation.to_string(),
            ),
            ("serving.knative.dev/serviceUid", service_uid.to_owned()),
            ("cloud.googleapis.com/location", sh.cfg.region.clone()),
        ] {
            m.labels.insert(k.into(), json!(v));
        }
        m.annotations.insert(
            "serving.knative.dev/creator".into(),
            json!("harness-emulator"),
        );
        let mut rev = Revision {
            meta: m,
            service: service.to_owned(),
            service_uid: service_uid.to_owned(),
            template,
            spec: Arc::new(run_spec(&Value::Null, &Value::Null)),
            pool: None,
            ready: Cond::unknown("Deploying"),
            serving: false,
        };
        match prepared {
            Ok((spec, mut launch)) => {
                for (k, v) in [
                    ("K_SERVICE", service),
                    ("K_REVISION", name),
                    ("K_CONFIGURATION", service),
                ] {
                    launch.env.push((k.into(), v.into()));
                }
                rev.pool = Some(Pool::new(
                    service,
                    name,
                    Arc::clone(&spec),
                    launch,
                    Arc::clone(&sh.events),
                    sh.cfg.log_dir.clone(),
                    sh.cfg.idle_timeout,
                    sh.cfg.groups.clone(),
                ));
                rev.spec = spec;
                Ok(rev)
            }
            Err((spec, reason, why)) => {
                rev.spec = spec;
                rev.ready.set(Some(false), reason, &why);
                Err((rev, why))
            }
        }
    }

    pub fn set_serving(&mut self, serving: bool, route: &str) {
        self.serving = serving;
        if serving {
            self.meta
                .labels
                .insert("serving.knative.dev/route".into(), json!(route));
        } else {
            self.meta.labels.remove("serving.knative.dev/route");
        }
        if let Some(p) = &self.pool {
            p.set_serving(serving);
        }
    }
}

pub fn json_of(sh: &Shared, r: &Revision) -> Value {
    let ns = &sh.cfg.project;
    let mut metadata = r.meta.json(
        ns,
        &format!(
            "/apis/{API_VERSION}/namespaces/{ns}/revisions/{}",
            r.meta.name
        ),
    );
    metadata["ownerReferences"] = json!([{
        "kind": "Configuration",
        "name": r.service,
        "uid": r.service_uid,
        "apiVersion": API_VERSION,
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let active = if r.serving {
        json!({"type": "Active", "status": "True", "lastTransitionTime": r.ready.at, "severity": "Info"})
    } else {
        json!({"type": "Active", "status": "False", "reason": "NoTraffic",
               "message": "The target is not receiving traffic.",
               "lastTransitionTime": r.ready.at, "severity": "Info"})
    };
    let mut healthy = r.ready.json("ContainerHealthy");
    if r.ready.reason == "ContainerMissing" {
        healthy = Cond::unknown("").json("ContainerHealthy");
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Revision",
        "metadata": metadata,
        "spec": r.template["spec"],
        "status": {
            "observedGeneration": 1,
            "conditions": [r.ready.json("Ready"), active, healthy,
                           r.ready.json("ResourcesAvailable")],
            "logUrl": format!("file://{}", sh.cfg.log_dir.join(&r.meta.name).display()),
            "imageDigest": r.spec.image,
            "containerStatuses": [{"name": r.template["spec"]["containers"][0]["name"].as_str().unwrap_or(""), "imageDigest": r.spec.image}],
        },
    })
}

fn not_found(sh: &Shared, name: &str) -> ApiError {
    sh.missing("REVISION", name)
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
    let mut revs: Vec<&Revision> = st
        .revisions
        .values()
        .filter(|r| meta::matches(&r.meta.labels, &sel))
        .collect();
    revs.sort_by(|a, b| b.meta.created.cmp(&a.meta.created));
    let items = revs.into_iter().map(|r| json_of(&sh, r)).collect();
    Ok(Json(meta::list(API_VERSION, "Revision", items)))
}

pub async fn get(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let st = sh.lock();
    let r = st
        .revisions
        .get(&name)
        .ok_or_else(|| not_found(&sh, &name))?;
    Ok(Json(json_of(&sh, r)))
}

pub async fn delete(
    State(sh): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    sh.scope(&ns, &headers)?;
    let removed = {
        let mut st = sh.lock();
        let r = st
            .revisions
            .get(&name)
            .ok_or_else(|| not_found(&sh, &name))?;
        let named = st.services.get(&r.service).is_some_and(|s| {
            s.traffic
                .iter()
                .any(|t| t.revision.as_deref() == Some(name.as_str()))
                || (s.latest_ready.as_deref() == Some(name.as_str())
                    && s.traffic.iter().any(|t| t.latest))
        });
        if r.serving || named {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!(
                    "Revision '{name}' is serving traffic or is named in the service's traffic targets; route its traffic elsewhere before deleting it."
                ),
            ));
        }
        st.revisions.remove(&name)
    };
    if let Some(p) = removed.and_then(|r| r.pool) {
        p.close(super::instances::GRACE).await;
    }
    Ok(Json(meta::deleted(
        &name,
        "serving.knative.dev",
        "revisions",
    )))
}

/// Whether the Docker engine has an image of this reference.
async fn local_image(reference: &str) -> bool {
    tokio::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
