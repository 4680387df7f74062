//! `s3`: put, get, head, list, list_versions and delete on the scenario's bucket.
//!
//! Documents: put `{key, etag, version_id}`; get `{key, exists, body, size, content_type,
//! version_id}`; head `{key, exists, size, content_type, version_id}`; list `{keys, count}`;
//! list_versions `{versions: [{key, version_id, latest, delete_marker}], count}`;
//! delete `{key, version_id}`.

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
};
use harness_scenario::{S3, S3Op};
use serde_json::{Value, json};

use super::{Handler, StepError, expect_error};
use crate::run::{context::Ctx, matcher, stores::sdk_error};

impl Handler for S3 {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let s = self;
        let client = ctx
            .iso
            .s3
            .clone()
            .ok_or_else(|| StepError::error("the object store is not part of this run"))?;
        let bucket = match &s.bucket {
            Some(b) => ctx.render(b)?,
            None => ctx
                .iso
                .bucket
                .clone()
                .ok_or_else(|| StepError::error("no bucket for this scenario"))?,
        };
        let key = match &s.key {
            Some(k) => Some(ctx.render(k)?),
            None => None,
        };
        let key_s = key.clone().unwrap_or_default();
        let version_id = match &s.version_id {
            Some(v) => Some(ctx.render(v)?),
            None => None,
        };
        let prefix = match &s.prefix {
            Some(p) => Some(ctx.render(p)?),
            None => None,
        };
        let result: Result<Value, String> = match s.op {
        S3Op::Put => {
            let bytes = match (&s.body, &s.file) {
                (Some(b), _) => ctx.render(b)?.into_bytes(),
                (None, Some(f)) => {
                    let f = ctx.render(f)?;
                    let path = ctx.dir.join(f);
                    std::fs::read(&path).map_err(|e| StepError::error(format!("read {}: {e}", path.display())))?
                }
                (None, None) => Vec::new(),
            };
            let mut req = client.put_object().bucket(&bucket).key(&key_s).body(ByteStream::from(bytes));
            if let Some(ct) = &s.content_type {
                req = req.content_type(ctx.render(ct)?);
            }
            req.send()
                .await
                .map(|o| json!({"key": key_s, "etag": o.e_tag(), "version_id": o.version_id()}))
                .map_err(|e| sdk_error(&e))
        }
        S3Op::Get => match client.get_object().bucket(&bucket).key(&key_s).set_version_id(version_id).send().await {
            Ok(o) => {
                let content_type = o.content_type().map(str::to_owned);
                let version = o.version_id().map(str::to_owned);
                match o.body.collect().await {
                    Ok(data) => {
                        let bytes = data.into_bytes();
                        Ok(json!({
                            "key": key_s, "exists": true, "size": bytes.len(),
                            "body": String::from_utf8_lossy(&bytes), "content_type": content_type, "version_id": version
                        }))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) if is_not_found(&e) => Ok(json!({"key": key_s, "exists": false})),
            Err(e) => Err(sdk_error(&e)),
        },
        S3Op::Head => match client.head_object().bucket(&bucket).key(&key_s).set_version_id(version_id).send().await {
            Ok(o) => Ok(json!({
                "key": key_s, "exists": true, "size": o.content_length(),
                "content_type": o.content_type(), "version_id": o.version_id()
            })),
            Err(e) if is_not_found(&e) => Ok(json!({"key": key_s, "exists": false})),
            Err(e) => Err(sdk_error(&e)),
        },
        S3Op::List => client
            .list_objects_v2()
            .bucket(&bucket)
            .set_prefix(prefix)
            .send()
            .await
            .map(|o| {
                let keys: Vec<&str> = o.contents().iter().filter_map(|c| c.key()).collect();
                json!({"keys": keys, "count": keys.len()})
            })
            .map_err(|e| sdk_error(&e)),
        S3Op::ListVersions => client
            .list_object_versions()
            .bucket(&bucket)
            .set_prefix(prefix)
            .send()
            .await
            .map(|o| {
                let mut versions: Vec<Value> = o
                    .versions()
                    .iter()
                    .map(|v| json!({"key": v.key(), "version_id": v.version_id(), "latest": v.is_latest(), "delete_marker": false}))
                    .collect();
                versions.extend(o.delete_markers().iter().map(
                    |v| json!({"key": v.key(), "version_id": v.version_id(), "latest": v.is_latest(), "delete_marker": true}),
                ));
                json!({"count": versions.len(), "versions": versions})
            })
            .map_err(|e| sdk_error(&e)),
        S3Op::Delete => client
            .delete_object()
            .bucket(&bucket)
            .key(&key_s)
            .set_version_id(version_id)
            .send()
            .await
            .map(|o| json!({"key": key_s, "version_id": o.version_id()}))
            .map_err(|e| sdk_error(&e)),
    };
        expect_error(ctx, result, s.expect.error.as_ref(), "the s3 operation")
    }

    fn check(&self, ctx: &mut Ctx, doc: &Value) -> Result<(), StepError> {
        let s = self;
        if let Some(want) = s.expect.exists {
            let m = harness_scenario::Matcher {
                op: harness_scenario::MatchOp::Eq(Value::Bool(want)),
                span: Default::default(),
            };
            matcher::check(ctx, "exists", &m, doc.get("exists")).map_err(|e| match e {
                StepError::Failed {
                    message,
                    expected,
                    actual,
                    ..
                } => StepError::Failed {
                    message,
                    expected,
                    actual,
                    span: None,
                },
                other => other,
            })?;
        }
        if let Some(m) = &s.expect.body {
            matcher::check(ctx, "object body", m, doc.get("body"))?;
        }
        if let Some(m) = &s.expect.count {
            matcher::check(ctx, "count", m, doc.get("count"))?;
        }
        Ok(())
    }
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
        || matches!(
            e.as_service_error().and_then(|se| se.code()),
            Some("NoSuchKey" | "NotFound")
        )
}
