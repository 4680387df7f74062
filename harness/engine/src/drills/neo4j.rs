//! Neo4j, offline method: Neo4j Community copies a store only while its DBMS is stopped, so
//! the backup stops the stack's DBMS, copies its store and starts it again; the restore
//! copies the backup into a fresh folder and starts a fresh DBMS (harness's launcher, as the
//! native provider runs Neo4j) on it while Neo4j's consistency checker reads a second copy;
//! a store the checker refuses fails the restore.
//!
//! What a restore must reproduce is the scenario's graph: the nodes of its label and the
//! relationships between them, counted by label and by type, with a checksum of their
//! labels, types and properties.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Provider, physical::Host};
use crate::{
    run::stores::run_query,
    stack::{native::neo4j::Neo4jEndpoint, records::Groups},
};

/// The scenario's graph, as a restore must reproduce it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphState {
    pub nodes: i64,
    pub relationships: i64,
    /// Nodes by label (the scenario's own label aside).
    pub labels: BTreeMap<String, i64>,
    /// Relationships by type.
    pub types: BTreeMap<String, i64>,
    pub checksum: String,
}

impl GraphState {
    pub fn json(&self) -> Value {
        json!({
            "nodes": self.nodes,
            "relationships": self.relationships,
            "labels": self.labels,
            "types": self.types,
            "checksum": self.checksum,
        })
    }

    /// What differs in `got` from this state, one line per difference.
    pub fn differences(&self, got: &GraphState) -> Vec<String> {
        let mut out = Vec::new();
        let counts = |what: &str, want: &BTreeMap<String, i64>, have: &BTreeMap<String, i64>| {
            let mut lines = Vec::new();
            for (k, n) in want {
                let h = have.get(k).copied().unwrap_or(0);
                if h != *n {
                    lines.push(format!("{what} {k}: {h} instead of {n}"));
                }
            }
            for (k, h) in have {
                if !want.contains_key(k) {
                    lines.push(format!("{what} {k}: {h}, none when backed up"));
                }
            }
            lines
        };
        if got.nodes != self.nodes {
            out.push(format!(
                "{} nodes where the backup had {}",
                got.nodes, self.nodes
            ));
        }
        if got.relationships != self.relationships {
            out.push(format!(
                "{} relationships where the backup had {}",
                got.relationships, self.relationships
            ));
        }
        out.extend(counts("nodes labelled", &self.labels, &got.labels));
        out.extend(counts("relationships of type", &self.types, &got.types));
        if out.is_empty() && got.checksum != self.checksum {
            out.push(format!(
                "the graph has its nodes and relationships but not their properties (checksum {} instead of {})",
                got.checksum, self.checksum
            ));
        }
        out
    }
}

/// The first 60 bits of a SHA-256, summed over items in any order.
fn digest(text: &str) -> u64 {
    let hash = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first) >> 4
}

