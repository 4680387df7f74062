//! What each service must answer to be ready again after a restart, whichever provider
//! runs it. (The start-up conditions still live with each provider's start of the
//! service; they differ: the native Postgres sets its password over the private socket
//! first, and the Docker Neo4j waits for either image's ready line.)

use super::{
    Endpoints, ServiceKind,
    native::{neo4j, object_store, otel, postgres},
    readiness::WaitFor,
};

/// The conditions a restarted service must meet again, on either provider (its
/// credentials are already set, so Postgres is checked over TCP only).
pub fn restart_conditions(kind: ServiceKind, endpoints: &Endpoints) -> Vec<WaitFor> {
    match kind {
        ServiceKind::Postgres => endpoints
            .postgres
            .iter()
            .map(|ep| WaitFor::Ping(Box::new(postgres::Ping::tcp(ep.clone()))))
            .collect(),
        ServiceKind::S3 => endpoints
            .s3
            .iter()
            .map(|ep| WaitFor::Ping(Box::new(object_store::Ping::new(ep.clone()))))
            .collect(),
        ServiceKind::Neo4j => endpoints
            .neo4j
            .iter()
            .map(|ep| WaitFor::Ping(Box::new(neo4j::Ping::new(ep.clone()))))
            .collect(),
        ServiceKind::Otel => endpoints
            .otel
            .iter()
            .flat_map(|ep| {
                [
                    WaitFor::Http(ep.health_url.clone()),
                    WaitFor::Ping(Box::new(otel::Ping::new(ep.clone()))),
                ]
            })
            .collect(),
    }
}
