//! The Storage surface (`/storage/v1`), storage-api's as the official clients call it:
//! buckets, and objects whose metadata lives in `storage.buckets` / `storage.objects` of the
//! database and whose bytes live in the stack's object store (one backing bucket, keys
//! `BUCKET/NAME`). Each request's rows are read and written as the caller's role with its
//! JWT claims, so the table's policies decide who reads and writes what, as on Supabase
//! (no policy: only the service role). A public bucket's objects download without a
//! caller; a signed URL's token (an HS256 JWT of the object's path and expiry) stands in for
//! the caller.

mod buckets;
mod multipart;
mod signed;

use aws_sdk_s3::primitives::ByteStream;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{Reply, keys::Keys, rest::Caller};

/// storage-api's error body: `statusCode` (a string), `error`, `message`.
pub fn error(status: u16, error: &str, message: &str) -> Reply {
    Reply::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"statusCode": status.to_string(), "error": error, "message": message}),
    )
}

fn internal(e: impl std::fmt::Display) -> Reply {
    error(500, "internal", &format!("{e}"))
}

/// A database error under the caller's role: a policy's refusal is storage-api's 403.
fn db_error(e: sqlx::Error) -> Reply {
    match e.as_database_error().and_then(|d| d.code()).as_deref() {
        Some("42501") => error(
            403,
            "Unauthorized",
            "new row violates row-level security policy",
        ),
        Some("23505") => error(409, "Duplicate", "The resource already exists"),
        Some("23503") => error(404, "Bucket not found", "Bucket not found"),
        _ => internal(e),
    }
}

/// The Storage surface of one project.
pub struct Storage {
    pub pool: PgPool,
    pub keys: Keys,
    pub s3: aws_sdk_s3::Client,
    /// The object store's bucket that holds every object's bytes.
    pub backing: String,
    /// The largest upload a bucket without its own limit takes (Supabase's default: 50 MB).
    pub max_upload: u64,
}

/// A bucket or object name as storage-api accepts it.
fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && !key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && !key.chars().any(|c| c.is_control())
}

fn body_json(body: &[u8]) -> Result<Value, Reply> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| error(400, "InvalidJWT", "invalid JSON body"))
}

/// Opens a transaction as `caller`.
async fn as_caller(
    pool: &PgPool,
    caller: &Caller,
) -> Result<Transaction<'static, Postgres>, Reply> {
    let mut tx = pool.begin().await.map_err(internal)?;
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true), set_config('role', $2, true)")
        .bind(caller.claims.to_string())
        .bind(caller.role.name())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    Ok(tx)
}

/// A bucket of a path, decoded and checked.
fn bucket_name(raw: &str) -> Result<String, Reply> {
    let b = super::rest::query::decode(raw);
    if valid_bucket(&b) {
        Ok(b)
    } else {
        Err(error(
            400,
            "InvalidBucketName",
            &format!("Bucket name invalid: {b:?}"),
        ))
    }
}

/// `bucket/rest/of/path` → (`bucket`, `rest/of/path`).
fn split(path: &str) -> Result<(String, String), Reply> {
    let (b, k) = path.split_once('/').unwrap_or((path, ""));
    let key = super::rest::query::decode(k);
    let b = &bucket_name(b)?;
    if !valid_key(&key) {
        return Err(error(400, "InvalidKey", &format!("Invalid key: {key}")));
    }
    Ok((b.to_owned(), key))
}

impl Storage {
    fn object_key(&self, bucket: &str, key: &str) -> String {
        format!("{bucket}/{key}")
    }

