//! The state one scenario carries while it runs: resolved vars, captures, its isolated
//! database/bucket/graph label, mock URLs, a seeded fake-data generator, and the redactor
//! that keeps every secret it has seen out of events.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use fake::{
    Fake,
    faker::{
        internet::en::{SafeEmail, Username},
        lorem::en::{Sentence, Word},
        name::en::{FirstName, LastName, Name},
    },
    rand::{RngExt, SeedableRng, rngs::StdRng},
};
use harness_scenario::{
    Scenario, Source,
    template::{self, Part, Ref, Template},
};
use serde_json::Value;

use super::{isolation::Isolation, processes::Builds, steps::StepError};
use crate::stack::Endpoints;

/// Replaces every known secret value with `[redacted]`. Shared by all scenarios of a run.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Adds a value to redact. Very short values are ignored: redacting "1" would garble
    /// every report, and such values are not credentials.
    pub fn add(&self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.len() < 4 {
            return;
        }
        if let Ok(mut list) = self.secrets.write()
            && !list.contains(&secret)
        {
            list.push(secret);
            // Longest first, so a secret containing another is replaced whole.
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let Ok(list) = self.secrets.read() else {
            return text.to_owned();
        };
        let mut out = text.to_owned();
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_value(v)),
            _ => {}
        }
    }
}

/// Everything a step can read or change.
pub struct Ctx {
    pub scenario: Arc<Scenario>,
    pub source: Source,
    /// The scenario file's folder: fixture, `file:` and `cwd` paths are relative to it.
    pub dir: PathBuf,
    /// The scenario file path as given on the command line (for snapshot names).
    pub path: PathBuf,
    pub endpoints: Endpoints,
    pub iso: Isolation,
    pub vars: BTreeMap<String, Value>,
    pub captures: BTreeMap<String, Value>,
    pub mocks: BTreeMap<String, String>,
    /// Ports of the scenario's processes, by name.
    pub processes: BTreeMap<String, u16>,
    /// Workspace binaries built for this run (`cargo:` in processes and `exec`).
    pub builds: Arc<Builds>,
    /// Where the run records the process groups its steps start (none in unit tests).
    pub groups: Option<crate::stack::records::Groups>,
    pub redactor: Redactor,
    pub http: reqwest::Client,
    /// The scenario's fault proxies, when it reaches a service through `${faults.…}`.
    pub faults: Option<Arc<super::faults::ScenarioFaults>>,
    /// The stack this run started, for process faults on its services.
    pub stack: Option<Arc<super::faults::StackHandle>>,
    /// The process groups of the scenario's host processes, by name.
    pub process_groups: BTreeMap<String, u32>,
    /// The scenario's processes, as started (and started again by `fault` steps).
    pub running: Vec<super::processes::Running>,
    /// The process faults in force, undone before the rollbacks.
    pub process_faults: Arc<super::faults::ProcessFaults>,
    /// The scenario's Cloud Run emulator, started by its first `deploy`, `traffic` or
    /// `rollback` step and stopped with its processes.
    pub cloud_run: Option<Arc<crate::emulators::cloud_run::CloudRun>>,
    /// The scenario's Supabase emulator, over its database, when it refers to `${supabase.…}`.
    pub supabase: Option<Arc<crate::emulators::supabase::Supabase>>,
    /// The fixture users of `supabase.users`, created and signed in when it started.
    pub supabase_users: BTreeMap<String, SupabaseSession>,
    /// The scenario's restore drill: its backups, writer, disaster and restore.
    pub drill: crate::drills::Drill,
    pub seed: u64,
    pub update_snapshots: bool,
    rng: StdRng,
}

