//! One description per service: its endpoint (with fresh credentials), ports, program
//! arguments and environment, the folders it writes into, when it counts as ready, and what
//! it must answer again after a restart. The native provider launches a description as a
//! child process, the Docker provider as a container; neither knows a service's flags.
//!
//! Where the two launches differ, the difference is written here, next to what they share:
//! a native Postgres gets its password over its private socket while the image takes it
//! from the environment, and the native Neo4j is harness's embedded launcher while an
//! image runs Neo4j's own start script.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::{
    Endpoints, ServiceKind,
    native::{
        neo4j::{self, Neo4jEndpoint},
        object_store::{self, S3Endpoint},
        otel::{self, OtelEndpoint},
        postgres::{self, PostgresEndpoint},
    },
    ports::free_port,
    readiness::WaitFor,
};
use crate::{
    error::{Error, IoContext},
    runtimes::{
        Installed, NEO4J_JVM_FLAGS, NEO4J_MAIN_CLASS, OTEL_BINARY, S3_BINARY, java,
        postgres_bin_dir,
    },
    secret::Secret,
};

/// How a description will be launched.
pub enum Launch<'a> {
    /// A child process of harness, from the installed runtime.
    Native(&'a Installed),
    /// A container from this image, on the host network.
    Container { image: &'a str },
}

/// How one service runs.
pub struct Description {
    pub kind: ServiceKind,
    /// What the stack hands out for it: one field of [`Endpoints`] is set.
    pub endpoints: Endpoints,
    /// Every port it listens on, all on 127.0.0.1 (the first is the one asked for).
    pub ports: Vec<u16>,
    /// The program (natively); a container runs its image's entrypoint with `args`.
    pub program: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Folders it writes into; a container gets them bound at the same path and runs as
    /// this user, so they stay private.
    pub binds: Vec<PathBuf>,
    /// When a fresh start counts as ready, in order.
    pub ready: Vec<WaitFor>,
    /// The signal that stops it cleanly (natively).
    pub stop_signal: Signal,
}

/// The line harness's Neo4j launcher (native, and the local image) prints once Bolt is up.
const NEO4J_READY_LOCAL: &str = "HARNESS_NEO4J_READY";
/// The line Neo4j's own start script (the upstream image) prints.
const NEO4J_READY_UPSTREAM: &str = "Started.";

/// Postgres settings both launches pass with `-c`.
fn postgres_settings(port: u16) -> Vec<String> {
    vec![
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={port}"),
        "fsync=off".into(),
        "synchronous_commit=off".into(),
        "full_page_writes=off".into(),
        "shared_buffers=32MB".into(),
        "max_connections=200".into(),
        // pgBackRest's drills archive WAL with the server's `archive_command`, which a
        // reload changes but `archive_mode` takes a restart: it is on from the start, with
        // a no-op command in the data directory's configuration file until a drill sets
        // pgBackRest's (`ALTER SYSTEM`).
        "archive_mode=on".into(),
    ]
}

/// Describes `kind` listening on `port`, with its files in `dir` (the service's folder).
pub fn describe(
    kind: ServiceKind,
    launch: &Launch<'_>,
    dir: &Path,
    port: u16,
) -> Result<Description, Error> {
    let mut endpoints = Endpoints::default();
    let mut d = Description {
        kind,
        endpoints: Endpoints::default(),
        ports: vec![port],
        program: None,
        args: Vec::new(),
        env: Vec::new(),
        binds: Vec::new(),
        ready: Vec::new(),
        stop_signal: Signal::SIGTERM,
    };
    match kind {
        ServiceKind::Postgres => {
            let ep = PostgresEndpoint::local(port, Secret::random(24));
            endpoints.postgres = Some(ep.clone());
            let mut settings = postgres_settings(port);
            match launch {
                Launch::Native(_) => {
                    d.program = Some(postgres_bin_dir().join("postgres"));
                    d.args = vec!["-D".into(), dir.join("data").display().to_string()];
                    settings.extend([
                        format!("unix_socket_directories={}", dir.display()),
                        // Only the service user reaches the socket (and its folder is 0700
                        // too): local connections are trusted, so the socket must not be
                        // anyone else's way in.
                        "unix_socket_permissions=0700".into(),
                    ]);
                    // The password is set over that socket by the first ping.
                    d.ready = vec![WaitFor::Ping(Box::new(postgres::Ping::over_socket(
                        dir.to_owned(),
                        ep.clone(),
                    )))];
                    // A fast shutdown: SIGTERM would wait for clients to leave.
                    d.stop_signal = Signal::SIGINT;
                }
                Launch::Container { .. } => {
                    d.args = vec!["postgres".into()];
                    d.env = vec![
                        ("POSTGRES_USER".into(), ep.user.clone()),
                        ("POSTGRES_PASSWORD".into(), ep.password.expose().to_owned()),
                    ];
                    d.ready = restart_conditions(kind, &endpoints);
                }
            }
            for s in settings {
                d.args.extend(["-c".to_owned(), s]);
            }
        }
        ServiceKind::S3 => {
            let ep = S3Endpoint::local(port);
            endpoints.s3 = Some(ep.clone());
            let (root, versions) = (dir.join("buckets"), dir.join("versions"));
            for folder in [dir, &root, &versions] {
                std::fs::create_dir_all(folder).ctx(|| format!("create {}", folder.display()))?;
            }
            let address = format!("127.0.0.1:{port}");
            let secret = ep.secret_access_key.expose().to_owned();
            let minio = matches!(launch, Launch::Container { image } if image.to_lowercase().contains("minio"));
            if minio {
                // MinIO stays selectable by image name for teams that still pin it; harness
                // never builds or ships it.
                let console = free_port()?;
                d.ports.push(console);
                d.args = vec![
                    "server".into(),
                    root.display().to_string(),
                    "--address".into(),
                    address,
                    "--console-address".into(),
                    format!("127.0.0.1:{console}"),
                ];
                d.env = vec![
                    ("MINIO_ROOT_USER".into(), ep.access_key_id.clone()),
                    ("MINIO_ROOT_PASSWORD".into(), secret),
                ];
            } else {
                d.args = vec![
                    "--port".into(),
                    address,
                    "--quiet".into(),
                    "posix".into(),
                    "--versioning-dir".into(),
                    versions.display().to_string(),
                    root.display().to_string(),
                ];
                d.env = vec![
                    ("ROOT_ACCESS_KEY_ID".into(), ep.access_key_id.clone()),
                    ("ROOT_SECRET_ACCESS_KEY".into(), secret),
                ];
            }
            if let Launch::Native(rt) = launch {
                d.program = Some(rt.path(S3_BINARY));
            }
            d.binds = vec![dir.to_owned()];
            d.ready = vec![WaitFor::Tcp(port)];
            d.ready.extend(restart_conditions(kind, &endpoints));
        }
        ServiceKind::Neo4j => {
            let ep = Neo4jEndpoint::local(port);
            endpoints.neo4j = Some(ep.clone());
            match launch {
                Launch::Native(rt) => {
                    let java = java().ok_or_else(|| Error::RuntimeMissing {
                        runtime: "neo4j".into(),
                        detail: ": no Java runtime was found".into(),
                        fix: "apt-get install -y openjdk-17-jre-headless".into(),
                    })?;
                    d.program = Some(java);
                    d.args = vec![format!("-Dharness.run={}", dir.display())];
                    d.args
                        .extend(NEO4J_JVM_FLAGS.iter().map(|f| (*f).to_owned()));
                    // The archive of the classes a start loads, when `runtimes install` made
                    // one for this JDK; `auto` falls back to loading them if it does not fit.
                    d.args.push("-Xshare:auto".into());
                    if let Some(archive) =
                        crate::runtimes::neo4j_cds_archive(&rt.dir).filter(|a| a.is_file())
                    {
                        d.args
                            .push(format!("-XX:SharedArchiveFile={}", archive.display()));
                    }
                    d.args.extend([
                        "-cp".into(),
                        format!("{}/lib/*", rt.dir.display()),
                        NEO4J_MAIN_CLASS.into(),
                    ]);
                    d.env = vec![
                        (
                            "HARNESS_NEO4J_HOME".into(),
                            dir.join("data").display().to_string(),
                        ),
                        ("HARNESS_NEO4J_BOLT_PORT".into(), port.to_string()),
                        ("HARNESS_NEO4J_USER".into(), ep.user.clone()),
                        (
                            "HARNESS_NEO4J_PASSWORD".into(),
                            ep.password.expose().to_owned(),
                        ),
                    ];
                    d.ready = vec![WaitFor::LogLine(NEO4J_READY_LOCAL)];
                }
                Launch::Container { .. } => {
                    d.args = vec!["neo4j".into()];
                    let env = [
                        (
                            "NEO4J_AUTH",
                            format!("{}/{}", ep.user, ep.password.expose()),
                        ),
                        ("NEO4J_server_default__listen__address", "127.0.0.1".into()),
                        (
                            "NEO4J_server_bolt_listen__address",
                            format!("127.0.0.1:{port}"),
                        ),
                        ("NEO4J_server_http_enabled", "false".into()),
                        ("NEO4J_server_https_enabled", "false".into()),
                        ("NEO4J_server_memory_heap_initial__size", "64m".into()),
                        ("NEO4J_server_memory_heap_max__size", "512m".into()),
                        ("NEO4J_server_memory_pagecache_size", "64m".into()),
                    ];
                    d.env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    // Either image's line: the local stand-in runs harness's launcher.
                    d.ready = vec![WaitFor::LogAny(&[NEO4J_READY_LOCAL, NEO4J_READY_UPSTREAM])];
                }
            }
            // Ping only once the server says it is up: a Bolt login tried earlier is
            // retried by the driver with its own back-off, which costs seconds.
            d.ready.extend(restart_conditions(kind, &endpoints));
        }
        ServiceKind::Otel => {
            let (http, health) = (free_port()?, free_port()?);
            d.ports.extend([http, health]);
            let output = dir.join("received.jsonl");
            let config = dir.join("config.yaml");
            std::fs::write(&config, otel::config_text()?)
                .ctx(|| format!("write {}", config.display()))?;
            let ep = OtelEndpoint {
                otlp_grpc: format!("127.0.0.1:{port}"),
                otlp_http: format!("http://127.0.0.1:{http}"),
                health_url: format!("http://127.0.0.1:{health}/"),
                output_file: output.clone(),
                config_file: config.clone(),
            };
            if let Launch::Native(rt) = launch {
                d.program = Some(rt.path(OTEL_BINARY));
            }
            d.args = vec!["--config".into(), config.display().to_string()];
            d.env = vec![
                ("HARNESS_OTLP_GRPC_ENDPOINT".into(), ep.otlp_grpc.clone()),
                (
                    "HARNESS_OTLP_HTTP_ENDPOINT".into(),
                    format!("127.0.0.1:{http}"),
                ),
                (
                    "HARNESS_OTEL_HEALTH_ENDPOINT".into(),
                    format!("127.0.0.1:{health}"),
                ),
                ("HARNESS_OTEL_OUTPUT".into(), output.display().to_string()),
            ];
            d.binds = vec![dir.to_owned()];
            endpoints.otel = Some(ep);
            d.ready = restart_conditions(kind, &endpoints);
        }
    }
    d.endpoints = endpoints;
    Ok(d)
}

/// The conditions a restarted service must meet again, on either provider (its
/// credentials are already set, so Postgres is checked over TCP only). A fresh start's
/// conditions ([`Description::ready`]) end with these.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::{Manifest, RuntimeKind};

    fn installed(kind: RuntimeKind) -> Installed {
        Installed {
            kind,
            dir: PathBuf::from("/opt/harness-test"),
            manifest: Manifest {
                runtime: kind,
                version: "test".into(),
                source: "test".into(),
                installed_at_unix: 0,
                files: Vec::new(),
            },
        }
    }

    /// Every description, both ways it can be launched.
    fn every_description(dir: &Path) -> Vec<(String, Description)> {
        let mut out = Vec::new();
        for kind in RuntimeKind::ALL {
            let rt = installed(kind);
            std::fs::create_dir_all(dir.join(kind.name())).expect("service folder");
            for (how, launch) in [
                ("native", Launch::Native(&rt)),
                (
                    "container",
                    Launch::Container {
                        image: "harness.local/any:1",
                    },
                ),
                (
                    "minio",
                    Launch::Container {
                        image: "minio/minio:latest",
                    },
                ),
            ] {
                let d = describe(kind, &launch, &dir.join(kind.name()), 40_000)
                    .unwrap_or_else(|e| panic!("{} {how}: {e}", kind.name()));
                out.push((format!("{} {how}", kind.name()), d));
            }
        }
        out
    }

    #[test]
    fn every_service_listens_on_loopback_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (what, d) in every_description(dir.path()) {
            let text: Vec<&str> = d
                .args
                .iter()
                .map(String::as_str)
                .chain(d.env.iter().map(|(_, v)| v.as_str()))
                .collect();
            for t in &text {
                assert!(
                    !t.contains("0.0.0.0") && !t.contains("[::]") && !t.contains("localhost"),
                    "{what} listens beyond 127.0.0.1: {t}"
                );
            }
            // The port asked for is the one it listens on, named in its arguments or env.
            assert_eq!(d.ports[0], 40_000, "{what}");
            assert!(
                text.iter().any(|t| t.contains("40000")),
                "{what} does not name its port: {text:?}"
            );
            assert_eq!(d.program.is_some(), what.ends_with("native"), "{what}");
        }
    }

    #[test]
    fn a_fresh_start_waits_for_what_a_restart_waits_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (what, d) in every_description(dir.path()) {
            let restart: Vec<String> = restart_conditions(d.kind, &d.endpoints)
                .iter()
                .map(WaitFor::describe)
                .collect();
            let ready: Vec<String> = d.ready.iter().map(WaitFor::describe).collect();
            assert!(!restart.is_empty(), "{what}: no restart condition");
            assert!(
                ready.ends_with(&restart),
                "{what}: ready {ready:?} does not end with the restart conditions {restart:?}"
            );
        }
    }

    #[test]
    fn the_native_postgres_socket_is_private_and_its_password_set_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = installed(RuntimeKind::Postgres);
        let d = describe(
            ServiceKind::Postgres,
            &Launch::Native(&rt),
            dir.path(),
            40_001,
        )
        .expect("describe");
        assert!(d.args.iter().any(|a| a == "unix_socket_permissions=0700"));
        assert!(
            d.env.is_empty(),
            "the password is not passed in the environment"
        );
        assert!(
            d.ready[0].describe().contains("postgres"),
            "{}",
            d.ready[0].describe()
        );
        let c = describe(
            ServiceKind::Postgres,
            &Launch::Container {
                image: "postgres:15",
            },
            dir.path(),
            40_001,
        )
        .expect("describe");
        // Both launches pass the same settings.
        let settings = |d: &Description| -> Vec<String> {
            d.args
                .windows(2)
                .filter(|w| w[0] == "-c" && !w[1].starts_with("unix_socket"))
                .map(|w| w[1].clone())
                .collect()
        };
        assert_eq!(settings(&d), settings(&c));
        assert!(!settings(&c).is_empty());
    }
}