/// A JSON value with its maps' keys sorted, as text.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String((*k).clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// The scenario's graph (the nodes labelled `label`) as it is now.
pub async fn capture(graph: &neo4rs::Graph, label: &str) -> Result<GraphState, String> {
    let l = label.replace('`', "");
    let nodes = run_query(
        graph,
        neo4rs::query(&format!(
            "MATCH (n:`{l}`) WHERE NOT n:{writer} \
             RETURN [x IN labels(n) WHERE x <> '{l}'] AS labels, properties(n) AS props",
            writer = super::writer::NODE_LABEL
        )),
    )
    .await
    .map_err(|e| format!("read the graph: {e}"))?;
    let rels = run_query(
        graph,
        neo4rs::query(&format!(
            "MATCH (a:`{l}`)-[r]->(b:`{l}`) RETURN type(r) AS type, properties(r) AS props, \
             properties(a) AS from, properties(b) AS to"
        )),
    )
    .await
    .map_err(|e| format!("read the graph's relationships: {e}"))?;
    let mut state = GraphState::default();
    let mut sum: u64 = 0;
    for row in nodes.as_array().into_iter().flatten() {
        state.nodes += 1;
        let mut labels: Vec<String> = row["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        labels.sort();
        for x in &labels {
            *state.labels.entry(x.clone()).or_default() += 1;
        }
        sum = sum.wrapping_add(digest(&format!(
            "node {labels:?} {}",
            canonical(&row["props"])
        )));
    }
    for row in rels.as_array().into_iter().flatten() {
        state.relationships += 1;
        let t = row["type"].as_str().unwrap_or_default().to_owned();
        *state.types.entry(t.clone()).or_default() += 1;
        sum = sum.wrapping_add(digest(&format!(
            "rel {t} {} {} {}",
            canonical(&row["props"]),
            canonical(&row["from"]),
            canonical(&row["to"])
        )));
    }
    state.checksum = format!("{sum:016x}");
    Ok(state)
}

/// One backup: the copy of the stopped DBMS's store and what the scenario's graph was.
#[derive(Clone, Debug)]
pub struct Backup {
    pub id: String,
    pub path: PathBuf,
    pub graph: GraphState,
    pub bytes: u64,
    pub took: Duration,
    /// How long the stack's DBMS was down for the copy.
    pub downtime: Duration,
}

/// Copies the DBMS's folder `home` (stopped) into `path`.
pub async fn copy_store(home: &Path, path: &Path) -> Result<u64, String> {
    let (from, to) = (home.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || crate::fsutil::copy_tree(&from, &to, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("copy the store: {e}"))?;
    Ok(super::physical::tree_size(path))
}

/// Deletes the scenario's nodes (all of them, or those that also carry `only`).
pub async fn damage(
    graph: &neo4rs::Graph,
    label: &str,
    only: Option<&str>,
) -> Result<(String, i64), String> {
    let l = label.replace('`', "");
    let (pattern, what) = match only {
        Some(x) => (
            format!("(n:`{l}`:`{}`)", x.replace('`', "")),
            format!("delete the nodes labelled {x}"),
        ),
        None => (format!("(n:`{l}`)"), "wipe the graph".to_owned()),
    };
    let rows = run_query(
        graph,
        neo4rs::query(&format!(
            "MATCH {pattern} WITH collect(n) AS ns \
             FOREACH (n IN ns | DETACH DELETE n) RETURN size(ns) AS deleted"
        )),
    )
    .await
    .map_err(|e| format!("{what}: {e}"))?;
    Ok((what, rows[0]["deleted"].as_i64().unwrap_or(0)))
}

/// The Java that runs Neo4j, and the classpath of its runtime.
fn java_and_classpath() -> Result<(PathBuf, String), String> {
    let runtime = match crate::runtimes::status(crate::runtimes::RuntimeKind::Neo4j, false) {
        crate::runtimes::RuntimeStatus::Installed(i) => i,
        _ => {
            return Err(
                "a graph restore starts a Neo4j of its own, and its runtime is not installed: run `harness runtimes install neo4j`"
                    .into(),
            );
        }
    };
    let java = crate::runtimes::java()
        .ok_or("a graph restore runs Java, and none was found (apt-get install -y openjdk-17-jre-headless)")?;
    Ok((java, format!("{}/lib/*", runtime.dir.display())))
}

/// Runs Neo4j's consistency checker (`neo4j-admin database check`) on the stopped store
/// in `home`; `Err` with the checker's findings when the store is inconsistent.
pub async fn check(home: &Path) -> Result<Duration, String> {
    let (java, classpath) = java_and_classpath()?;
    let t = Instant::now();
    // harness's launcher keeps the databases in `home/data`; upstream's image in `/data`
    // itself, which the checker is told.
    if !home.join("data").join("databases").is_dir() && home.join("databases").is_dir() {
        let conf = home.join("conf");
        std::fs::create_dir_all(&conf).map_err(|e| format!("create {}: {e}", conf.display()))?;
        std::fs::write(
            conf.join("neo4j.conf"),
            format!("server.directories.data={}\n", home.display()),
        )
        .map_err(|e| format!("write the checker's configuration: {e}"))?;
    }
    let mut cmd = tokio::process::Command::new(java);
    cmd.args([
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xmx256m",
        "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "-cp",
        &classpath,
        "org.neo4j.cli.AdminTool",
        "database",
        "check",
        "neo4j",
    ])
    .env("NEO4J_HOME", home)
    .env("NEO4J_CONF", home.join("conf"))
    .current_dir(home)
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    crate::run::processes::parent_death_signal(&mut cmd);
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("the consistency checker could not start: {e}"))?;
    if out.status.success() {
        return Ok(t.elapsed());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("....") && !l.contains(" WARN "))
        .rev()
        .take(8)
        .collect();
    Err(format!(
        "the restored store is not consistent ({}): {}",
        out.status,
        findings.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// A fresh DBMS on a restored store, stopped when the drill ends.
pub struct Instance {
    pub host: Host,
    _group: Option<crate::stack::native::process::GroupGuard>,
    pub endpoint: Neo4jEndpoint,
}

/// Copies `backup` into `dir/data` and starts a fresh DBMS on it while Neo4j's consistency
/// checker ([`check`]) reads a second copy in `dir/check`: the DBMS serves nobody before
/// the restore returns, and a store the checker refuses stops it and fails the restore. The
/// phases: provision (the folder and port), restore (the copies), replay (the check and the
/// start side by side; Neo4j recovers its transaction log there).
pub async fn restore(
    backup: &Backup,
    dir: &Path,
    check_store: bool,
    on: &Provider,
    groups: Option<Groups>,
) -> Result<(Instance, Vec<(&'static str, Duration)>, Option<Duration>), String> {
    let t = Instant::now();
    crate::stack::native::service_dir(
        dir.parent().unwrap_or(dir),
        &dir.file_name().unwrap_or_default().to_string_lossy(),
    )
    .map_err(|e| e.to_string())?;
    let port = crate::stack::ports::free_port().map_err(|e| e.to_string())?;
    let provision = t.elapsed();
    let t = Instant::now();
    let home = dir.join("data");
    let checked_copy = dir.join("check");
    copy_store(&backup.path, &home).await?;
    if check_store {
        copy_store(&backup.path, &checked_copy).await?;
    }
    let restored = t.elapsed();
    let t = Instant::now();
    let checking = async {
        if !check_store {
            return Ok(None);
        }
        let result = check(&checked_copy).await;
        let _ = tokio::fs::remove_dir_all(&checked_copy).await;
        result.map(Some)
    };
    let mut checking = std::pin::pin!(checking);
    let mut starting = std::pin::pin!(start(dir, port, on));
    let mut started = None;
    let checked = loop {
        tokio::select! {
            c = &mut checking => break c,
            s = &mut starting, if started.is_none() => started = Some(s),
        }
    };
    // The checker's findings come first: they say why a store does not start, too. A start
    // still under way is dropped with its DBMS; one that is done is stopped.
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            if let Some(Ok((mut host, _))) = started {
                host.stop_now().await;
            }
            return Err(e);
        }
    };
    let started = match started {
        Some(s) => s,
        None => starting.await,
    };
    let (host, endpoints) =
        started.map_err(|e| format!("the fresh DBMS did not start on the restored store: {e}"))?;
    let endpoint = endpoints.neo4j.ok_or("the fresh DBMS has no endpoint")?;
    let group = match &host {
        Host::Process(p) => Some(
            crate::stack::native::process::GroupGuard::new(Some(p.pid))
                .recorded(groups, "neo4j-restored"),
        ),
        Host::Container(_) => None,
    };
    Ok((
        Instance {
            host,
            _group: group,
            endpoint,
        },
        vec![
            ("provision", provision),
            ("restore", restored),
            ("replay", t.elapsed()),
        ],
        checked,
    ))
}

/// A DBMS on the store in `dir/data`, from `on`.
async fn start(
    dir: &Path,
    port: u16,
    on: &Provider,
) -> Result<(Host, crate::stack::Endpoints), crate::error::Error> {
    let timeout = Duration::from_secs(300);
    match on {
        Provider::Native => crate::stack::native::start_service_from(
            crate::stack::ServiceKind::Neo4j,
            dir,
            port,
            timeout,
        )
        .await
        .map(|(p, e)| (Host::Process(Box::new(p)), e)),
        Provider::Docker {
            image,
            run_id,
            password,
        } => crate::stack::docker::start_neo4j_from(
            image,
            run_id,
            dir,
            port,
            password.clone(),
            timeout,
        )
        .await
        .map(|(c, e)| (Host::Container(Box::new(c)), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_ignores_order_and_sees_every_property() {
        let a = canonical(&json!({"b": 1, "a": [1, {"y": 2, "x": 1}]}));
        let b = canonical(&json!({"a": [1, {"x": 1, "y": 2}], "b": 1}));
        assert_eq!(a, b);
        assert_ne!(
            digest(&a),
            digest(&canonical(&json!({"a": [1, {"x": 1, "y": 3}], "b": 1})))
        );
        let want = GraphState {
            nodes: 2,
            relationships: 1,
            labels: BTreeMap::from([("Deck".into(), 2)]),
            types: BTreeMap::from([("NEXT".into(), 1)]),
            checksum: "a".into(),
        };
        let mut got = want.clone();
        assert!(want.differences(&got).is_empty());
        got.checksum = "b".into();
        assert!(want.differences(&got)[0].contains("not their properties"));
        got.nodes = 1;
        got.labels.insert("Deck".into(), 1);
        let d = want.differences(&got);
        assert!(
            d.iter().any(|l| l == "1 nodes where the backup had 2"),
            "{d:?}"
        );
        assert!(
            d.iter().any(|l| l == "nodes labelled Deck: 1 instead of 2"),
            "{d:?}"
        );
    }
}