    pub async fn serve(
        &self,
        method: &Method,
        rest: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
        caller: Caller,
    ) -> Reply {
        let r = match (method.clone(), rest) {
            (Method::GET, "bucket") => self.list_buckets(&caller).await,
            (Method::POST, "bucket") => self.create_bucket(&caller, body).await,
            (m, p) if p.starts_with("bucket/") => {
                let id = &p["bucket/".len()..];
                match (m, id.strip_suffix("/empty")) {
                    (Method::POST, Some(id)) => self.empty_bucket(&caller, id).await,
                    (Method::GET, None) => self.get_bucket(&caller, id).await,
                    (Method::PUT, None) => self.update_bucket(&caller, id, body).await,
                    (Method::DELETE, None) => self.delete_bucket(&caller, id).await,
                    _ => Err(error(405, "Method not allowed", "Method not allowed")),
                }
            }
            (Method::POST, p) if p.starts_with("object/list/") => {
                self.list(&caller, &p["object/list/".len()..], body).await
            }
            (Method::POST, "object/move") => self.relocate(&caller, body, true).await,
            (Method::POST, "object/copy") => self.relocate(&caller, body, false).await,
            (Method::POST, p) if p.starts_with("object/sign/") => {
                self.sign(&caller, &p["object/sign/".len()..], body).await
            }
            (Method::GET, p) if p.starts_with("object/sign/") => {
                self.signed_download(&p["object/sign/".len()..], query)
                    .await
            }
            (Method::POST, p) if p.starts_with("object/upload/sign/") => {
                self.sign_upload(&caller, &p["object/upload/sign/".len()..], headers)
                    .await
            }
            (Method::PUT, p) if p.starts_with("object/upload/sign/") => {
                self.signed_upload(&p["object/upload/sign/".len()..], query, headers, body)
                    .await
            }
            (Method::GET, p) if p.starts_with("object/public/") => {
                self.download(None, &p["object/public/".len()..], headers)
                    .await
            }
            (Method::GET, p) if p.starts_with("object/authenticated/") => {
                self.download(Some(&caller), &p["object/authenticated/".len()..], headers)
                    .await
            }
            (Method::GET, p) if p.starts_with("object/info/") => {
                self.info(&caller, &p["object/info/".len()..]).await
            }
            (Method::DELETE, p)
                if p.starts_with("object/") && !p["object/".len()..].contains('/') =>
            {
                self.remove(&caller, &p["object/".len()..], body).await
            }
            (Method::POST, p) if p.starts_with("object/") => {
                self.upload(&caller, &p["object/".len()..], headers, body, false)
                    .await
            }
            (Method::PUT, p) if p.starts_with("object/") => {
                self.upload(&caller, &p["object/".len()..], headers, body, true)
                    .await
            }
            (Method::GET, p) if p.starts_with("object/") => {
                self.download(Some(&caller), &p["object/".len()..], headers)
                    .await
            }
            _ => Err(error(
                404,
                "not_found",
                &format!("Route {method}:/storage/v1/{rest} not found"),
            )),
        };
        match r {
            Ok(r) | Err(r) => r,
        }
    }

