//! Per-scenario isolation on a shared stack: each scenario gets its own Postgres database
//! (cloned from a template prepared once per distinct set of SQL fixtures), its own
//! versioned bucket, and its own graph label. Scenarios can then run in parallel on one
//! stack without seeing each other's data; [`Shared::cleanup`] removes all three.

use std::{collections::HashMap, path::Path};

use aws_sdk_s3::{
    Client,
    types::{BucketVersioningStatus, ObjectIdentifier, VersioningConfiguration},
};
use harness_scenario::{Fixture, Scenario, Service};
use neo4rs::Graph;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::sync::Mutex;

use super::stores::{quote_ident, run_query, sdk_error};
use crate::{error::Error, stack::Endpoints};

/// The start of every isolation name this run makes: its process id and start time, then
/// a random part (`<pid>-<start>-<random>`; a scenario appends `-<index>`). A later run
/// on the same stack can then tell what a killed run left from what a live one uses.
pub fn run_tag() -> String {
    let pid = std::process::id();
    let start = crate::stack::records::start_ticks(pid).unwrap_or(0);
    format!("{pid}-{start}-{}", crate::secret::random_id(6))
}

/// The owner of an isolation name (`h_…`, `h-…`, `H_…`) when its owner has died: names
/// made by [`run_tag`] whose process is gone or now started at another time.
fn dead_owner(name: &str) -> bool {
    let Some(rest) = name.get(2..) else {
        return false;
    };
    let mut parts = rest.split(['-', '_']);
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    crate::stack::records::start_ticks(pid) != Some(start)
}

/// What one scenario owns.
#[derive(Clone, Default)]
pub struct Isolation {
    pub id: String,
    pub database: Option<String>,
    pub database_url: Option<String>,
    pub pool: Option<PgPool>,
    pub bucket: Option<String>,
    pub s3: Option<Client>,
    pub graph_label: Option<String>,
    pub graph: Option<Graph>,
}

/// Removes a scenario's isolation when dropped without [`IsolationGuard::disarm`]: a
/// scenario task that panics still leaves no database, bucket or label behind.
pub struct IsolationGuard {
    shared: std::sync::Arc<Shared>,
    iso: Option<Isolation>,
}

impl IsolationGuard {
    pub fn new(shared: std::sync::Arc<Shared>, iso: &Isolation) -> Self {
        IsolationGuard {
            shared,
            iso: Some(iso.clone()),
        }
    }

    /// The scenario cleaned up (or kept) its isolation itself.
    pub fn disarm(&mut self) {
        self.iso = None;
    }
}

impl Drop for IsolationGuard {
    /// Starts the cleanup; the run waits for it ([`Shared::finish_cleanups`]) before it
    /// ends.
    fn drop(&mut self) {
        let Some(iso) = self.iso.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = std::sync::Arc::clone(&self.shared);
            let task = runtime.spawn(async move { shared.cleanup(&iso).await });
            if let Ok(mut pending) = self.shared.pending.lock() {
                pending.push(task);
            }
        }
    }
}

/// Connections shared by every scenario of a run, and the template databases made so far.
pub struct Shared {
    endpoints: Endpoints,
    admin: Option<PgPool>,
    s3: Option<Client>,
    graph: Option<Graph>,
    templates: Mutex<HashMap<String, String>>,
    /// Cleanups started by [`IsolationGuard`]s of scenarios that did not end normally.
    pending: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// Connects to the stack's services. With `sweep`, it first removes the databases,
    /// buckets and graph labels that runs of this machine left when they were killed (only
    /// for a stack on this machine, where their owners' process ids mean something).
    pub async fn connect(endpoints: &Endpoints, sweep: bool) -> Result<Shared, Error> {
        let admin = match &endpoints.postgres {
            Some(pg) => Some(
                PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(pg.connect_options())
                    .await?,
            ),
            None => None,
        };
        let graph = match &endpoints.neo4j {
            Some(n) => Some(n.graph()?),
            None => None,
        };
        let shared = Shared {
            endpoints: endpoints.clone(),
            admin,
            s3: endpoints.s3.as_ref().map(|s| s.client()),
            graph,
            templates: Mutex::new(HashMap::new()),
            pending: std::sync::Mutex::new(Vec::new()),
        };
        if sweep {
            shared.sweep().await;
        }
        Ok(shared)
    }

