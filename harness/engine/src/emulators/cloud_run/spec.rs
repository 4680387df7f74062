//! A revision template (`spec.template` of a service, `spec.template.spec.template` of a
//! job): checked field by field as the real API does (an unknown name is a 400), given the
//! defaults the real API fills in, and read into the [`RunSpec`] the data plane runs.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};

/// The port a container listens on unless its spec says otherwise.
pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_CONCURRENCY: usize = 80;
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_MAX_INSTANCES: usize = 100;

/// A startup or liveness probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub check: Check,
    pub initial_delay: Duration,
    pub timeout: Duration,
    pub period: Duration,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    Tcp,
    Http { path: String },
}

impl Probe {
    /// Cloud Run's default startup probe: a TCP connect to the port, for up to 240 s.
    pub fn default_startup() -> Self {
        Probe {
            check: Check::Tcp,
            initial_delay: Duration::ZERO,
            timeout: Duration::from_secs(240),
            period: Duration::from_secs(240),
            failure_threshold: 1,
        }
    }
}

/// An environment variable of the container: a value, or a secret the emulator was given.
#[derive(Clone, Debug, PartialEq)]
pub enum EnvValue {
    Plain(String),
    Secret { secret: String, version: String },
}

/// What the data plane needs to run one revision's instances (or one job's tasks).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub container_port: u16,
    pub concurrency: usize,
    pub timeout: Duration,
    pub startup: Probe,
    pub liveness: Option<Probe>,
    pub min_instances: usize,
    pub max_instances: usize,
}

const TEMPLATE_KEYS: &[&str] = &["metadata", "spec"];
const META_KEYS: &[&str] = &["name", "annotations", "labels", "namespace", "generateName"];
const SPEC_KEYS: &[&str] = &[
    "containerConcurrency",
    "timeoutSeconds",
    "serviceAccountName",
    "containers",
    "volumes",
    "enableServiceLinks",
    "runtimeClassName",
    "nodeSelector",
    "maxRetries",
];
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "resources",
    "workingDir",
    "ports",
    "volumeMounts",
    "livenessProbe",
    "startupProbe",
    "readinessProbe",
    "dependsOn",
    "imagePullPolicy",
];
const PROBE_KEYS: &[&str] = &[
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "failureThreshold",
    "successThreshold",
    "httpGet",
    "tcpSocket",
    "grpc",
];

/// A 400 for a field the API does not know, worded as Google's JSON decoder words it.
pub fn unknown_field(name: &str, at: &str) -> ApiError {
    ApiError::invalid_field(
        at,
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        ),
    )
}

/// Refuses keys of `obj` outside `known`.
pub fn known_keys(obj: &Map<String, Value>, known: &[&str], at: &str) -> ApiResult<()> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(unknown_field(k, at)),
        None => Ok(()),
    }
}

fn object_at<'a>(v: &'a mut Value, at: &str) -> ApiResult<&'a mut Map<String, Value>> {
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut().ok_or_else(|| {
        ApiError::invalid_field(at, format!("Invalid value at '{at}': expected an object."))
    })
}

/// Seconds from a JSON number or a numeric string (`"300"`, as gcloud sends some).
pub fn seconds(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim_end_matches('s').parse().ok(),
        _ => None,
    }
}

fn port_of(c: &Map<String, Value>) -> u16 {
    c.get("ports")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
        .and_then(|p| p.get("containerPort"))
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(DEFAULT_PORT)
}

/// Checks a service's revision template at `at` (`spec.template`) and fills in the
/// defaults the real API adds, so that what is read back is what runs.
pub fn normalize_template(t: &mut Value, at: &str, job: bool) -> ApiResult<()> {
    let template = object_at(t, at)?;
    known_keys(template, TEMPLATE_KEYS, at)?;
    let meta_at = format!("{at}.metadata");
    let meta = object_at(template.entry("metadata").or_insert(json!({})), &meta_at)?;
    known_keys(meta, META_KEYS, &meta_at)?;
    let spec_at = format!("{at}.spec");
    let spec = object_at(template.entry("spec").or_insert(json!({})), &spec_at)?;
    normalize_spec(spec, &spec_at, job)
}

