//! What every resource of the emulator shares: Kubernetes-style object metadata, times,
//! generated names and label selectors.

use rand::{Rng, rngs::StdRng};
use serde_json::{Map, Value, json};

/// Now, as the API writes times: RFC 3339 in UTC with microseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A random lowercase suffix of `len` letters and digits, as Cloud Run gives executions
/// (`ingest-x7k2p`); revisions get three letters (`api-00002-kop`).
pub fn suffix(rng: &mut StdRng, len: usize, digits: bool) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const BOTH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let set = if digits { BOTH } else { LETTERS };
    (0..len)
        .map(|_| set[rng.random_range(0..set.len())] as char)
        .collect()
}

/// A UUID-shaped uid.
pub fn uid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The metadata the emulator keeps for each object: what the client set (labels,
/// annotations) and what the server assigns.
#[derive(Clone, Debug)]
pub struct Meta {
    pub name: String,
    pub uid: String,
    pub created: String,
    pub generation: i64,
    pub resource_version: u64,
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
}

impl Meta {
    pub fn new(name: &str, rng: &mut StdRng) -> Self {
        Meta {
            name: name.to_owned(),
            uid: uid(rng),
            created: now(),
            generation: 1,
            resource_version: 1,
            labels: Map::new(),
            annotations: Map::new(),
        }
    }

    /// The JSON `metadata` of the object in `namespace`, at `self_link`.
    pub fn json(&self, namespace: &str, self_link: &str) -> Value {
        json!({
            "name": self.name,
            "namespace": namespace,
            "selfLink": self_link,
            "uid": self.uid,
            "resourceVersion": format!("{:x}", self.resource_version * 7919 + 0x1000),
            "generation": self.generation,
            "creationTimestamp": self.created,
            "labels": self.labels,
            "annotations": self.annotations,
        })
    }
}

/// A Kubernetes label selector of equalities (`a=b,c==d`), as gcloud sends in
/// `labelSelector`. `None` for a selector it cannot read.
pub fn selector(text: &str) -> Option<Vec<(String, String)>> {
    let mut all = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once("==").or_else(|| part.split_once('='))?;
        all.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Some(all)
}

pub fn matches(labels: &Map<String, Value>, sel: &[(String, String)]) -> bool {
    sel.iter()
        .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// The string map at `key` of a JSON object (labels, annotations), non-strings dropped.
pub fn string_map(v: &Value, key: &str) -> Map<String, Value> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A `List` of `kind` items, as Knative answers a list call.
pub fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "1"},
        "items": items,
    })
}

/// The `Status` a delete answers with, as Kubernetes-style APIs do.
pub fn deleted(name: &str, group: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": kind},
    })
}

/// A condition as the API writes it.
pub fn condition(kind: &str, state: Option<bool>, reason: &str, message: &str) -> Value {
    let mut c = json!({
        "type": kind,
        "status": match state { Some(true) => "True", Some(false) => "False", None => "Unknown" },
        "lastTransitionTime": now(),
    });
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    if state == Some(false) {
        c["severity"] = json!("Error");
    }
    c
}

/// v1 views sorted newest first, as the API lists them.
pub fn newest_first(list: &mut [Value]) {
    list.sort_by(|a, b| {
        b["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&a["metadata"]["creationTimestamp"].as_str())
    });
}
