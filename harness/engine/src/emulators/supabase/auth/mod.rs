//! The Auth surface (`/auth/v1`), GoTrue's as the official clients call it: sign-up, the
//! password and refresh-token grants (refresh tokens rotate; a spent one is accepted again
//! only within the reuse interval, after which its whole session is revoked), the user,
//! logout by scope, settings, the admin users API ([`admin`]), and the email flows of [`otp`]
//! (confirmation, magic links and codes, recovery) through the local inbox. Users, identities, sessions and
//! refresh tokens live in `auth.*` tables of the database, passwords as bcrypt hashes
//! (pgcrypto's `crypt`).

mod admin;
mod otp;

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use super::{
    Reply,
    keys::{Keys, Role},
};

/// How Auth behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lifetime of an access token.
    pub jwt_expiry: Duration,
    /// How long a spent refresh token is accepted again (Supabase's default: 10 s).
    pub reuse_interval: Duration,
    /// Shortest password accepted.
    pub min_password: usize,
    /// Whether a new address must be confirmed (by the mailed link or code) before its
    /// user can sign in with a password; off by default, as `supabase start` has it.
    pub confirm_email: bool,
    /// How long a mailed code or link works (Supabase's default: an hour).
    pub otp_expiry: Duration,
    /// Where a mailed link sends the browser when it names no (allowed) `redirect_to`.
    pub site_url: String,
    /// Sign user tokens with an asymmetric (ES256) key served at
    /// `/auth/v1/.well-known/jwks.json`, as newer Supabase projects do; off: HS256 with the
    /// JWT secret, as the legacy keys are.
    pub asymmetric_keys: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            jwt_expiry: Duration::from_secs(3600),
            reuse_interval: Duration::from_secs(10),
            min_password: 6,
            confirm_email: false,
            otp_expiry: Duration::from_secs(3600),
            site_url: "http://127.0.0.1:3000".into(),
            asymmetric_keys: false,
        }
    }
}

/// GoTrue's error body: `{code, error_code, msg}`.
pub fn error(status: u16, error_code: &str, msg: &str) -> Reply {
    Reply::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"code": status, "error_code": error_code, "msg": msg}),
    )
}

fn internal(e: impl std::fmt::Display) -> Reply {
    error(500, "unexpected_failure", &format!("Database error: {e}"))
}

/// The columns a user's JSON is made of.
const USER_COLUMNS: &str = "u.id::text AS id, u.aud::text AS aud, u.role::text AS role, \
    coalesce(u.email, '')::text AS email, to_json(u.email_confirmed_at) #>> '{}' AS email_confirmed_at, \
    coalesce(u.phone, '') AS phone, to_json(u.last_sign_in_at) #>> '{}' AS last_sign_in_at, \
    u.raw_app_meta_data, u.raw_user_meta_data, to_json(u.created_at) #>> '{}' AS created_at, \
    to_json(u.updated_at) #>> '{}' AS updated_at, u.is_anonymous, \
    coalesce((SELECT json_agg(json_build_object('identity_id', i.id, 'id', i.provider_id, \
        'user_id', i.user_id, 'identity_data', i.identity_data, 'provider', i.provider, \
        'last_sign_in_at', i.last_sign_in_at, 'created_at', i.created_at, \
        'updated_at', i.updated_at, 'email', i.email)) FROM auth.identities i \
        WHERE i.user_id = u.id), '[]'::json) AS identities";

fn ts(row: &sqlx::postgres::PgRow, col: &str) -> Value {
    row.try_get::<Option<String>, _>(col)
        .ok()
        .flatten()
        .map_or(Value::Null, Value::String)
}

/// A user as GoTrue serialises one.
fn user_json(row: &sqlx::postgres::PgRow) -> Value {
    let confirmed = ts(row, "email_confirmed_at");
    json!({
        "id": row.get::<String, _>("id"),
        "aud": row.get::<String, _>("aud"),
        "role": row.get::<String, _>("role"),
        "email": row.get::<String, _>("email"),
        "email_confirmed_at": confirmed,
        "phone": row.get::<String, _>("phone"),
        "confirmed_at": confirmed,
        "last_sign_in_at": ts(row, "last_sign_in_at"),
        "app_metadata": row.get::<Value, _>("raw_app_meta_data"),
        "user_metadata": row.get::<Value, _>("raw_user_meta_data"),
        "identities": row.get::<Value, _>("identities"),
        "created_at": ts(row, "created_at"),
        "updated_at": ts(row, "updated_at"),
        "is_anonymous": row.get::<bool, _>("is_anonymous"),
    })
}

