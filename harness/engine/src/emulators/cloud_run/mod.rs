//! An emulator of Cloud Run's Admin API and data plane.
//!
//! - Control plane: the v1 Knative-style surface `gcloud run` uses
//!   (`/apis/serving.knative.dev/v1/namespaces/{project}/services|revisions|routes|configurations`,
//!   `/apis/run.googleapis.com/v1/namespaces/{project}/jobs|executions|tasks`, and the IAM
//!   calls under `/v1/projects/{p}/locations/{l}/…`), one module per resource, over one
//!   model ([`State`]).
//! - Data plane ([`instances`]): every revision runs as real instances of its image (an
//!   [`images::ImageMap`] entry on the native provider), probed, and scaled between its
//!   minimum and maximum.
//! - [`ingress`]: one reverse proxy per service (and per tag) on 127.0.0.1.
//!
//! The API listens on 127.0.0.1 and also answers as an HTTP proxy: gcloud, pointed at it
//! with [`CloudRun::gcloud_env`], sends absolute-form requests for its regional host
//! (`us-central1-run.local`) here, so no name has to resolve and no credentials are needed.

pub mod client;
pub mod error;
pub mod events;
mod executions;
mod iam;
pub mod images;
pub mod ingress;
pub mod instances;
mod jobs;
pub mod meta;
mod revisions;
mod routes;
mod services;
pub mod spec;
pub mod traffic;
mod v2;
mod v2_jobs;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use rand::{SeedableRng, rngs::StdRng};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::{error::ApiError, events::Events, images::ImageMap};
use crate::{Error, run::processes::Builds};

/// The host gcloud is pointed at; it prefixes the region (`us-central1-run.local`).
pub const API_HOST: &str = "run.local";

/// How the emulator is set up.
#[derive(Clone)]
pub struct Config {
    pub project: String,
    pub region: String,
    pub seed: u64,
    pub images: ImageMap,
    /// Values of the secrets revisions may reference (`valueFrom.secretKeyRef.name`), by
    /// secret name. Never printed or reported.
    pub secrets: BTreeMap<String, String>,
    /// Where instance logs and `events.jsonl` go.
    pub log_dir: PathBuf,
    /// How long an instance beyond the minimum may stay idle before it is stopped.
    pub idle_timeout: Duration,
    /// The port of the API on 127.0.0.1 (0: a free one).
    pub port: u16,
    /// Where `cargo:` images are built (a run's own builds, so a package is built once per
    /// run); default: builds of the emulator's own, using `HARNESS_BIN_DIR` when set.
    pub builds: Option<Arc<Builds>>,
    /// The run whose record lists every instance's and task's process group, so that the
    /// reaper stops them after a run that was killed.
    pub groups: Option<crate::stack::records::Groups>,
}

impl Config {
    pub fn new(log_dir: PathBuf) -> Self {
        Config {
            project: "demo".into(),
            region: "us-central1".into(),
            seed: 0,
            images: ImageMap::new(),
            secrets: BTreeMap::new(),
            log_dir,
            idle_timeout: Duration::from_secs(60),
            port: 0,
            builds: None,
            groups: None,
        }
    }
}

/// The emulator's model: the one place its state lives.
#[derive(Default)]
pub(crate) struct State {
    services: BTreeMap<String, services::Service>,
    revisions: BTreeMap<String, revisions::Revision>,
    jobs: BTreeMap<String, jobs::Job>,
    executions: BTreeMap<String, executions::Execution>,
    iam: BTreeMap<String, serde_json::Value>,
    operations: BTreeMap<String, v2::Operation>,
}

pub(crate) struct Shared {
    cfg: Config,
    /// The image map: the configured one, and what scenario deploys add.
    images: Mutex<ImageMap>,
    state: Mutex<State>,
    rng: Mutex<StdRng>,
    events: Arc<Events>,
    builds: Arc<Builds>,
    /// Held while a service's traffic is resolved and handed to its ingress.
    routing: tokio::sync::Mutex<()>,
    closed: CancellationToken,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the namespace of a v1 path: the project, by id.
    fn namespace(&self, ns: &str) -> Result<(), ApiError> {
        if ns == self.cfg.project {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "Permission denied on resource project {ns} (the emulator serves project {}).",
                    self.cfg.project
                ),
            ))
        }
    }

    /// Checks the region a request was addressed to (the `{region}-` prefix of its host,
    /// none for the global endpoint).
    fn region(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        match host.strip_suffix(&format!("-{API_HOST}")) {
            Some(region) if region != self.cfg.region => Err(ApiError::not_found(format!(
                "Location {region} is not served: the emulator runs region {}.",
                self.cfg.region
            ))),
            _ => Ok(()),
        }
    }

    /// A 404 for a `kind` (`SERVICE`, `JOB`, …) named `name`, worded as the real API words it.
    fn missing(&self, kind: &str, name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Resource '{name}' of kind '{kind}' in region '{}' in project '{}' does not exist.",
            self.cfg.region, self.cfg.project
        ))
    }

    /// Checks a v1 request: its namespace and the region of its host.
    fn scope(&self, ns: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        self.namespace(ns)?;
        self.region(headers)
    }

    /// Resolves env values: secrets by name from the emulator's values.
    fn secret(&self, name: &str) -> Option<String> {
        self.cfg.secrets.get(name).cloned()
    }
}

