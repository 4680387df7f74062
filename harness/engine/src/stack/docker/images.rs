//! The images the Docker provider runs. Each has an upstream default (the pinned official
//! image a user would pull), a local stand-in that `harness images build` makes from
//! `infra/docker/` for machines without a registry, and an environment variable that
//! overrides both.

use testcontainers::bollard::Docker;

use crate::{error::Error, stack::ServiceKind};

/// One image the provider can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// What it is for: a service name, or `sample-api` / `sample-ingest`.
    pub name: &'static str,
    /// The pinned upstream image.
    pub upstream: &'static str,
    /// The equivalent image built by `harness images build`.
    pub local: &'static str,
    /// The environment variable that overrides both.
    pub env: &'static str,
    /// Its folder under `infra/docker/`.
    pub dir: &'static str,
}

pub const POSTGRES: ImageSpec = ImageSpec {
    name: "postgres",
    upstream: "postgres:15.14-bookworm",
    local: "harness.local/postgres:15",
    env: "HARNESS_IMAGE_POSTGRES",
    dir: "postgres",
};
pub const S3: ImageSpec = ImageSpec {
    name: "s3",
    upstream: "versity/versitygw:v1.8.0",
    local: "harness.local/versitygw:1.8.0",
    env: "HARNESS_IMAGE_S3",
    dir: "s3",
};
pub const NEO4J: ImageSpec = ImageSpec {
    name: "neo4j",
    upstream: "neo4j:5.26.16-community",
    local: "harness.local/neo4j:5.26.16",
    env: "HARNESS_IMAGE_NEO4J",
    dir: "neo4j",
};
pub const OTEL: ImageSpec = ImageSpec {
    name: "otel",
    upstream: "otel/opentelemetry-collector-contrib:0.165.0",
    local: "harness.local/otelcol:0.165.0",
    env: "HARNESS_IMAGE_OTEL",
    dir: "otel",
};
/// The sample platform's API (fixtures/apps/api).
pub const SAMPLE_API: ImageSpec = ImageSpec {
    name: "sample-api",
    upstream: "harness.local/sample-api:dev",
    local: "harness.local/sample-api:dev",
    env: "HARNESS_IMAGE_SAMPLE_API",
    dir: "sample-api",
};
/// The sample platform's ingest job (fixtures/apps/ingest).
pub const SAMPLE_INGEST: ImageSpec = ImageSpec {
    name: "sample-ingest",
    upstream: "harness.local/sample-ingest:dev",
    local: "harness.local/sample-ingest:dev",
    env: "HARNESS_IMAGE_SAMPLE_INGEST",
    dir: "sample-ingest",
};

/// The images of the stack's services, then the sample apps'.
pub const ALL: [ImageSpec; 6] = [POSTGRES, S3, NEO4J, OTEL, SAMPLE_API, SAMPLE_INGEST];

/// The image spec of a service.
pub fn for_service(kind: ServiceKind) -> ImageSpec {
    match kind {
        ServiceKind::Postgres => POSTGRES,
        ServiceKind::S3 => S3,
        ServiceKind::Neo4j => NEO4J,
        ServiceKind::Otel => OTEL,
    }
}

/// The base image the local images are built on (debootstrap + `docker import`).
pub const BASE: &str = "harness.local/debian-base:bookworm";

/// Where an image name came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Named explicitly (builder, CLI flag or environment variable).
    Explicit(String),
    /// Nothing named: the upstream image when present, else the local one.
    Default,
}

impl ImageSpec {
    /// The explicit choice for this image: `explicit`, else its environment variable.
    pub fn choice(&self, explicit: Option<&str>) -> Choice {
        explicit
            .map(str::to_owned)
            .or_else(|| {
                std::env::var(self.env)
                    .ok()
                    .filter(|v| !v.trim().is_empty())
            })
            .map_or(Choice::Default, Choice::Explicit)
    }

    /// Picks the image to run without pulling: the explicit one, else the upstream image if
    /// the engine has it, else the locally built one. A missing image is an error that
    /// names both fixes.
    pub async fn resolve(&self, docker: &Docker, explicit: Option<&str>) -> Result<String, Error> {
        let candidates = match self.choice(explicit) {
            Choice::Explicit(image) => vec![image],
            Choice::Default => vec![self.upstream.to_owned(), self.local.to_owned()],
        };
        for image in &candidates {
            if present(docker, image).await? {
                return Ok(image.clone());
            }
        }
        let fix = match self.choice(explicit) {
            Choice::Explicit(image) => format!(
                "`docker pull {image}` (or load it with `docker load`), or unset {} to use the default",
                self.env
            ),
            Choice::Default => format!(
                "run `harness images build` (builds {} locally, no registry needed) or `docker pull {}`",
                self.local, self.upstream
            ),
        };
        Err(Error::ImageMissing {
            service: self.name.to_owned(),
            image: candidates.join(" or "),
            fix,
        })
    }
}

/// Whether the engine has `image` locally. harness never pulls on its own: a pull would
/// reach a registry, and on machines without one it would hang or fail late.
pub async fn present(docker: &Docker, image: &str) -> Result<bool, Error> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => Ok(false),
        Err(e) => Err(Error::Docker(format!("inspect image {image}: {e}"))),
    }
}

/// Splits `name:tag` (a registry host may carry a port: `host:5000/name:tag`).
pub fn split(image: &str) -> (&str, &str) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_registry_ports_in_the_name() {
        assert_eq!(split("postgres:15"), ("postgres", "15"));
        assert_eq!(split("localhost:5000/pg:15"), ("localhost:5000/pg", "15"));
        assert_eq!(
            split("harness.local/otelcol"),
            ("harness.local/otelcol", "latest")
        );
    }

    #[test]
    fn explicit_names_win_over_defaults() {
        assert_eq!(
            POSTGRES.choice(Some("mine/pg:1")),
            Choice::Explicit("mine/pg:1".into())
        );
    }
}