async fn user_by_id(pool: &PgPool, id: &str) -> Result<Option<Value>, Reply> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM auth.users u WHERE u.id = CAST($1 AS uuid)"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(internal)?;
    Ok(row.as_ref().map(user_json))
}

/// The Auth surface of one project.
pub struct Auth {
    pub pool: PgPool,
    pub keys: Keys,
    pub settings: Settings,
    pub inbox: Arc<super::inbox::Inbox>,
}

fn body_json(body: &[u8]) -> Result<Value, Reply> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|_| error(400, "bad_json", "Could not parse request body as JSON"))
}

/// A body's `email`, trimmed and lower-cased as GoTrue keeps addresses (empty when absent).
fn email_in(b: &Value) -> String {
    b["email"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}

/// A body's `email`, which must be an address (400 `validation_failed` otherwise).
fn checked_email(b: &Value) -> Result<String, Reply> {
    let email = email_in(b);
    if valid_email(&email) {
        Ok(email)
    } else {
        Err(error(
            400,
            "validation_failed",
            "Unable to validate email address: invalid format",
        ))
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !e.contains(char::is_whitespace)
}

impl Auth {
    /// Serves `/auth/v1/{rest}`; `role` is what the request's key or token stands for, and
    /// `bearer` the token of its `Authorization` header.
    pub async fn serve(
        &self,
        method: &Method,
        rest: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
        role: Role,
    ) -> Reply {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::to_owned);
        let result = match (method.clone(), rest) {
            (Method::GET, "settings") => Ok(self.settings_json()),
            (Method::GET, "health") => Ok(Reply::json(
                StatusCode::OK,
                json!({"version": "harness", "name": "GoTrue", "description": "harness's emulation of Supabase Auth"}),
            )),
            (Method::POST, "signup") => self.signup(query, body).await,
            (Method::POST, "otp" | "magiclink") => self.otp(query, body).await,
            (Method::POST, "recover") => self.recover(query, body).await,
            (Method::POST, "resend") => self.resend(query, body).await,
            (Method::POST, "verify") => self.verify_post(body).await,
            (Method::GET, "verify") => Ok(self.verify_get(query).await),
            (Method::POST, "token") => self.token(query, body).await,
            (Method::GET, "user") => self.get_user(bearer.as_deref()).await,
            (Method::PUT, "user") => self.update_user(bearer.as_deref(), body).await,
            (Method::POST, "logout") => self.logout(bearer.as_deref(), query).await,
            (m, path) if path == "admin/users" || path.starts_with("admin/users/") => {
                if role != Role::ServiceRole {
                    Err(error(403, "not_admin", "User not allowed"))
                } else {
                    self.admin(
                        &m,
                        path.strip_prefix("admin/users")
                            .unwrap_or_default()
                            .trim_start_matches('/'),
                        query,
                        body,
                    )
                    .await
                }
            }
            (Method::GET, ".well-known/jwks.json") => {
                Ok(Reply::json(StatusCode::OK, self.keys.jwks()))
            }
            _ => Err(error(
                404,
                "not_found",
                &format!("Unhandled path: {method} /auth/v1/{rest}"),
            )),
        };
        match result {
            Ok(r) | Err(r) => r,
        }
    }

    fn settings_json(&self) -> Reply {
        Reply::json(
            StatusCode::OK,
            json!({
                "external": {"anonymous_users": false, "email": true, "phone": false},
                "disable_signup": false,
                "mailer_autoconfirm": !self.settings.confirm_email,
                "phone_autoconfirm": false,
                "sms_provider": "",
                "saml_enabled": false,
            }),
        )
    }

    async fn signup(&self, query: &str, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let email = email_in(&b);
        let password = b["password"].as_str().unwrap_or_default();
        if email.is_empty() {
            return Err(error(
                422,
                "validation_failed",
                "Signup requires a valid password",
            ));
        }
        if !valid_email(&email) {
            return Err(error(
                400,
                "validation_failed",
                "Unable to validate email address: invalid format",
            ));
        }
        if password.chars().count() < self.settings.min_password {
            let mut r = json!({"code": 422, "error_code": "weak_password", "msg": format!("Password should be at least {} characters.", self.settings.min_password)});
            r["weak_password"] = json!({"reasons": ["length"]});
            return Err(Reply::json(StatusCode::UNPROCESSABLE_ENTITY, r));
        }
        let data = match &b["data"] {
            Value::Null => json!({}),
            Value::Object(_) => b["data"].clone(),
            _ => return Err(error(400, "validation_failed", "`data` is a JSON object")),
        };
        let confirmed = !self.settings.confirm_email;
        let id = self
            .create_user(&email, password, &data, &json!({}), confirmed)
            .await?;
        let Some(id) = id else {
            return Err(error(422, "user_already_exists", "User already registered"));
        };
        if !confirmed {
            // No session until the address is confirmed: the user, and a mail.
            let redirect = super::rest::query::pairs(query)
                .into_iter()
                .find(|(k, _)| k == "redirect_to")
                .map(|(_, v)| v);
            self.send_token(&id, &email, otp::Purpose::Signup, redirect.as_deref())
                .await?;
            let user = user_by_id(&self.pool, &id).await?.unwrap_or(Value::Null);
            return Ok(Reply::json(StatusCode::OK, user));
        }
        self.session_for(&id)
            .await
            .map(|s| Reply::json(StatusCode::OK, s))
    }

    /// Creates a user with an email identity; `None` when the email is taken.
    async fn create_user(
        &self,
        email: &str,
        password: &str,
        user_meta: &Value,
        app_meta: &Value,
        confirmed: bool,
    ) -> Result<Option<String>, Reply> {
        let mut app = json!({"provider": "email", "providers": ["email"]});
        if let (Some(a), Some(extra)) = (app.as_object_mut(), app_meta.as_object()) {
            for (k, v) in extra {
                a.insert(k.clone(), v.clone());
            }
        }
        let row = sqlx::query(
            "WITH u AS (INSERT INTO auth.users (email, encrypted_password, email_confirmed_at, \
             raw_app_meta_data, raw_user_meta_data) \
             VALUES ($1, crypt($2, gen_salt('bf')), CASE WHEN $5 THEN now() END, $3, $4) \
             ON CONFLICT DO NOTHING RETURNING id, email) \
             INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at) \
             SELECT id::text, id, json_build_object('sub', id::text, 'email', email, 'email_verified', $5, 'phone_verified', false), 'email', now() FROM u \
             RETURNING user_id::text",
        )
        .bind(email)
        .bind(password)
        .bind(&app)
        .bind(user_meta)
        .bind(confirmed)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// A new session for the user: an access token and its first refresh token.
    async fn session_for(&self, user_id: &str) -> Result<Value, Reply> {
        self.session_with(user_id, "password").await
    }

    /// A new session, signed in by `method` (the access token's `amr`).
    async fn session_with(&self, user_id: &str, method: &str) -> Result<Value, Reply> {
        let session: String = sqlx::query_scalar(
            "WITH s AS (INSERT INTO auth.sessions (user_id) VALUES (CAST($1 AS uuid)) RETURNING id) \
             , touched AS (UPDATE auth.users SET last_sign_in_at = now() WHERE id = CAST($1 AS uuid)) \
             SELECT id::text FROM s",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)?;
        self.issue(user_id, &session, None, method).await
    }

    /// An access token and a fresh refresh token of `session` (the child of `parent`).
    async fn issue(
        &self,
        user_id: &str,
        session: &str,
        parent: Option<&str>,
        method: &str,
    ) -> Result<Value, Reply> {
        let refresh = crate::secret::random_id(22);
        sqlx::query(
            "INSERT INTO auth.refresh_tokens (token, user_id, parent, session_id) VALUES ($1, $2, $3, CAST($4 AS uuid))",
        )
        .bind(&refresh)
        .bind(user_id)
        .bind(parent)
        .bind(session)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        sqlx::query("UPDATE auth.sessions SET refreshed_at = now(), updated_at = now() WHERE id = CAST($1 AS uuid)")
            .bind(session)
            .execute(&self.pool)
            .await
            .map_err(internal)?;
        let user = user_by_id(&self.pool, user_id)
            .await?
            .ok_or_else(|| error(404, "user_not_found", "User not found"))?;
        let now = chrono::Utc::now().timestamp();
        let exp = now + self.settings.jwt_expiry.as_secs() as i64;
        let claims = json!({
            "iss": self.keys.issuer,
            "sub": user_id,
            "aud": "authenticated",
            "exp": exp,
            "iat": now,
            "email": user["email"],
            "phone": user["phone"],
            "app_metadata": user["app_metadata"],
            "user_metadata": user["user_metadata"],
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": method, "timestamp": now}],
            "session_id": session,
            "is_anonymous": false,
        });
        Ok(json!({
            "access_token": self.keys.sign_user(&claims),
            "token_type": "bearer",
            "expires_in": self.settings.jwt_expiry.as_secs(),
            "expires_at": exp,
            "refresh_token": refresh,
            "user": user,
        }))
    }

    async fn token(&self, query: &str, body: &[u8]) -> Result<Reply, Reply> {
        let grant = super::rest::query::pairs(query)
            .into_iter()
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let b = body_json(body)?;
        match grant.as_str() {
            "password" => {
                let email = email_in(&b);
                let password = b["password"].as_str().unwrap_or_default();
                let id: Option<(String, bool)> = sqlx::query_as(
                    "SELECT id::text, email_confirmed_at IS NOT NULL FROM auth.users WHERE lower(email) = $1 AND deleted_at IS NULL \
                     AND encrypted_password = crypt($2, encrypted_password)",
                )
                .bind(&email)
                .bind(password)
                .fetch_optional(&self.pool)
                .await
                .map_err(internal)?;
                let Some((id, confirmed)) = id else {
                    return Err(error(
                        400,
                        "invalid_credentials",
                        "Invalid login credentials",
                    ));
                };
                if !confirmed && self.settings.confirm_email {
                    return Err(error(400, "email_not_confirmed", "Email not confirmed"));
                }
                self.session_for(&id)
                    .await
                    .map(|s| Reply::json(StatusCode::OK, s))
            }
            "refresh_token" => {
                let token = b["refresh_token"].as_str().unwrap_or_default();
                self.refresh(token)
                    .await
                    .map(|s| Reply::json(StatusCode::OK, s))
            }
            "" => Err(error(400, "validation_failed", "unsupported_grant_type")),
            other => Err(error(
                400,
                "validation_failed",
                &format!("unsupported_grant_type: {other}"),
            )),
        }
    }

    /// The refresh-token grant: the token is spent and its child issued. A spent token
    /// comes back within the reuse interval with the session's current token; after it,
    /// the session is revoked (someone else holds the family).
    async fn refresh(&self, token: &str) -> Result<Value, Reply> {
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let row = sqlx::query(
            "SELECT user_id, revoked, session_id::text, extract(epoch FROM now() - updated_at)::float8 \
             FROM auth.refresh_tokens WHERE token = $1 FOR UPDATE",
        )
        .bind(token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(internal)?;
        let Some(row) = row else {
            return Err(error(
                400,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            ));
        };
        let (user, revoked, session, age): (String, bool, Option<String>, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let Some(session) = session else {
            return Err(error(
                400,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            ));
        };
        if revoked {
            if age <= self.settings.reuse_interval.as_secs_f64() {
                // The session's current token stands: its child is issued again.
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT token FROM auth.refresh_tokens WHERE session_id = CAST($1 AS uuid) AND NOT revoked ORDER BY id DESC LIMIT 1",
                )
                .bind(&session)
                .fetch_optional(&mut *tx)
                .await
                .map_err(internal)?;
                tx.commit().await.map_err(internal)?;
                if let Some(current) = current {
                    return Box::pin(self.refresh(&current)).await;
                }
                return Err(error(
                    400,
                    "refresh_token_already_used",
                    "Invalid Refresh Token: Already Used",
                ));
            }
            sqlx::query("DELETE FROM auth.sessions WHERE id = CAST($1 AS uuid)")
                .bind(&session)
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
            return Err(error(
                400,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ));
        }
        sqlx::query(
            "UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE token = $1",
        )
        .bind(token)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        self.issue(&user, &session, Some(token), "password").await
    }

    /// The user a bearer access token stands for, with its session still alive.
    async fn authenticated(&self, bearer: Option<&str>) -> Result<(String, String), Reply> {
        let token = bearer.ok_or_else(|| {
            error(
                401,
                "no_authorization",
                "This endpoint requires a Bearer token",
            )
        })?;
        let claims = self.keys.verify(token).map_err(|e| {
            error(
                403,
                "bad_jwt",
                &format!(
                    "invalid JWT: unable to parse or verify signature, {}",
                    e.message()
                ),
            )
        })?;
        let (Some(sub), Some(session)) = (claims["sub"].as_str(), claims["session_id"].as_str())
        else {
            return Err(error(
                403,
                "bad_jwt",
                "invalid claim: missing sub or session_id claim",
            ));
        };
        if claims["aud"] != "authenticated" {
            return Err(error(
                403,
                "bad_jwt",
                "invalid claim: aud is not authenticated",
            ));
        }
        let alive: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM auth.sessions WHERE id = CAST($1 AS uuid) AND user_id = CAST($2 AS uuid))",
        )
        .bind(session)
        .bind(sub)
        .fetch_one(&self.pool)
        .await
        .map_err(|_| error(403, "bad_jwt", "invalid claim: sub or session_id is not a UUID"))?;
        if !alive {
            return Err(error(
                403,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ));
        }
        Ok((sub.to_owned(), session.to_owned()))
    }

    async fn get_user(&self, bearer: Option<&str>) -> Result<Reply, Reply> {
        let (id, _) = self.authenticated(bearer).await?;
        let user = user_by_id(&self.pool, &id).await?.ok_or_else(|| {
            error(
                404,
                "user_not_found",
                "User from sub claim in JWT does not exist",
            )
        })?;
        Ok(Reply::json(StatusCode::OK, user))
    }

    async fn update_user(&self, bearer: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
        let (id, _) = self.authenticated(bearer).await?;
        let b = body_json(body)?;
        self.apply_update(&id, &b, false).await?;
        let user = user_by_id(&self.pool, &id)
            .await?
            .ok_or_else(|| error(404, "user_not_found", "User not found"))?;
        Ok(Reply::json(StatusCode::OK, user))
    }

    /// `data` (merged into the user's metadata), `password`, `email`; for an admin also
    /// `app_metadata` and `user_metadata`.
    async fn apply_update(&self, id: &str, b: &Value, admin: bool) -> Result<(), Reply> {
        let user_meta = if admin {
            &b["user_metadata"]
        } else {
            &b["data"]
        };
        if !user_meta.is_null() {
            if !user_meta.is_object() {
                return Err(error(
                    400,
                    "validation_failed",
                    "user metadata is a JSON object",
                ));
            }
            sqlx::query("UPDATE auth.users SET raw_user_meta_data = raw_user_meta_data || $2, updated_at = now() WHERE id = CAST($1 AS uuid)")
                .bind(id)
                .bind(user_meta)
                .execute(&self.pool)
                .await
                .map_err(internal)?;
        }
        if admin && b["app_metadata"].is_object() {
            sqlx::query("UPDATE auth.users SET raw_app_meta_data = raw_app_meta_data || $2, updated_at = now() WHERE id = CAST($1 AS uuid)")
                .bind(id)
                .bind(&b["app_metadata"])
                .execute(&self.pool)
                .await
                .map_err(internal)?;
        }
        if let Some(p) = b["password"].as_str() {
            if p.chars().count() < self.settings.min_password {
                return Err(error(
                    422,
                    "weak_password",
                    &format!(
                        "Password should be at least {} characters.",
                        self.settings.min_password
                    ),
                ));
            }
            sqlx::query("UPDATE auth.users SET encrypted_password = crypt($2, gen_salt('bf')), updated_at = now() WHERE id = CAST($1 AS uuid)")
                .bind(id)
                .bind(p)
                .execute(&self.pool)
                .await
                .map_err(internal)?;
        }
        if let Some(e) = b["email"].as_str() {
            let e = e.trim().to_lowercase();
            if !valid_email(&e) {
                return Err(error(
                    400,
                    "validation_failed",
                    "Unable to validate email address: invalid format",
                ));
            }
            sqlx::query(
                "UPDATE auth.users SET email = $2, updated_at = now() WHERE id = CAST($1 AS uuid)",
            )
            .bind(id)
            .bind(&e)
            .execute(&self.pool)
            .await
            .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
                Some(c) if c == "23505" => error(
                    422,
                    "email_exists",
                    "A user with this email address has already been registered",
                ),
                _ => internal(e),
            })?;
        }
        Ok(())
    }

    async fn logout(&self, bearer: Option<&str>, query: &str) -> Result<Reply, Reply> {
        let (user, session) = self.authenticated(bearer).await?;
        let scope = super::rest::query::pairs(query)
            .into_iter()
            .find(|(k, _)| k == "scope")
            .map_or_else(|| "global".to_owned(), |(_, v)| v);
        let statement = match scope.as_str() {
            "global" => "DELETE FROM auth.sessions WHERE user_id = CAST($1 AS uuid) AND $2 <> ''",
            "local" => {
                "DELETE FROM auth.sessions WHERE user_id = CAST($1 AS uuid) AND id = CAST($2 AS uuid)"
            }
            "others" => {
                "DELETE FROM auth.sessions WHERE user_id = CAST($1 AS uuid) AND id <> CAST($2 AS uuid)"
            }
            other => {
                return Err(error(
                    400,
                    "validation_failed",
                    &format!("unsupported logout scope {other:?}"),
                ));
            }
        };
        sqlx::query(statement)
            .bind(&user)
            .bind(&session)
            .execute(&self.pool)
            .await
            .map_err(internal)?;
        Ok(Reply::json(StatusCode::NO_CONTENT, Value::Null).without_body())
    }
}