/// A running emulator.
pub struct CloudRun {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
}

impl CloudRun {
    /// Starts the API on 127.0.0.1.
    pub async fn start(cfg: Config) -> Result<Self, Error> {
        std::fs::create_dir_all(&cfg.log_dir)
            .map_err(|e| Error::io(format!("create {}", cfg.log_dir.display()), e))?;
        let events = Arc::new(Events::new(&cfg.log_dir));
        for v in cfg.secrets.values() {
            events.redact(v);
        }
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], cfg.port)))
            .await
            .map_err(|e| Error::io(format!("bind 127.0.0.1:{}", cfg.port), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read local address", e))?;
        let bin_dir = std::env::var_os("HARNESS_BIN_DIR").map(PathBuf::from);
        let builds = cfg
            .builds
            .clone()
            .unwrap_or_else(|| Arc::new(Builds::new(bin_dir)));
        let shared = Arc::new(Shared {
            images: Mutex::new(cfg.images.clone()),
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            cfg,
            state: Mutex::new(State::default()),
            events,
            builds,
            routing: tokio::sync::Mutex::new(()),
            closed: CancellationToken::new(),
        });
        let app = router(Arc::clone(&shared));
        let closed = shared.closed.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { closed.cancelled().await })
                .await;
        });
        Ok(CloudRun { shared, addr })
    }

    /// The API endpoint gcloud's override names (`http://run.local:PORT/`).
    pub fn endpoint(&self) -> String {
        format!("http://{API_HOST}:{}/", self.addr.port())
    }

    /// The API's own URL on 127.0.0.1, for clients that take one directly.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn project(&self) -> &str {
        &self.shared.cfg.project
    }

    pub fn region(&self) -> &str {
        &self.shared.cfg.region
    }

    /// The environment that points gcloud at the emulator without touching any system file
    /// or needing credentials: its API override, its own proxy settings (so the regional
    /// host needs no name resolution), credentials off, and a config folder of its own.
    pub fn gcloud_env(&self, config_dir: &std::path::Path) -> Vec<(String, String)> {
        let port = self.addr.port().to_string();
        [
            ("CLOUDSDK_CONFIG", config_dir.display().to_string()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN", self.endpoint()),
            ("CLOUDSDK_PROXY_TYPE", "http".into()),
            ("CLOUDSDK_PROXY_ADDRESS", "127.0.0.1".into()),
            ("CLOUDSDK_PROXY_PORT", port),
            ("CLOUDSDK_AUTH_DISABLE_CREDENTIALS", "true".into()),
            ("CLOUDSDK_CORE_PROJECT", self.shared.cfg.project.clone()),
            ("CLOUDSDK_RUN_REGION", self.shared.cfg.region.clone()),
            ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1".into()),
            ("CLOUDSDK_CORE_SHOULD_PROMPT_TO_ENABLE_API", "false".into()),
            (
                "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK",
                "true".into(),
            ),
            ("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Records an event of a caller's own (a canary's decisions), beside the emulator's.
    pub fn record(&self, kind: &str, event: serde_json::Value) {
        self.shared.events.push(kind, event);
    }

    /// Every event so far (deploys, instances, requests).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.shared.events.all()
    }

    /// The URL of a service's ingress, once it exists.
    pub fn service_url(&self, name: &str) -> Option<String> {
        self.shared
            .lock()
            .services
            .get(name)
            .map(|s| s.ingress.url())
    }

    /// A `deploy` step's document for a service, from the model.
    pub fn summary_of(&self, service: &str) -> Option<serde_json::Value> {
        let st = self.shared.lock();
        let s = st.services.get(service)?;
        Some(client::summary(&services::json_of(&self.shared, s)))
    }

    /// How many instances of a revision are running.
    pub fn instances(&self, revision: &str) -> usize {
        self.shared
            .lock()
            .revisions
            .get(revision)
            .and_then(|r| r.pool.as_ref().map(|p| p.instance_count()))
            .unwrap_or(0)
    }

    /// Maps an image reference to a program, from now on.
    pub fn map_image(&self, reference: &str, image: images::Image) {
        self.shared
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference, image);
    }

    /// The log folder (instance logs, `events.jsonl`).
    pub fn log_dir(&self) -> &std::path::Path {
        &self.shared.cfg.log_dir
    }

    /// Stops the API, every ingress and every instance and task.
    pub async fn shutdown(&self) {
        self.shared.closed.cancel();
        let (pools, ingresses, tasks) = {
            let mut s = self.shared.lock();
            let pools: Vec<_> = std::mem::take(&mut s.revisions)
                .into_values()
                .filter_map(|r| r.pool)
                .collect();
            let ingresses: Vec<_> = std::mem::take(&mut s.services)
                .into_values()
                .map(|s| s.ingress)
                .collect();
            let tasks: Vec<_> = s.executions.values().map(|e| e.cancel.clone()).collect();
            (pools, ingresses, tasks)
        };
        for i in ingresses {
            i.close();
        }
        for t in tasks {
            t.cancel();
        }
        futures::future::join_all(pools.iter().map(|p| p.close(Duration::from_secs(2)))).await;
        executions::wait_all(&self.shared).await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let knative = "/apis/serving.knative.dev/v1/namespaces/{ns}";
    let run = "/apis/run.googleapis.com/v1/namespaces/{ns}";
    Router::new()
        .route(
            &format!("{knative}/services"),
            get(services::list).post(services::create),
        )
        .route(
            &format!("{knative}/services/{{name}}"),
            get(services::get)
                .put(services::replace)
                .delete(services::delete),
        )
        .route(&format!("{knative}/revisions"), get(revisions::list))
        .route(
            &format!("{knative}/revisions/{{name}}"),
            get(revisions::get).delete(revisions::delete),
        )
        .route(&format!("{knative}/routes"), get(routes::list_routes))
        .route(
            &format!("{knative}/routes/{{name}}"),
            get(routes::get_route),
        )
        .route(
            &format!("{knative}/configurations"),
            get(routes::list_configurations),
        )
        .route(
            &format!("{knative}/configurations/{{name}}"),
            get(routes::get_configuration),
        )
        .route(&format!("{run}/jobs"), get(jobs::list).post(jobs::create))
        .route(
            &format!("{run}/jobs/{{name}}"),
            get(jobs::get)
                .put(jobs::replace)
                .delete(jobs::delete)
                .post(jobs::run),
        )
        .route(
            &format!("{run}/executions"),
            get(executions::list_executions),
        )
        .route(
            &format!("{run}/executions/{{name}}"),
            get(executions::get_execution)
                .delete(executions::delete_execution)
                .post(executions::cancel_execution),
        )
        .route(&format!("{run}/tasks"), get(executions::list_tasks))
        .route(&format!("{run}/tasks/{{name}}"), get(executions::get_task))
        .route(
            "/v1/projects/{project}/locations/{location}/{kind}",
            get(iam::list),
        )
        .route(
            "/v1/projects/{project}/locations/{location}/{kind}/{name}",
            get(iam::get).post(iam::post),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/services",
            get(v2::list_services).post(v2::create_service),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/services/{name}",
            get(v2::service)
                .patch(v2::update_service)
                .delete(v2::delete_service),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/services/{name}/revisions",
            get(v2::list_revisions),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/services/{name}/revisions/{rev}",
            get(v2::revision),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/jobs",
            get(v2_jobs::list_jobs).post(v2_jobs::create_job),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/jobs/{name}",
            get(v2_jobs::job)
                .patch(v2_jobs::update_job)
                .delete(v2_jobs::delete_job)
                .post(v2_jobs::run_job),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/jobs/{job}/executions",
            get(v2_jobs::list_executions),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/jobs/{job}/executions/{name}",
            get(v2_jobs::execution)
                .delete(v2_jobs::delete_execution)
                .post(v2_jobs::cancel_execution),
        )
        .route(
            "/v2/projects/{project}/locations/{location}/operations/{id}",
            get(v2::operation),
        )
        .fallback(fallback)
        .with_state(shared)
}

async fn fallback(req: Request) -> impl IntoResponse {
    let e = if req.method() == axum::http::Method::CONNECT {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "the Cloud Run emulator answers as a plain HTTP proxy for its own API only; it does not tunnel to {}",
                req.uri()
            ),
        )
    } else {
        ApiError::not_found(format!(
            "The emulator does not serve {} {}.",
            req.method(),
            req.uri().path()
        ))
    };
    e.into_response()
}
