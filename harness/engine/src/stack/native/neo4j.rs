//! Neo4j Community, run by the launcher in `infra/neo4j` under a JVM tuned for start-up.

use std::{path::Path, time::Duration};

use neo4rs::{ConfigBuilder, Graph};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{
    process::{ServiceProcess, wait_ready},
    service_dir,
};
use crate::{
    error::Error,
    runtimes::{Installed, NEO4J_MAIN_CLASS, java},
    secret::Secret,
    stack::readiness::{Probe, WaitFor},
};

/// How to reach the stack's Neo4j over Bolt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Neo4jEndpoint {
    pub bolt_url: String,
    pub user: String,
    pub password: Secret,
}

impl Neo4jEndpoint {
    /// An endpoint on 127.0.0.1:`port` with a fresh random password.
    pub(crate) fn local(port: u16) -> Self {
        Neo4jEndpoint {
            bolt_url: format!("bolt://127.0.0.1:{port}"),
            user: "neo4j".into(),
            password: Secret::random(24),
        }
    }

    /// A neo4rs client for this endpoint.
    pub fn graph(&self) -> Result<Graph, Error> {
        let config = ConfigBuilder::default()
            .uri(&self.bolt_url)
            .user(&self.user)
            .password(self.password.expose())
            .max_connections(4)
            .build()?;
        Ok(Graph::connect(config)?)
    }
}

/// Runs `RETURN 1` over Bolt with the run's credentials.
#[derive(Debug)]
pub struct Ping {
    endpoint: Neo4jEndpoint,
}

impl Ping {
    pub(crate) fn new(endpoint: Neo4jEndpoint) -> Self {
        Ping { endpoint }
    }

    pub async fn check(&self) -> Result<(), String> {
        let graph = self.endpoint.graph().map_err(|e| e.to_string())?;
        let mut rows = graph
            .execute(neo4rs::query("RETURN 1 AS one"))
            .await
            .map_err(|e| e.to_string())?;
        let row = rows
            .next()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("RETURN 1 gave no row")?;
        match row.get::<i64>("one") {
            Ok(1) => Ok(()),
            other => Err(format!("RETURN 1 gave {other:?}")),
        }
    }
}

pub async fn start(
    run_dir: &Path,
    runtime: &Installed,
    port: u16,
    timeout: Duration,
) -> Result<(ServiceProcess, Neo4jEndpoint), Error> {
    let dir = service_dir(run_dir, "neo4j")?;
    let java = java().ok_or_else(|| Error::RuntimeMissing {
        runtime: "neo4j".into(),
        detail: ": no Java runtime was found".into(),
        fix: "apt-get install -y openjdk-17-jre-headless".into(),
    })?;
    let endpoint = Neo4jEndpoint::local(port);
    let (ep, lib, run) = (
        endpoint.clone(),
        format!("{}/lib/*", runtime.dir.display()),
        dir.clone(),
    );
    let respawn = std::sync::Arc::new(move || {
        let mut cmd = tokio::process::Command::new(&java);
        cmd.arg(format!("-Dharness.run={}", run.display()))
            .args([
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Xms64m",
                "-Xmx512m",
                "-Xshare:auto",
            ])
            .arg("-cp")
            .arg(&lib)
            .arg(NEO4J_MAIN_CLASS)
            .env("HARNESS_NEO4J_HOME", run.join("data"))
            .env("HARNESS_NEO4J_BOLT_PORT", port.to_string())
            .env("HARNESS_NEO4J_USER", &ep.user)
            .env("HARNESS_NEO4J_PASSWORD", ep.password.expose());
        cmd
    });
    let mut process =
        ServiceProcess::spawn_with("neo4j", respawn, &dir.join("neo4j.log"), Signal::SIGTERM)?;
    let ping = Ping {
        endpoint: endpoint.clone(),
    };
    wait_ready(
        &mut process,
        &[
            WaitFor::LogLine("HARNESS_NEO4J_READY"),
            WaitFor::Ping(Box::new(ping)),
        ],
        timeout,
    )
    .await?;
    Ok((process, endpoint))
}

impl Probe for Ping {
    fn describe(&self) -> String {
        "neo4j protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
