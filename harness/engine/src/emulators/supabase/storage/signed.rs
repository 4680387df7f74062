//! Signed URLs: a token (an HS256 JWT of the object's path and expiry, made with the
//! project's secret) that stands in for the caller, for a download or an upload.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use super::{
    Storage, as_caller, body_json, bucket_name, db_error, error, internal, split, valid_key,
};
use crate::emulators::supabase::{Reply, rest::Caller};

impl Storage {
    /// A token for `BUCKET/KEY` valid `seconds` from now (`upload`: for a signed upload).
    pub(super) fn token(&self, bucket: &str, key: &str, seconds: i64, upload: bool) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims =
            json!({"url": format!("{bucket}/{key}"), "iat": now, "exp": now + seconds});
        if upload {
            claims["upsert"] = json!(false);
            claims["kind"] = json!("upload");
        }
        self.keys.sign(&claims)
    }

    /// Whether the caller may read `bucket/key` (its policies decide).
    pub(super) async fn readable(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
    ) -> Result<bool, Reply> {
        let mut tx = as_caller(&self.pool, caller).await?;
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM storage.objects WHERE bucket_id = $1 AND name = $2)",
        )
        .bind(bucket)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        Ok(found)
    }

    pub(super) fn expires(b: &Value) -> Result<i64, Reply> {
        let v = match &b["expiresIn"] {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        v.filter(|s| *s > 0).ok_or_else(|| {
            error(
                400,
                "InvalidRequest",
                "expiresIn is a positive number of seconds",
            )
        })
    }

    pub(super) async fn sign(
        &self,
        caller: &Caller,
        path: &str,
        body: &[u8],
    ) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let seconds = Self::expires(&b)?;
        if !path.contains('/') {
            // Several paths of one bucket.
            let bucket = &bucket_name(path)?;
            let paths: Vec<String> = b["paths"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .ok_or_else(|| error(400, "InvalidRequest", "paths is a list of keys"))?;
            let mut out = Vec::new();
            for p in paths {
                let ok = valid_key(&p) && self.readable(caller, bucket, &p).await?;
                out.push(if ok {
                    json!({"error": null, "path": p, "signedURL": format!("/object/sign/{bucket}/{p}?token={}", self.token(bucket, &p, seconds, false))})
                } else {
                    json!({"error": "Either the object does not exist or you do not have access to it", "path": p, "signedURL": null})
                });
            }
            return Ok(Reply::json(StatusCode::OK, Value::Array(out)));
        }
        let (bucket, key) = split(path)?;
        if !self.readable(caller, &bucket, &key).await? {
            return Err(error(400, "not_found", "Object not found"));
        }
        Ok(Reply::json(
            StatusCode::OK,
            json!({"signedURL": format!("/object/sign/{bucket}/{key}?token={}", self.token(&bucket, &key, seconds, false))}),
        ))
    }

    pub(super) fn check_token(
        &self,
        bucket: &str,
        key: &str,
        query: &str,
        upload: bool,
    ) -> Result<(), Reply> {
        let token = crate::emulators::supabase::rest::query::pairs(query)
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .ok_or_else(|| {
                error(
                    400,
                    "InvalidJWT",
                    "querystring must have required property 'token'",
                )
            })?;
        let claims = self
            .keys
            .verify(&token)
            .map_err(|e| error(400, "InvalidJWT", &e.message()))?;
        let wanted = format!("{bucket}/{key}");
        if claims["url"] != wanted || (claims["kind"] == "upload") != upload {
            return Err(error(
                400,
                "InvalidSignature",
                "The url do not match the signature",
            ));
        }
        Ok(())
    }

    pub(super) async fn signed_download(&self, path: &str, query: &str) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        self.check_token(&bucket, &key, query, false)?;
        let row =
            sqlx::query("SELECT metadata FROM storage.objects WHERE bucket_id = $1 AND name = $2")
                .bind(&bucket)
                .bind(&key)
                .fetch_optional(&self.pool)
                .await
                .map_err(internal)?
                .ok_or_else(|| error(400, "not_found", "Object not found"))?;
        let meta: Value = row.get::<Option<Value>, _>(0).unwrap_or(Value::Null);
        self.bytes(&bucket, &key, &meta, &HeaderMap::new()).await
    }

    pub(super) async fn sign_upload(
        &self,
        caller: &Caller,
        path: &str,
        _headers: &HeaderMap,
    ) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        // The caller must be allowed to write there: its policies are tried in a
        // transaction that is rolled back.
        let mut tx = as_caller(&self.pool, caller).await?;
        sqlx::query(
            "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, metadata) \
             VALUES ($1, $2, auth.uid(), auth.uid()::text, '{}')",
        )
        .bind(&bucket)
        .bind(&key)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.rollback().await.map_err(internal)?;
        let token = self.token(&bucket, &key, 2 * 3600, true);
        Ok(Reply::json(
            StatusCode::OK,
            json!({"url": format!("/object/upload/sign/{bucket}/{key}?token={token}")}),
        ))
    }

    pub(super) async fn signed_upload(
        &self,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        self.check_token(&bucket, &key, query, true)?;
        self.store(None, &bucket, &key, headers, body, false, false)
            .await
    }
}