    /// Waits for the cleanups of scenarios that panicked.
    pub async fn finish_cleanups(&self) {
        let tasks = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Removes the isolation of scenarios whose run was killed (best effort).
    async fn sweep(&self) {
        let mut left = Isolation::default();
        if let Some(admin) = &self.admin {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'h\\_%'")
                    .fetch_all(admin)
                    .await
                    .unwrap_or_default();
            for db in names.into_iter().filter(|n| dead_owner(n)) {
                left.database = Some(db);
                self.cleanup(&left).await;
            }
            left.database = None;
        }
        if let Some(client) = &self.s3 {
            let names: Vec<String> = match client.list_buckets().send().await {
                Ok(out) => out
                    .buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_owned))
                    .collect(),
                Err(_) => Vec::new(),
            };
            for bucket in names
                .into_iter()
                .filter(|n| n.starts_with("h-") && dead_owner(n))
            {
                left.bucket = Some(bucket);
                self.cleanup(&left).await;
            }
            left.bucket = None;
        }
        if let Some(graph) = &self.graph
            && let Ok(Value::Array(rows)) = run_query(
                graph,
                neo4rs::query("CALL db.labels() YIELD label RETURN label"),
            )
            .await
        {
            let labels = rows
                .iter()
                .filter_map(|r| r.get("label").and_then(Value::as_str).map(str::to_owned));
            for label in labels.filter(|l| l.starts_with("H_") && dead_owner(l)) {
                left.graph_label = Some(label);
                self.cleanup(&left).await;
            }
        }
    }

    /// Creates the scenario's database, bucket and label, and loads its fixtures. When a
    /// part fails, what was already made is removed before the error returns.
    pub async fn prepare(
        &self,
        id: &str,
        scenario: &Scenario,
        dir: &Path,
    ) -> Result<Isolation, String> {
        let mut iso = Isolation {
            id: id.to_owned(),
            ..Isolation::default()
        };
        match self.fill(&mut iso, scenario, dir).await {
            Ok(()) => Ok(iso),
            Err(e) => {
                self.cleanup(&iso).await;
                Err(e)
            }
        }
    }

    /// Makes each part of `iso`, recording it there as soon as it exists.
    async fn fill(
        &self,
        iso: &mut Isolation,
        scenario: &Scenario,
        dir: &Path,
    ) -> Result<(), String> {
        let id = iso.id.clone();
        // Only the services the scenario lists (a scenario can reach no other one: its
        // steps, fixtures and references are checked against `stack`), so a scenario never
        // waits on a service another one has taken away; no list, every service.
        let uses = |svc: Service| scenario.stack.is_empty() || scenario.stack.contains(&svc);
        let sql_fixtures: Vec<&String> = scenario
            .fixtures
            .iter()
            .filter_map(|f| match f {
                Fixture::Sql(p) => Some(p),
                _ => None,
            })
            .collect();
        if let (true, Some(admin), Some(pg)) = (
            uses(Service::Postgres),
            &self.admin,
            &self.endpoints.postgres,
        ) {
            let template = self
                .template(
                    admin,
                    pg.connect_options(),
                    &sql_fixtures,
                    scenario.uses_supabase,
                    dir,
                )
                .await?;
            let name = format!("h_{}", id.replace('-', "_"));
            sqlx::query(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(&template)
            ))
            .execute(admin)
            .await
            .map_err(|e| format!("create database {name}: {e}"))?;
            iso.database = Some(name.clone());
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect_with(pg.connect_options().database(&name))
                .await
                .map_err(|e| format!("connect to {name}: {e}"))?;
            iso.database_url = Some(format!(
                "postgres://{}:{}@{}:{}/{}",
                pg.user,
                pg.password.expose(),
                pg.host,
                pg.port,
                name
            ));
            iso.pool = Some(pool);
        }
        if let (true, Some(client)) = (uses(Service::S3), &self.s3) {
            let bucket = format!("h-{id}");
            client
                .create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| format!("create bucket {bucket}: {}", sdk_error(&e)))?;
            iso.bucket = Some(bucket.clone());
            client
                .put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| format!("enable versioning on {bucket}: {}", sdk_error(&e)))?;
            for f in &scenario.fixtures {
                if let Fixture::S3(o) = f {
                    let bytes = match (&o.file, &o.body) {
                        (Some(file), _) => std::fs::read(dir.join(file)).map_err(|e| {
                            format!("read fixture {}: {e}", dir.join(file).display())
                        })?,
                        (None, Some(body)) => body.clone().into_bytes(),
                        (None, None) => Vec::new(),
                    };
                    client
                        .put_object()
                        .bucket(&bucket)
                        .key(&o.key)
                        .body(bytes.into())
                        .send()
                        .await
                        .map_err(|e| format!("put fixture {}: {}", o.key, sdk_error(&e)))?;
                }
            }
            iso.s3 = Some(client.clone());
        }
        if let (true, Some(graph)) = (uses(Service::Neo4j), &self.graph) {
            let label = format!("H_{}", id.replace('-', "_"));
            iso.graph_label = Some(label.clone());
            for f in &scenario.fixtures {
                if let Fixture::Cypher(file) = f {
                    let path = dir.join(file);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("read fixture {}: {e}", path.display()))?
                        .replace("${scenario.graph_label}", &label);
                    for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                        run_query(graph, neo4rs::query(statement))
                            .await
                            .map_err(|e| format!("fixture {}: {e}", path.display()))?;
                    }
                }
            }
            iso.graph = Some(graph.clone());
        }
        Ok(())
    }

    /// The template database for a set of SQL fixtures, made once (also across processes
    /// sharing the stack, under an advisory lock). With `supabase`, Supabase's roles and
    /// `auth` schema come first, so that fixtures can write policies on `auth.uid()`.
    async fn template(
        &self,
        admin: &PgPool,
        options: PgConnectOptions,
        files: &[&String],
        supabase: bool,
        dir: &Path,
    ) -> Result<String, String> {
        if files.is_empty() && !supabase {
            return Ok("template1".into());
        }
        let mut hasher = Sha256::new();
        if supabase {
            hasher.update(b"supabase\0");
        }
        let mut scripts = Vec::new();
        for f in files {
            let path = dir.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("read fixture {}: {e}", path.display()))?;
            hasher.update(text.as_bytes());
            hasher.update([0]);
            scripts.push((path, text));
        }
        let hash: String = hasher
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("harness_tpl_{hash}");
        let mut made = self.templates.lock().await;
        if made.contains_key(&name) {
            return Ok(name);
        }
        let mut conn = admin.acquire().await.map_err(|e| e.to_string())?;
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(&name)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        let result = async {
            let exists: Option<bool> =
                sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
            match exists {
                Some(true) => return Ok(()),
                // A run that died half-way through making it.
                Some(false) => {
                    sqlx::query(&format!(
                        "DROP DATABASE {} WITH (FORCE)",
                        quote_ident(&name)
                    ))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                }
                None => {}
            }
            sqlx::query(&format!("CREATE DATABASE {}", quote_ident(&name)))
                .execute(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.database(&name))
                .await
                .map_err(|e| e.to_string())?;
            if supabase {
                crate::emulators::supabase::schema::install(&pool).await?;
            }
            for (path, text) in &scripts {
                sqlx::raw_sql(text)
                    .execute(&pool)
                    .await
                    .map_err(|e| format!("fixture {}: {e}", path.display()))?;
            }
            pool.close().await;
            sqlx::query(&format!(
                "ALTER DATABASE {} WITH IS_TEMPLATE true",
                quote_ident(&name)
            ))
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        }
        .await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&name)
            .execute(&mut *conn)
            .await;
        result?;
        made.insert(name.clone(), name.clone());
        Ok(name)
    }

    /// Drops the database, empties and removes the bucket, deletes the labelled nodes.
    pub async fn cleanup(&self, iso: &Isolation) {
        if let Some(pool) = &iso.pool {
            pool.close().await;
        }
        if let (Some(admin), Some(db)) = (&self.admin, &iso.database) {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(db)
            ))
            .execute(admin)
            .await;
        }
        if let (Some(client), Some(bucket)) = (&self.s3, &iso.bucket) {
            empty_bucket(client, bucket).await;
            let _ = client.delete_bucket().bucket(bucket).send().await;
        }
        if let (Some(graph), Some(label)) = (&self.graph, &iso.graph_label) {
            let _ = run_query(
                graph,
                neo4rs::query(&format!("MATCH (n:`{label}`) DETACH DELETE n")),
            )
            .await;
        }
    }
}

async fn empty_bucket(client: &Client, bucket: &str) {
    for _ in 0..100 {
        let Ok(page) = client.list_object_versions().bucket(bucket).send().await else {
            return;
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k?)
                    .set_version_id(v.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in ids {
            let _ = client
                .delete_object()
                .bucket(bucket)
                .key(id.key())
                .set_version_id(id.version_id().map(str::to_owned))
                .send()
                .await;
        }
    }
}
