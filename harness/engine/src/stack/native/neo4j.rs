//! Neo4j Community, run by the launcher in `infra/neo4j` under a JVM tuned for start-up.

use neo4rs::{ConfigBuilder, Graph};
use serde::{Deserialize, Serialize};

use crate::{error::Error, secret::Secret, stack::readiness::Probe};

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

impl Probe for Ping {
    fn describe(&self) -> String {
        "neo4j protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