/// A fixture user of the scenario's Supabase project, signed in.
#[derive(Clone, Debug)]
pub struct SupabaseSession {
    pub id: String,
    pub email: String,
    pub phone: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl Ctx {
    #[expect(clippy::too_many_arguments, reason = "built once, in the runner")]
    pub fn new(
        scenario: Arc<Scenario>,
        source: Source,
        path: PathBuf,
        endpoints: Endpoints,
        iso: Isolation,
        redactor: Redactor,
        http: reqwest::Client,
        seed: u64,
        update_snapshots: bool,
    ) -> Self {
        let dir = super::scenario_dir(&path);
        Ctx {
            scenario,
            source,
            dir,
            path,
            endpoints,
            iso,
            vars: BTreeMap::new(),
            captures: BTreeMap::new(),
            mocks: BTreeMap::new(),
            processes: BTreeMap::new(),
            builds: Arc::default(),
            groups: None,
            redactor,
            http,
            faults: None,
            stack: None,
            process_groups: BTreeMap::new(),
            running: Vec::new(),
            process_faults: Arc::default(),
            cloud_run: None,
            supabase: None,
            supabase_users: BTreeMap::new(),
            drill: crate::drills::Drill::default(),
            seed,
            update_snapshots,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Resolves every var (vars may refer to each other; validation ruled out cycles).
    pub fn resolve_vars(&mut self) -> Result<(), StepError> {
        let defs = self.scenario.vars.clone();
        let mut pending: Vec<&String> = defs.keys().collect();
        // Each pass resolves the vars whose references are all known; at most one pass per var.
        for _ in 0..=defs.len() {
            if pending.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for name in pending {
                let def = &defs[name];
                let waiting = collect_refs(&def.value).iter().any(|r| {
                    r.root == "vars" && r.path.first().is_some_and(|v| !self.vars.contains_key(v))
                });
                if waiting {
                    next.push(name);
                    continue;
                }
                let value = self.render_value(&def.value)?;
                if def.secret {
                    self.add_secret_value(&value);
                }
                self.vars.insert(name.clone(), value);
            }
            pending = next;
        }
        Ok(())
    }

    pub fn add_secret_value(&self, value: &Value) {
        match value {
            Value::String(s) => self.redactor.add(s.clone()),
            Value::Null => {}
            other => self.redactor.add(other.to_string()),
        }
    }

    /// Expands references in a string.
    pub fn render_str(&mut self, text: &str) -> Result<String, StepError> {
        let parts = template::parse(text)
            .map_err(|e| StepError::error(format!("bad template: {}", e.message)))?;
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Literal(l) => out.push_str(&l),
                Part::Ref(r) => match self.lookup(&r)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Fills in a template field of a step; an error points at the field.
    pub fn render(&mut self, t: &Template) -> Result<String, StepError> {
        let mut out = String::new();
        for part in &t.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Ref(r) => match self.lookup(r).map_err(|e| e.at(t.span))? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// Expands references in every string of a value. A string that is exactly one
    /// reference takes the referenced value's type.
    pub fn render_value(&mut self, value: &Value) -> Result<Value, StepError> {
        Ok(match value {
            Value::String(s) => {
                let parts = template::parse(s)
                    .map_err(|e| StepError::error(format!("bad template: {}", e.message)))?;
                match parts.as_slice() {
                    [Part::Ref(r)] => self.lookup(r)?,
                    _ => Value::String(self.render_str(s)?),
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v)?)))
                    .collect::<Result<_, StepError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Starts the scenario's Supabase emulator over its database; its keys are secrets of
    /// the run (the publishable and anon keys are meant for browsers, but a report has no
    /// use for them either).
    pub async fn start_supabase(&mut self) -> Result<(), StepError> {
        let pg = self.endpoints.postgres.clone().ok_or_else(|| {
            StepError::error("`${supabase.…}`: the Supabase emulator needs the stack's Postgres")
        })?;
        let database = self
            .iso
            .database
            .clone()
            .ok_or_else(|| StepError::error("`${supabase.…}`: the scenario has no database"))?;
        let s = crate::emulators::supabase::Supabase::start(crate::emulators::supabase::Config {
            postgres: pg,
            database,
            port: 0,
            auth: {
                let project = self.scenario.supabase.as_ref();
                crate::emulators::supabase::auth::Settings {
                    confirm_email: project.is_some_and(|p| p.confirm_email),
                    asymmetric_keys: project.is_some_and(|p| p.asymmetric_keys),
                    ..Default::default()
                }
            },
            // Storage's bytes go to the scenario's bucket, when the stack has an object store.
            storage: self.endpoints.s3.clone().zip(self.iso.bucket.clone()),
        })
        .await
        .map_err(|e| StepError::error(format!("start the Supabase emulator: {e}")))?;
        for secret in s.keys().secrets() {
            self.redactor.add(secret);
        }
        let s = Arc::new(s);
        self.supabase = Some(Arc::clone(&s));
        let users = self.scenario.supabase.as_ref().map(|p| p.users.clone());
        for (name, user) in users.unwrap_or_default() {
            let session = self.sign_up_fixture_user(&s, &name, &user).await?;
            self.supabase_users.insert(name, session);
        }
        Ok(())
    }

    /// Creates a fixture user through the Auth admin API (its email and phone confirmed)
    /// and signs it in with its password, as a test would by hand.
    async fn sign_up_fixture_user(
        &mut self,
        s: &crate::emulators::supabase::Supabase,
        name: &str,
        user: &harness_scenario::SupabaseUser,
    ) -> Result<SupabaseSession, StepError> {
        let fail = |what: &str, e: String| StepError::Error {
            message: format!("fixture user `{name}`: {what}: {e}"),
            span: Some(user.span),
        };
        let password = user
            .password
            .clone()
            .unwrap_or_else(|| crate::secret::random_id(24));
        self.redactor.add(password.clone());
        let k = s.keys();
        let mut body = serde_json::json!({
            "email": user.email,
            "password": password,
            "email_confirm": true,
            "user_metadata": user.user_metadata.clone().unwrap_or_else(|| serde_json::json!({})),
            "app_metadata": user.app_metadata.clone().unwrap_or_else(|| serde_json::json!({})),
        });
        if let Some(phone) = &user.phone {
            body["phone"] = Value::String(phone.clone());
            body["phone_confirm"] = Value::Bool(true);
        }
        let call = |path: &str, key: &str, body: &Value| {
            let req = self
                .http
                .post(format!("{}{path}", s.url()))
                .header("apikey", key)
                .json(body);
            let req = if key == k.secret.expose() {
                req.bearer_auth(key)
            } else {
                req
            };
            async move {
                let resp = req.send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(v)
                } else {
                    let msg = v["msg"].as_str().unwrap_or_default().to_owned();
                    Err(format!("{status} {msg}"))
                }
            }
        };
        call("/auth/v1/admin/users", k.secret.expose(), &body)
            .await
            .map_err(|e| fail("create it", e))?;
        let session = call(
            "/auth/v1/token?grant_type=password",
            k.publishable.expose(),
            &serde_json::json!({"email": user.email, "password": password}),
        )
        .await
        .map_err(|e| fail("sign it in", e))?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let out = SupabaseSession {
            id: text(&session["user"]["id"]),
            email: user.email.clone(),
            phone: user.phone.clone().unwrap_or_default(),
            password,
            access_token: text(&session["access_token"]),
            refresh_token: text(&session["refresh_token"]),
        };
        self.redactor.add(out.access_token.clone());
        self.redactor.add(out.refresh_token.clone());
        Ok(out)
    }

    /// The headers an `http` step's `as:` adds: `apikey` and `Authorization`.
    pub fn supabase_caller(&self, caller: &str) -> Result<[(String, String); 2], StepError> {
        let s = self.supabase.as_ref().ok_or_else(|| {
            StepError::error("`as:` needs the Supabase emulator, which is not running")
        })?;
        let k = s.keys();
        let (apikey, bearer) = match caller {
            "anon" => (k.publishable.expose(), k.anon.expose()),
            "service_role" => (k.secret.expose(), k.secret.expose()),
            user => {
                let u = self.supabase_users.get(user).ok_or_else(|| {
                    StepError::error(format!("`as: {user}`: no such fixture user"))
                })?;
                (k.publishable.expose(), u.access_token.as_str())
            }
        };
        Ok([
            ("apikey".to_owned(), apikey.to_owned()),
            ("authorization".to_owned(), format!("Bearer {bearer}")),
        ])
    }

    /// The scenario's Cloud Run emulator, started on first use.
    pub async fn cloud_run(
        &mut self,
    ) -> Result<Arc<crate::emulators::cloud_run::CloudRun>, StepError> {
        if let Some(c) = &self.cloud_run {
            return Ok(Arc::clone(c));
        }
        let c = super::steps::cloud_run::start(
            self.seed,
            &self.iso.id,
            Arc::clone(&self.builds),
            self.groups.clone(),
        )
        .await?;
        self.cloud_run = Some(Arc::clone(&c));
        Ok(c)
    }

    fn lookup(&mut self, r: &Ref) -> Result<Value, StepError> {
        let missing = |what: String| StepError::error(format!("`${{{}}}`: {what}", r.dotted()));
        let first = r.path.first().cloned().unwrap_or_default();
        let (base, rest): (Value, &[String]) = match r.root.as_str() {
            "vars" => (
                self.vars
                    .get(&first)
                    .cloned()
                    .ok_or_else(|| missing("var is not resolved".into()))?,
                &r.path[1..],
            ),
            "captures" => (
                self.captures
                    .get(&first)
                    .cloned()
                    .ok_or_else(|| missing("the step that captures it has not run".into()))?,
                &r.path[1..],
            ),
            "env" => (
                Value::String(
                    std::env::var(&first)
                        .map_err(|_| missing(format!("environment variable {first} is not set")))?,
                ),
                &[],
            ),
            "stack" => {
                let endpoints = serde_json::to_value(&self.endpoints).unwrap_or(Value::Null);
                let v = endpoints
                    .get(&first)
                    .cloned()
                    .ok_or_else(|| missing(format!("{first} is not running in this stack")))?;
                (v, &r.path[1..])
            }
            "faults" if first == "processes" || first == "mocks" => {
                let name = r.path.get(1).cloned().unwrap_or_default();
                let port = self
                    .faults
                    .as_ref()
                    .and_then(|f| f.named(&format!("{first}.{name}")))
                    .map(|p| p.listen_addr().port())
                    .ok_or_else(|| missing(format!("{name} has no fault proxy (yet)")))?;
                let v = match r.path.get(2).map(String::as_str) {
                    Some("port") => Value::from(port),
                    _ => Value::String(format!("http://127.0.0.1:{port}")),
                };
                (v, &[])
            }
            "faults" => {
                let v = self
                    .faults
                    .as_ref()
                    .and_then(|f| f.endpoints.get(&first).cloned())
                    .ok_or_else(|| {
                        missing(format!("{first} has no fault proxy in this scenario"))
                    })?;
                (v, &r.path[1..])
            }
            "cloud_run" => {
                let c = self
                    .cloud_run
                    .as_ref()
                    .ok_or_else(|| missing("no Cloud Run service is deployed yet".into()))?;
                let doc = c
                    .summary_of(&first)
                    .ok_or_else(|| missing(format!("{first} is not deployed (yet)")))?;
                let v = match r.path.get(1).map(String::as_str) {
                    Some("url") => doc["url"].clone(),
                    Some("revision") => doc["latest_ready"].clone(),
                    Some("tags") => {
                        let tag = r.path.get(2).cloned().unwrap_or_default();
                        doc["tags"]
                            .get(&tag)
                            .cloned()
                            .ok_or_else(|| missing(format!("{first} has no tag `{tag}`")))?
                    }
                    _ => doc,
                };
                (v, &[])
            }
            "supabase" if first == "users" => {
                let name = r.path.get(1).cloned().unwrap_or_default();
                let u = self
                    .supabase_users
                    .get(&name)
                    .ok_or_else(|| missing(format!("no fixture user `{name}`")))?;
                let v = match r.path.get(2).map(String::as_str).unwrap_or_default() {
                    "id" => u.id.clone(),
                    "email" => u.email.clone(),
                    "phone" => u.phone.clone(),
                    "password" => u.password.clone(),
                    "access_token" => u.access_token.clone(),
                    "refresh_token" => u.refresh_token.clone(),
                    other => {
                        return Err(missing(format!(
                            "`{other}` is not a field of a Supabase user"
                        )));
                    }
                };
                (Value::String(v), &[])
            }
            "supabase" => {
                let s = self
                    .supabase
                    .as_ref()
                    .ok_or_else(|| missing("the Supabase emulator is not running".into()))?;
                let k = s.keys();
                let v = match first.as_str() {
                    "url" => s.url(),
                    "anon_key" => k.anon.expose().to_owned(),
                    "publishable_key" => k.publishable.expose().to_owned(),
                    "service_role_key" => k.service_role.expose().to_owned(),
                    "secret_key" => k.secret.expose().to_owned(),
                    "jwt_secret" => k.jwt_secret().expose().to_owned(),
                    other => {
                        return Err(missing(format!(
                            "`{other}` is not a field of the Supabase emulator"
                        )));
                    }
                };
                (Value::String(v), &[])
            }
            "scenario" => (
                self.scenario_field(&first)
                    .ok_or_else(|| missing("not available".into()))?,
                &[],
            ),
            "mocks" => (
                Value::String(
                    self.mocks
                        .get(&first)
                        .cloned()
                        .ok_or_else(|| missing("mock is not running".into()))?,
                ),
                &[],
            ),
            "processes" => {
                let port = *self
                    .processes
                    .get(&first)
                    .ok_or_else(|| missing("process is not running".into()))?;
                let v = match r.path.get(1).map(String::as_str) {
                    Some("port") => Value::from(port),
                    _ => Value::String(format!("http://127.0.0.1:{port}")),
                };
                (v, &[])
            }
            "fake" => (self.fake(&first), &[]),
            other => return Err(missing(format!("unknown root `{other}`"))),
        };
        let mut v = &base;
        for seg in rest {
            v = match v {
                Value::Object(m) => m.get(seg),
                Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            }
            .ok_or_else(|| missing(format!("has no `{seg}`")))?;
        }
        Ok(v.clone())
    }

    fn scenario_field(&self, field: &str) -> Option<Value> {
        Some(match field {
            "id" => self.iso.id.clone().into(),
            "name" => self.scenario.name.clone().into(),
            "database" => self.iso.database.clone()?.into(),
            "database_url" => self.iso.database_url.clone()?.into(),
            "bucket" => self.iso.bucket.clone()?.into(),
            "graph_label" => self.iso.graph_label.clone()?.into(),
            "seed" => self.seed.into(),
            _ => return None,
        })
    }

    fn fake(&mut self, kind: &str) -> Value {
        let rng = &mut self.rng;
        let text: String = match kind {
            "name" => Name().fake_with_rng(rng),
            "first_name" => FirstName().fake_with_rng(rng),
            "last_name" => LastName().fake_with_rng(rng),
            "email" => SafeEmail().fake_with_rng(rng),
            "username" => Username().fake_with_rng(rng),
            "word" => Word().fake_with_rng(rng),
            "sentence" => Sentence(3..8).fake_with_rng(rng),
            "uuid" => {
                let b: [u8; 16] = rng.random();
                let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[13..16],
                    &h[17..20],
                    &h[20..32]
                )
            }
            "number" => return Value::from(rng.random_range(1..1_000_000u64)),
            _ => String::new(),
        };
        Value::String(text)
    }
}

fn collect_refs(value: &Value) -> Vec<Ref> {
    match value {
        Value::String(s) => template::refs(s).unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(collect_refs).collect(),
        Value::Object(map) => map.values().flat_map(collect_refs).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::Redactor;

    #[test]
    fn redacts_longest_secret_first_and_ignores_tiny_values() {
        let r = Redactor::default();
        r.add("abcd");
        r.add("abcdef-long");
        r.add("1");
        assert_eq!(
            r.redact("x abcdef-long y abcd 1"),
            "x [redacted] y [redacted] 1"
        );
    }
}
