//! Storage's buckets: their rows in `storage.buckets`, read and written as the caller.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use super::{Storage, as_caller, body_json, db_error, error, internal, valid_bucket};
use crate::emulators::supabase::{Reply, rest::Caller};

pub(super) fn bucket_json(r: &sqlx::postgres::PgRow) -> Value {
    json!({
        "id": r.get::<String, _>("id"),
        "name": r.get::<String, _>("name"),
        "owner": r.get::<Option<String>, _>("owner").unwrap_or_default(),
        "public": r.get::<bool, _>("public"),
        "file_size_limit": r.get::<Option<i64>, _>("file_size_limit"),
        "allowed_mime_types": r.get::<Option<Vec<String>>, _>("allowed_mime_types"),
        "created_at": r.get::<String, _>("created_at"),
        "updated_at": r.get::<String, _>("updated_at"),
    })
}

const BUCKET_COLUMNS: &str = "id, name, owner::text AS owner, public, file_size_limit, \
    allowed_mime_types, to_json(created_at) #>> '{}' AS created_at, \
    to_json(updated_at) #>> '{}' AS updated_at";

/// A bucket's settings: public, its upload size limit, its allowed MIME types.
type BucketOptions = (Option<bool>, Option<i64>, Option<Vec<String>>);

/// `50MB`, `1GB`, `100` (bytes).
fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_uppercase();
    let (num, mult) = if let Some(n) = s.strip_suffix("GB") {
        (n, 1 << 30)
    } else if let Some(n) = s.strip_suffix("MB") {
        (n, 1 << 20)
    } else if let Some(n) = s.strip_suffix("KB") {
        (n, 1 << 10)
    } else if let Some(n) = s.strip_suffix('B') {
        (n, 1)
    } else {
        (s.as_str(), 1)
    };
    num.trim().parse::<i64>().ok().map(|n| n * mult)
}

impl Storage {
    pub(super) async fn list_buckets(&self, caller: &Caller) -> Result<Reply, Reply> {
        let mut tx = as_caller(&self.pool, caller).await?;
        let rows = sqlx::query(&format!(
            "SELECT {BUCKET_COLUMNS} FROM storage.buckets ORDER BY name"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(
            StatusCode::OK,
            Value::Array(rows.iter().map(bucket_json).collect()),
        ))
    }

    pub(super) async fn get_bucket(&self, caller: &Caller, id: &str) -> Result<Reply, Reply> {
        let mut tx = as_caller(&self.pool, caller).await?;
        let row = sqlx::query(&format!(
            "SELECT {BUCKET_COLUMNS} FROM storage.buckets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        row.map(|r| Reply::json(StatusCode::OK, bucket_json(&r)))
            .ok_or_else(|| error(404, "Bucket not found", "Bucket not found"))
    }

    pub(super) fn bucket_options(b: &Value) -> Result<BucketOptions, Reply> {
        let public = b["public"].as_bool();
        let limit = match &b["file_size_limit"] {
            Value::Null => None,
            Value::Number(n) => n.as_i64(),
            Value::String(s) => Some(parse_size(s).ok_or_else(|| {
                error(
                    400,
                    "InvalidRequest",
                    &format!("file_size_limit {s:?} is not a size"),
                )
            })?),
            _ => {
                return Err(error(
                    400,
                    "InvalidRequest",
                    "file_size_limit is a number of bytes",
                ));
            }
        };
        let mimes = match &b["allowed_mime_types"] {
            Value::Null => None,
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => return Err(error(400, "InvalidRequest", "allowed_mime_types is a list")),
        };
        Ok((public, limit, mimes))
    }

    pub(super) async fn create_bucket(&self, caller: &Caller, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let name = b["name"]
            .as_str()
            .or(b["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let id = b["id"].as_str().unwrap_or(&name).to_owned();
        if !valid_bucket(&id) {
            return Err(error(
                400,
                "InvalidBucketName",
                &format!("Bucket name invalid: {id:?}"),
            ));
        }
        let (public, limit, mimes) = Self::bucket_options(&b)?;
        let mut tx = as_caller(&self.pool, caller).await?;
        sqlx::query(
            "INSERT INTO storage.buckets (id, name, owner, public, file_size_limit, allowed_mime_types) \
             VALUES ($1, $2, nullif(current_setting('request.jwt.claims', true)::jsonb ->> 'sub', '')::uuid, $3, $4, $5)",
        )
        .bind(&id)
        .bind(&name)
        .bind(public.unwrap_or(false))
        .bind(limit)
        .bind(mimes)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(StatusCode::OK, json!({"name": id})))
    }

    pub(super) async fn update_bucket(
        &self,
        caller: &Caller,
        id: &str,
        body: &[u8],
    ) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let (public, limit, mimes) = Self::bucket_options(&b)?;
        let mut tx = as_caller(&self.pool, caller).await?;
        let n = sqlx::query(
            "UPDATE storage.buckets SET public = coalesce($2, public), file_size_limit = $3, \
             allowed_mime_types = $4, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(public)
        .bind(limit)
        .bind(mimes)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        tx.commit().await.map_err(internal)?;
        if n == 0 {
            return Err(error(404, "Bucket not found", "Bucket not found"));
        }
        Ok(Reply::json(
            StatusCode::OK,
            json!({"message": "Successfully updated"}),
        ))
    }

    pub(super) async fn empty_bucket(&self, caller: &Caller, id: &str) -> Result<Reply, Reply> {
        let mut tx = as_caller(&self.pool, caller).await?;
        let names: Vec<String> =
            sqlx::query_scalar("DELETE FROM storage.objects WHERE bucket_id = $1 RETURNING name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
        for n in &names {
            self.delete_bytes(id, n).await?;
        }
        tx.commit().await.map_err(internal)?;
        Ok(Reply::json(
            StatusCode::OK,
            json!({"message": "Successfully emptied"}),
        ))
    }

    pub(super) async fn delete_bucket(&self, caller: &Caller, id: &str) -> Result<Reply, Reply> {
        let mut tx = as_caller(&self.pool, caller).await?;
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM storage.objects WHERE bucket_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if left > 0 {
            return Err(error(
                409,
                "InvalidRequest",
                "The bucket you tried to delete is not empty",
            ));
        }
        let n = sqlx::query("DELETE FROM storage.buckets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(internal)?;
        if n == 0 {
            return Err(error(404, "Bucket not found", "Bucket not found"));
        }
        Ok(Reply::json(
            StatusCode::OK,
            json!({"message": "Successfully deleted"}),
        ))
    }
}