/// Checks and fills the pod-like `spec` of a revision or a task.
pub fn normalize_spec(spec: &mut Map<String, Value>, at: &str, job: bool) -> ApiResult<()> {
    known_keys(spec, SPEC_KEYS, at)?;
    if !job {
        spec.entry("containerConcurrency")
            .or_insert(json!(DEFAULT_CONCURRENCY));
    }
    let timeout =
        seconds(spec.get("timeoutSeconds")).unwrap_or(if job { 600 } else { DEFAULT_TIMEOUT_SECS });
    spec.insert("timeoutSeconds".into(), json!(timeout));
    let containers_at = format!("{at}.containers");
    let containers = match spec.get_mut("containers") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => {
            return Err(ApiError::invalid_field(
                &containers_at,
                format!("{containers_at}: a revision needs one container with an image"),
            ));
        }
    };
    if containers.len() > 1 {
        return Err(ApiError::invalid_field(
            &containers_at,
            format!(
                "{containers_at}: the emulator runs one container per instance; sidecars are not supported"
            ),
        ));
    }
    let c_at = format!("{containers_at}[0]");
    let c = object_at(&mut containers[0], &c_at)?;
    known_keys(c, CONTAINER_KEYS, &c_at)?;
    if c.get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::invalid_field(
            &format!("{c_at}.image"),
            format!("{c_at}.image: Required field not set."),
        ));
    }
    if let Some(env) = c.get("env") {
        check_env(env, &format!("{c_at}.env"))?;
    }
    let port = port_of(c);
    if !job {
        c.insert(
            "ports".into(),
            json!([{"name": "http1", "containerPort": port}]),
        );
    }
    c.entry("resources")
        .or_insert(json!({"limits": {"cpu": "1000m", "memory": "512Mi"}}));
    for probe in ["startupProbe", "livenessProbe"] {
        if let Some(p) = c.get(probe) {
            let p_at = format!("{c_at}.{probe}");
            let Some(p) = p.as_object() else {
                return Err(ApiError::invalid_field(
                    &p_at,
                    format!("Invalid value at '{p_at}'."),
                ));
            };
            known_keys(p, PROBE_KEYS, &p_at)?;
            if p.contains_key("grpc") {
                return Err(ApiError::invalid_field(
                    &p_at,
                    format!("{p_at}.grpc: gRPC probes are not supported by the emulator"),
                ));
            }
        }
    }
    if !job && !c.contains_key("startupProbe") {
        c.insert(
            "startupProbe".into(),
            json!({"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1,
                   "tcpSocket": {"port": port}}),
        );
    }
    Ok(())
}

fn check_env(env: &Value, at: &str) -> ApiResult<()> {
    let Some(list) = env.as_array() else {
        return Err(ApiError::invalid_field(
            at,
            format!("Invalid value at '{at}'."),
        ));
    };
    let mut seen = BTreeMap::new();
    for (i, e) in list.iter().enumerate() {
        let e_at = format!("{at}[{i}]");
        let Some(obj) = e.as_object() else {
            return Err(ApiError::invalid_field(
                &e_at,
                format!("Invalid value at '{e_at}'."),
            ));
        };
        known_keys(obj, &["name", "value", "valueFrom"], &e_at)?;
        let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(ApiError::invalid_field(
                &format!("{e_at}.name"),
                format!("{e_at}.name: Required field not set."),
            ));
        }
        if ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"].contains(&name) {
            return Err(ApiError::invalid_field(
                &e_at,
                format!(
                    "{e_at}: The following reserved env names were provided: {name}. These values are automatically set by the system."
                ),
            ));
        }
        if seen.insert(name.to_owned(), i).is_some() {
            return Err(ApiError::invalid_field(
                &e_at,
                format!("{e_at}: duplicate environment variable name {name}"),
            ));
        }
    }
    Ok(())
}