    /// The bucket's limits, read as the service (a caller may upload to a bucket whose row
    /// it cannot see).
    async fn limits(
        &self,
        bucket: &str,
    ) -> Result<(bool, Option<i64>, Option<Vec<String>>), Reply> {
        let row = sqlx::query(
            "SELECT public, file_size_limit, allowed_mime_types FROM storage.buckets WHERE id = $1",
        )
        .bind(bucket)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?
        .ok_or_else(|| error(404, "Bucket not found", "Bucket not found"))?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        caller: &Caller,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        update: bool,
    ) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        let upsert = update
            || headers
                .get("x-upsert")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        self.store(Some(caller), &bucket, &key, headers, body, upsert, update)
            .await
    }

    /// Writes an object's row (as `caller`, or as the service for a signed upload) and its
    /// bytes.
    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        caller: Option<&Caller>,
        bucket: &str,
        key: &str,
        headers: &HeaderMap,
        body: &[u8],
        upsert: bool,
        update_only: bool,
    ) -> Result<Reply, Reply> {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let (bytes, mime, cache) = if content_type.starts_with("multipart/form-data") {
            let form = multipart::parse(&content_type, body).map_err(|e| {
                error(
                    400,
                    "InvalidRequest",
                    &format!("malformed multipart body: {e}"),
                )
            })?;
            let file = form
                .iter()
                .find(|p| p.name == "file" || p.filename.is_some())
                .ok_or_else(|| error(400, "InvalidRequest", "the form has no file part"))?;
            let cache = form
                .iter()
                .find(|p| p.name == "cacheControl")
                .map(|p| String::from_utf8_lossy(&p.data).into_owned());
            (
                file.data.clone(),
                file.content_type
                    .clone()
                    .unwrap_or_else(|| "text/plain;charset=UTF-8".into()),
                cache,
            )
        } else {
            let cache = headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (body.to_vec(), content_type, cache)
        };
        let (_, limit, mimes) = self.limits(bucket).await?;
        let max = limit.map_or(self.max_upload, |l| l.max(0) as u64);
        if bytes.len() as u64 > max {
            return Err(error(
                413,
                "Payload too large",
                "The object exceeded the maximum allowed size",
            ));
        }
        if let Some(allowed) = &mimes {
            let base = mime
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let ok = allowed.iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == base
                    || a.strip_suffix("/*")
                        .is_some_and(|p| base.starts_with(&format!("{p}/")))
            });
            if !ok {
                return Err(error(
                    415,
                    "invalid_mime_type",
                    &format!("mime type {base} is not supported"),
                ));
            }
        }
        let metadata = json!({
            "size": bytes.len(),
            "mimetype": mime.split(';').next().unwrap_or("").trim(),
            "cacheControl": format!("max-age={}", cache.as_deref().unwrap_or("3600")),
            "eTag": format!("\"{}\"", sha256_hex(&bytes)),
            "contentLength": bytes.len(),
            "httpStatusCode": 200,
            "lastModified": chrono::Utc::now().to_rfc2822(),
        });
        let mut tx = match caller {
            Some(c) => as_caller(&self.pool, c).await?,
            None => self.pool.begin().await.map_err(internal)?,
        };
        let statement = if update_only {
            "UPDATE storage.objects SET metadata = $3, updated_at = now(), version = gen_random_uuid()::text \
             WHERE bucket_id = $1 AND name = $2 RETURNING id::text"
        } else if upsert {
            "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, metadata, version) \
             VALUES ($1, $2, auth.uid(), auth.uid()::text, $3, gen_random_uuid()::text) \
             ON CONFLICT (bucket_id, name) DO UPDATE SET metadata = EXCLUDED.metadata, \
             updated_at = now(), version = EXCLUDED.version RETURNING id::text"
        } else {
            "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, metadata, version) \
             VALUES ($1, $2, auth.uid(), auth.uid()::text, $3, gen_random_uuid()::text) RETURNING id::text"
        };
        let id: Option<String> = sqlx::query_scalar(statement)
            .bind(bucket)
            .bind(key)
            .bind(&metadata)
            .fetch_optional(&mut *tx)
            .await
            .map_err(
                |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                    Some("23505") => error(409, "Duplicate", "The resource already exists"),
                    _ => db_error(e),
                },
            )?;
        let Some(id) = id else {
            return Err(error(404, "not_found", "Object not found"));
        };
        self.s3
            .put_object()
            .bucket(&self.backing)
            .key(self.object_key(bucket, key))
            .content_type(&mime)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| internal(crate::run::stores::sdk_error(&e)))?;
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(
            StatusCode::OK,
            json!({"Key": format!("{bucket}/{key}"), "Id": id}),
        ))
    }

    /// An object's bytes: as `caller` (its policies decide), or without one from a public
    /// bucket.
    async fn download(
        &self,
        caller: Option<&Caller>,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        let row = match caller {
            Some(c) => {
                let mut tx = as_caller(&self.pool, c).await?;
                let row = sqlx::query(
                    "SELECT metadata FROM storage.objects WHERE bucket_id = $1 AND name = $2",
                )
                .bind(&bucket)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                tx.commit().await.map_err(internal)?;
                row
            }
            None => {
                let (public, _, _) = self.limits(&bucket).await?;
                if !public {
                    return Err(error(400, "not_found", "Object not found"));
                }
                sqlx::query(
                    "SELECT metadata FROM storage.objects WHERE bucket_id = $1 AND name = $2",
                )
                .bind(&bucket)
                .bind(&key)
                .fetch_optional(&self.pool)
                .await
                .map_err(internal)?
            }
        };
        let Some(row) = row else {
            return Err(error(400, "not_found", "Object not found"));
        };
        let meta: Value = row.get::<Option<Value>, _>(0).unwrap_or(Value::Null);
        self.bytes(&bucket, &key, &meta, headers).await
    }

    async fn bytes(
        &self,
        bucket: &str,
        key: &str,
        meta: &Value,
        headers: &HeaderMap,
    ) -> Result<Reply, Reply> {
        let mut get = self
            .s3
            .get_object()
            .bucket(&self.backing)
            .key(self.object_key(bucket, key));
        let range = headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(r) = &range {
            get = get.range(r);
        }
        let out = get.send().await.map_err(|e| {
            let text = crate::run::stores::sdk_error(&e);
            if text.contains("InvalidRange") {
                error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                )
            } else {
                error(400, "not_found", "Object not found")
            }
        })?;
        let content_range = out.content_range().map(str::to_owned);
        let data = out
            .body
            .collect()
            .await
            .map_err(internal)?
            .into_bytes()
            .to_vec();
        let mime = meta["mimetype"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let mut reply = Reply::bytes(
            if content_range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            },
            &mime,
            data,
        );
        if let Some(cr) = content_range {
            reply = reply.header("content-range", &cr);
        }
        if let Some(c) = meta["cacheControl"].as_str() {
            reply = reply.header("cache-control", c);
        }
        if let Some(e) = meta["eTag"].as_str() {
            reply = reply.header("etag", e);
        }
        Ok(reply)
    }

    async fn info(&self, caller: &Caller, path: &str) -> Result<Reply, Reply> {
        let (bucket, key) = split(path)?;
        let mut tx = as_caller(&self.pool, caller).await?;
        let row = sqlx::query(
            "SELECT id::text, name, version, bucket_id, metadata, to_json(updated_at) #>> '{}', to_json(created_at) #>> '{}' \
             FROM storage.objects WHERE bucket_id = $1 AND name = $2",
        )
        .bind(&bucket)
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        let Some(r) = row else {
            return Err(error(404, "not_found", "Object not found"));
        };
        let meta: Value = r.get::<Option<Value>, _>(4).unwrap_or(Value::Null);
        Ok(Reply::json(
            StatusCode::OK,
            json!({
                "id": r.get::<String, _>(0),
                "name": r.get::<String, _>(1),
                "version": r.get::<Option<String>, _>(2),
                "bucket_id": r.get::<String, _>(3),
                "size": meta["size"],
                "content_type": meta["mimetype"],
                "cache_control": meta["cacheControl"],
                "etag": meta["eTag"],
                "metadata": {},
                "last_modified": r.get::<String, _>(5),
                "created_at": r.get::<String, _>(6),
            }),
        ))
    }

    /// `object/list/BUCKET`: the objects and folders right under `prefix`.
    async fn list(&self, caller: &Caller, bucket: &str, body: &[u8]) -> Result<Reply, Reply> {
        let bucket = &bucket_name(bucket)?;
        let b = body_json(body)?;
        let prefix = b["prefix"]
            .as_str()
            .unwrap_or("")
            .trim_matches('/')
            .to_owned();
        let limit = b["limit"].as_i64().unwrap_or(100).clamp(1, 1000);
        let offset = b["offset"].as_i64().unwrap_or(0).max(0);
        let search = b["search"].as_str().unwrap_or("").to_owned();
        let column = match b["sortBy"]["column"].as_str().unwrap_or("name") {
            "name" => "name",
            "created_at" => "created_at",
            "updated_at" => "updated_at",
            "last_accessed_at" => "last_accessed_at",
            other => {
                return Err(error(
                    400,
                    "InvalidRequest",
                    &format!("cannot sort by {other:?}"),
                ));
            }
        };
        let desc = b["sortBy"]["order"]
            .as_str()
            .is_some_and(|o| o.eq_ignore_ascii_case("desc"));
        let pre = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut tx = as_caller(&self.pool, caller).await?;
        // One level: names under the prefix with no further `/` are objects; the first
        // segment of the others is a folder.
        let rows = sqlx::query(&format!(
            "WITH under AS (SELECT o.*, substr(o.name, length($2) + 1) AS rest FROM storage.objects o \
               WHERE o.bucket_id = $1 AND starts_with(o.name, $2)), \
             items AS ( \
               SELECT split_part(rest, '/', 1) AS name, NULL::text AS id, NULL::timestamptz AS created_at, \
                      NULL::timestamptz AS updated_at, NULL::timestamptz AS last_accessed_at, NULL::jsonb AS metadata \
                 FROM under WHERE position('/' in rest) > 0 GROUP BY split_part(rest, '/', 1) \
               UNION ALL \
               SELECT rest, id::text, created_at, updated_at, last_accessed_at, metadata FROM under WHERE position('/' in rest) = 0) \
             SELECT name, id, to_json(created_at) #>> '{{}}', to_json(updated_at) #>> '{{}}', \
                    to_json(last_accessed_at) #>> '{{}}', metadata FROM items \
             WHERE $3 = '' OR name ILIKE $3 || '%' \
             ORDER BY (id IS NOT NULL), {column} {} NULLS FIRST, name LIMIT $4 OFFSET $5",
            if desc { "DESC" } else { "ASC" }
        ))
        .bind(bucket)
        .bind(&pre)
        .bind(&search)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        let items: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.get::<String, _>(0),
                    "id": r.get::<Option<String>, _>(1),
                    "created_at": r.get::<Option<String>, _>(2),
                    "updated_at": r.get::<Option<String>, _>(3),
                    "last_accessed_at": r.get::<Option<String>, _>(4),
                    "metadata": r.get::<Option<Value>, _>(5),
                })
            })
            .collect();
        Ok(Reply::json(StatusCode::OK, Value::Array(items)))
    }

    async fn relocate(
        &self,
        caller: &Caller,
        body: &[u8],
        remove_source: bool,
    ) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let bucket = b["bucketId"].as_str().unwrap_or_default().to_owned();
        let to_bucket = b["destinationBucket"]
            .as_str()
            .unwrap_or(&bucket)
            .to_owned();
        let (from, to) = (
            b["sourceKey"].as_str().unwrap_or_default().to_owned(),
            b["destinationKey"].as_str().unwrap_or_default().to_owned(),
        );
        if !valid_bucket(&bucket)
            || !valid_bucket(&to_bucket)
            || !valid_key(&from)
            || !valid_key(&to)
        {
            return Err(error(
                400,
                "InvalidKey",
                "bucketId, sourceKey and destinationKey are a bucket and two keys",
            ));
        }
        let mut tx = as_caller(&self.pool, caller).await?;
        let statement = if remove_source {
            "UPDATE storage.objects SET bucket_id = $3, name = $4, updated_at = now() \
             WHERE bucket_id = $1 AND name = $2 RETURNING id::text"
        } else {
            "INSERT INTO storage.objects (bucket_id, name, owner, owner_id, metadata, version) \
             SELECT $3, $4, auth.uid(), auth.uid()::text, metadata, gen_random_uuid()::text FROM storage.objects \
             WHERE bucket_id = $1 AND name = $2 RETURNING id::text"
        };
        let id: Option<String> = sqlx::query_scalar(statement)
            .bind(&bucket)
            .bind(&from)
            .bind(&to_bucket)
            .bind(&to)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if id.is_none() {
            return Err(error(400, "not_found", "Object not found"));
        }
        self.s3
            .copy_object()
            .bucket(&self.backing)
            .copy_source(format!(
                "{}/{}",
                self.backing,
                self.object_key(&bucket, &from)
            ))
            .key(self.object_key(&to_bucket, &to))
            .send()
            .await
            .map_err(|e| internal(crate::run::stores::sdk_error(&e)))?;
        if remove_source {
            self.delete_bytes(&bucket, &from).await?;
        }
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(
            StatusCode::OK,
            if remove_source {
                json!({"message": "Successfully moved"})
            } else {
                json!({"Key": format!("{to_bucket}/{to}")})
            },
        ))
    }

    async fn delete_bytes(&self, bucket: &str, key: &str) -> Result<(), Reply> {
        self.s3
            .delete_object()
            .bucket(&self.backing)
            .key(self.object_key(bucket, key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| internal(crate::run::stores::sdk_error(&e)))
    }

    async fn remove(&self, caller: &Caller, bucket: &str, body: &[u8]) -> Result<Reply, Reply> {
        let bucket = &bucket_name(bucket)?;
        let b = body_json(body)?;
        let prefixes: Vec<String> = b["prefixes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| {
                error(
                    400,
                    "InvalidRequest",
                    "the body is {\"prefixes\": [KEY, …]}",
                )
            })?;
        let mut tx = as_caller(&self.pool, caller).await?;
        let rows = sqlx::query(
            "DELETE FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2) \
             RETURNING id::text, name, bucket_id, metadata",
        )
        .bind(bucket)
        .bind(&prefixes)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        for r in &rows {
            self.delete_bytes(bucket, &r.get::<String, _>(1)).await?;
        }
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(
            StatusCode::OK,
            Value::Array(
                rows.iter()
                    .map(|r| {
                        json!({"id": r.get::<String, _>(0), "name": r.get::<String, _>(1),
                               "bucket_id": r.get::<String, _>(2), "metadata": r.get::<Option<Value>, _>(3)})
                    })
                    .collect(),
            ),
        ))
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
