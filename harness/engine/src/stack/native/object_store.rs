//! The S3 object store (VersityGW over a folder of the run), with versioning available.

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    primitives::ByteStream,
};
use serde::{Deserialize, Serialize};

use crate::{
    secret::{Secret, random_id},
    stack::readiness::Probe,
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
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
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

impl Probe for Ping {
    fn describe(&self) -> String {
        "object store protocol round trip".into()
    }
    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Ping::check(self))
    }
}