fn probe(p: Option<&Value>, port: u16) -> Option<Probe> {
    let p = p?;
    let secs = |k: &str| seconds(p.get(k));
    let check = match p.get("httpGet") {
        Some(h) => Check::Http {
            path: h
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned(),
        },
        None => Check::Tcp,
    };
    let _ = port;
    Some(Probe {
        check,
        initial_delay: Duration::from_secs(secs("initialDelaySeconds").unwrap_or(0)),
        timeout: Duration::from_secs(secs("timeoutSeconds").unwrap_or(1).max(1)),
        period: Duration::from_secs(secs("periodSeconds").unwrap_or(10).max(1)),
        failure_threshold: u32::try_from(secs("failureThreshold").unwrap_or(3).max(1)).unwrap_or(3),
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The run spec of a normalized template (`metadata` + `spec`), with the scaling read from
/// the annotations of `scaling_meta` (the template's metadata for a revision).
pub fn run_spec(template: &Value, scaling_meta: &Value) -> RunSpec {
    let spec = &template["spec"];
    let c = &spec["containers"][0];
    let port = c.as_object().map(port_of).unwrap_or(DEFAULT_PORT);
    let annotation = |k: &str| {
        scaling_meta["annotations"][k]
            .as_str()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let env = c["env"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    let name = e["name"].as_str().unwrap_or_default().to_owned();
                    let value = match e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
                        Some(r) => EnvValue::Secret {
                            secret: r["name"].as_str().unwrap_or_default().to_owned(),
                            version: r["key"].as_str().unwrap_or("latest").to_owned(),
                        },
                        None => EnvValue::Plain(e["value"].as_str().unwrap_or_default().to_owned()),
                    };
                    (name, value)
                })
                .collect()
        })
        .unwrap_or_default();
    let concurrency = match spec["containerConcurrency"].as_u64() {
        Some(0) | None => DEFAULT_CONCURRENCY,
        Some(n) => usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY),
    };
    RunSpec {
        image: c["image"].as_str().unwrap_or_default().to_owned(),
        command: strings(c.get("command")),
        args: strings(c.get("args")),
        env,
        container_port: port,
        concurrency,
        timeout: Duration::from_secs(
            seconds(spec.get("timeoutSeconds")).unwrap_or(DEFAULT_TIMEOUT_SECS),
        ),
        startup: probe(c.get("startupProbe"), port).unwrap_or_else(Probe::default_startup),
        liveness: probe(c.get("livenessProbe"), port),
        min_instances: annotation("autoscaling.knative.dev/minScale").unwrap_or(0),
        max_instances: annotation("autoscaling.knative.dev/maxScale")
            .filter(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_INSTANCES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_filled_and_read_back() {
        let mut t = json!({"metadata": {"annotations": {"autoscaling.knative.dev/maxScale": "3"}},
                           "spec": {"containers": [{"image": "example/hello:v1",
                                    "env": [{"name": "A", "value": "1"},
                                            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "db", "key": "2"}}}]}]}});
        normalize_template(&mut t, "spec.template", false).expect("ok");
        assert_eq!(t["spec"]["containerConcurrency"], 80);
        assert_eq!(
            t["spec"]["containers"][0]["ports"][0]["containerPort"],
            8080
        );
        let again = t.clone();
        normalize_template(&mut t, "spec.template", false).expect("ok");
        assert_eq!(t, again, "normalizing twice changes nothing");
        let s = run_spec(&t, &t["metadata"]);
        assert_eq!(s.max_instances, 3);
        assert_eq!(s.min_instances, 0);
        assert_eq!(s.startup, Probe::default_startup());
        assert_eq!(
            s.env[1].1,
            EnvValue::Secret {
                secret: "db".into(),
                version: "2".into()
            }
        );
    }

    #[test]
    fn an_unknown_field_is_a_400_naming_it() {
        let mut t = json!({"spec": {"containers": [{"image": "x", "imagee": "y"}]}});
        let e = normalize_template(&mut t, "spec.template", false).expect_err("an error");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Invalid JSON payload received. Unknown name \"imagee\" at 'spec.template.spec.containers[0]': Cannot find field."
        );
        let mut t = json!({"spec": {"containers": [{"env": []}]}});
        let e = normalize_template(&mut t, "spec.template", false).expect_err("an error");
        assert!(e.message.contains("image: Required field not set"), "{e}");
        let mut t = json!({"spec": {"containers": [{"image": "x", "env": [{"name": "PORT", "value": "1"}]}]}});
        let e = normalize_template(&mut t, "spec.template", false).expect_err("an error");
        assert!(e.message.contains("reserved env names"), "{e}");
    }
}
