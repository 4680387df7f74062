//! The S3 object store (VersityGW over a folder of the run), with versioning available.

use std::{path::Path, time::Duration};

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    primitives::ByteStream,
};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{
    process::{ServiceProcess, wait_ready},
    service_dir,
};
use crate::{
    error::Error,
    runtimes::{Installed, S3_BINARY},
    secret::{Secret, random_id},
    stack::readiness::{Probe, WaitFor},
};

/// How to reach the stack's object store (path-style addressing).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct S3Endpoint {
    pub endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl S3Endpoint {
    /// An endpoint on 127.0.0.1:`port` with fresh random credentials.
    pub(crate) fn local(port: u16) -> Self {
        S3Endpoint {
            endpoint_url: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            access_key_id: format!("HARNESS{}", random_id(12).to_uppercase()),
            secret_access_key: Secret::random(32),
        }
    }

    /// An S3 client configured for this endpoint.
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint_url)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                self.secret_access_key.expose(),
                None,
                None,
                "harness",
            ))
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }
}

/// Creates a bucket, puts an object, reads it back, and removes both.
#[derive(Debug)]
pub struct Ping {
    endpoint: S3Endpoint,
}

impl Ping {
    pub(crate) fn new(endpoint: S3Endpoint) -> Self {
        Ping { endpoint }
    }

    pub async fn check(&self) -> Result<(), String> {
        let client = self.endpoint.client();
        let bucket = format!("harness-ready-{}", random_id(8));
        let err = |e: &dyn std::fmt::Display| e.to_string();
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| err(&e))?;
        let body = b"ready".to_vec();
        client
            .put_object()
            .bucket(&bucket)
            .key("probe")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| err(&e))?;
        let got = client
            .get_object()
            .bucket(&bucket)
            .key("probe")
            .send()
            .await
            .map_err(|e| err(&e))?
            .body
            .collect()
            .await
            .map_err(|e| err(&e))?
            .into_bytes();
        client
            .delete_object()
            .bucket(&bucket)
            .key("probe")
            .send()
            .await
            .map_err(|e| err(&e))?;
        client
            .delete_bucket()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| err(&e))?;
        if got.as_ref() == body.as_slice() {
            Ok(())
        } else {
            Err("the object read back differs from the one written".into())
        }
    }
}

pub async fn start(
    run_dir: &Path,
    runtime: &Installed,
    port: u16,
    timeout: Duration,
) -> Result<(ServiceProcess, S3Endpoint), Error> {
    let dir = service_dir(run_dir, "s3")?;
    let (root, versions) = (dir.join("buckets"), dir.join("versions"));
    for d in [&root, &versions] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
    }
    let endpoint = S3Endpoint::local(port);
    let (binary, ep) = (runtime.path(S3_BINARY), endpoint.clone());
    let respawn = std::sync::Arc::new(move || {
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.env("ROOT_ACCESS_KEY_ID", &ep.access_key_id)
            .env("ROOT_SECRET_ACCESS_KEY", ep.secret_access_key.expose())
            .arg("--port")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--quiet")
            .arg("posix")
            .arg("--versioning-dir")
            .arg(&versions)
            .arg(&root);
        cmd
    });
    let mut process =
        ServiceProcess::spawn_with("s3", respawn, &dir.join("s3.log"), Signal::SIGTERM)?;
    let ping = Ping {
        endpoint: endpoint.clone(),
    };
    wait_ready(
        &mut process,
        &[WaitFor::Tcp(port), WaitFor::Ping(Box::new(ping))],
        timeout,
    )
    .await?;
    Ok((process, endpoint))
}

impl Probe for Ping {
    fn describe(&self) -> String {
        "object store protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
