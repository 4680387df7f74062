//! The Auth admin API (`/admin/users`, with the `service_role` or secret key): list users by
//! page, create one (its email, and phone, confirmed on request), get, update and delete one.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    Auth, Reply, USER_COLUMNS, body_json, checked_email, error, internal, user_by_id, user_json,
};

impl Auth {
    pub(super) async fn admin(
        &self,
        method: &Method,
        id: &str,
        query: &str,
        body: &[u8],
    ) -> Result<Reply, Reply> {
        match (method.clone(), id.is_empty()) {
            (Method::GET, true) => {
                let pairs = super::super::rest::query::pairs(query);
                let get = |k: &str| {
                    pairs
                        .iter()
                        .find(|(n, _)| n == k)
                        .and_then(|(_, v)| v.parse::<i64>().ok())
                };
                let per_page = get("per_page").unwrap_or(50).clamp(1, 1000);
                let page = get("page").unwrap_or(1).max(1);
                let rows = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM auth.users u WHERE u.deleted_at IS NULL ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2"
                ))
                .bind(per_page)
                .bind((page - 1) * per_page)
                .fetch_all(&self.pool)
                .await
                .map_err(internal)?;
                let total: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM auth.users WHERE deleted_at IS NULL")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(internal)?;
                Ok(Reply::json(
                    StatusCode::OK,
                    json!({"users": rows.iter().map(user_json).collect::<Vec<_>>(), "aud": "authenticated"}),
                )
                .header("x-total-count", &total.to_string()))
            }
            (Method::POST, true) => {
                let b = body_json(body)?;
                let email = checked_email(&b)?;
                let password = b["password"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| crate::secret::random_id(24));
                let user_meta = if b["user_metadata"].is_object() {
                    b["user_metadata"].clone()
                } else {
                    json!({})
                };
                let app_meta = if b["app_metadata"].is_object() {
                    b["app_metadata"].clone()
                } else {
                    json!({})
                };
                let confirmed = b["email_confirm"].as_bool().unwrap_or(false);
                let id = self
                    .create_user(&email, &password, &user_meta, &app_meta, confirmed)
                    .await?
                    .ok_or_else(|| {
                        error(
                            422,
                            "email_exists",
                            "A user with this email address has already been registered",
                        )
                    })?;
                if let Some(phone) = b["phone"].as_str().filter(|p| !p.is_empty()) {
                    let confirmed = b["phone_confirm"].as_bool().unwrap_or(false);
                    let set = sqlx::query("UPDATE auth.users SET phone = $2, phone_confirmed_at = CASE WHEN $3 THEN now() END WHERE id = CAST($1 AS uuid)")
                        .bind(&id)
                        .bind(phone.trim_start_matches('+'))
                        .bind(confirmed)
                        .execute(&self.pool)
                        .await;
                    if set.is_err() {
                        sqlx::query("DELETE FROM auth.users WHERE id = CAST($1 AS uuid)")
                            .bind(&id)
                            .execute(&self.pool)
                            .await
                            .map_err(internal)?;
                        return Err(error(
                            422,
                            "phone_exists",
                            "A user with this phone number has already been registered",
                        ));
                    }
                }
                let user = user_by_id(&self.pool, &id).await?.unwrap_or(Value::Null);
                Ok(Reply::json(StatusCode::OK, user))
            }
            (m, false) => {
                let uuid_ok =
                    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
                if !uuid_ok {
                    return Err(error(404, "user_not_found", "User not found"));
                }
                let found = user_by_id(&self.pool, id).await?;
                let Some(user) = found else {
                    return Err(error(404, "user_not_found", "User not found"));
                };
                match m {
                    Method::GET => Ok(Reply::json(StatusCode::OK, user)),
                    Method::PUT => {
                        let b = body_json(body)?;
                        self.apply_update(id, &b, true).await?;
                        Ok(Reply::json(
                            StatusCode::OK,
                            user_by_id(&self.pool, id).await?.unwrap_or(Value::Null),
                        ))
                    }
                    Method::DELETE => {
                        sqlx::query("DELETE FROM auth.users WHERE id = CAST($1 AS uuid)")
                            .bind(id)
                            .execute(&self.pool)
                            .await
                            .map_err(internal)?;
                        Ok(Reply::json(StatusCode::OK, json!({})))
                    }
                    _ => Err(error(405, "method_not_allowed", "Method not allowed")),
                }
            }
            _ => Err(error(405, "method_not_allowed", "Method not allowed")),
        }
    }
}
