//! An emulator of Supabase's API gateway in front of the stack's real Postgres and object
//! store: Auth (`/auth/v1`, [`auth`], its mails in the local [`inbox`]), REST (`/rest/v1`,
//! [`rest`], PostgREST's surface) and Storage (`/storage/v1`, [`storage`], its objects' bytes in the object store) on one
//! 127.0.0.1 port, with the project's keys ([`keys`]) and the roles, `auth` schema and
//! functions Supabase puts in a database ([`schema`]). Row-level security is Postgres's own:
//! each REST request runs as `anon`, `authenticated` or `service_role` with the caller's JWT
//! claims set, as on Supabase.

pub mod auth;
pub mod inbox;
pub mod keys;
pub mod rest;
pub mod schema;
pub mod storage;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::keys::{Keys, Role};
use crate::{Error, stack::native::postgres::PostgresEndpoint};

/// A reply of any surface: a status, headers and a JSON body (or none).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// A body that is not JSON (CSV).
    pub text: Option<(String, String)>,
    /// Bytes (a downloaded object), with their content type.
    pub raw: Option<(String, Vec<u8>)>,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            text: None,
            raw: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A body of raw bytes (a downloaded object).
    pub fn bytes(status: StatusCode, content_type: &str, data: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            text: None,
            raw: Some((content_type.to_owned(), data)),
        }
    }

    pub fn without_body(mut self) -> Reply {
        self.body = None;
        self.text = None;
        self.raw = None;
        self
    }

    /// `Accept: application/vnd.pgrst.object+json`: the one row as an object, or PostgREST's
    /// 406 when there is not exactly one.
    pub fn single(mut self) -> Result<Reply, Reply> {
        match self.body.take() {
            Some(Value::Array(mut rows)) if rows.len() == 1 => {
                self.body = rows.pop();
                Ok(self.header(
                    "content-type",
                    "application/vnd.pgrst.object+json; charset=utf-8",
                ))
            }
            Some(Value::Array(rows)) => Err(rest::error(
                406,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                Some(&format!("The result contains {} rows", rows.len())),
                None,
            )),
            other => {
                self.body = other;
                Ok(self)
            }
        }
    }

    /// `Accept: text/csv`: the rows as CSV, a header line first.
    pub fn csv(mut self) -> Reply {
        let Some(Value::Array(rows)) = &self.body else {
            return self;
        };
        let cols: Vec<String> = rows
            .first()
            .and_then(Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let cell = |v: &Value| {
            let s = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        };
        let mut out = cols.join(",");
        for r in rows {
            out.push('\n');
            out.push_str(
                &cols
                    .iter()
                    .map(|c| cell(&r[c]))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        self.text = Some(("text/csv; charset=utf-8".into(), out));
        self.body = None;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (ctype, body) = match (self.raw, self.text, self.body) {
            (Some((t, b)), _, _) => (Some(t), Body::from(b)),
            (None, Some((t, b)), _) => (Some(t), Body::from(b)),
            (None, None, Some(v)) => (
                Some("application/json; charset=utf-8".to_owned()),
                Body::from(v.to_string()),
            ),
            (None, None, None) => (None, Body::empty()),
        };
        let mut r = Response::new(body);
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        if let Some(t) = ctype
            && let Ok(v) = HeaderValue::from_str(&t)
        {
            h.insert("content-type", v);
        }
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                h.insert(k, v);
            }
        }
        cors(h);
        r
    }
}

/// CORS as Supabase's gateway answers it: any origin, the headers the clients send.
fn cors(h: &mut HeaderMap) {
    for (k, v) in [
        ("access-control-allow-origin", "*"),
        (
            "access-control-allow-headers",
            "authorization, x-client-info, apikey, content-type, prefer, range, accept-profile, content-profile, x-upsert, x-supabase-api-version, cache-control",
        ),
        (
            "access-control-allow-methods",
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        (
            "access-control-expose-headers",
            "content-range, content-location, x-total-count, x-supabase-api-version",
        ),
        ("access-control-max-age", "86400"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
}

/// How the emulator is set up.
#[derive(Clone)]
pub struct Config {
    /// The server, reached as a superuser (Supabase's `postgres`).
    pub postgres: PostgresEndpoint,
    /// The project's database.
    pub database: String,
    /// The port on 127.0.0.1 (0: a free one).
    pub port: u16,
    pub auth: auth::Settings,
    /// The object store and the bucket that holds Storage's bytes; without it, Storage
    /// answers 404.
    pub storage: Option<(crate::stack::S3Endpoint, String)>,
}

struct Shared {
    keys: Keys,
    auth: auth::Auth,
    storage: Option<storage::Storage>,
    pool: sqlx::PgPool,
    schema: rest::SchemaCache,
}

/// A running emulator.
pub struct Supabase {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    closed: CancellationToken,
}

impl Supabase {
    /// Installs Supabase's roles and `auth` schema into the database and serves the gateway
    /// on 127.0.0.1.
    pub async fn start(cfg: Config) -> Result<Supabase, Error> {
        // No ping before each request's connection (PostgREST sends none either): a broken
        // one fails its request and leaves the pool.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .connect_with(cfg.postgres.connect_options().database(&cfg.database))
            .await
            .map_err(|e| Error::Other(format!("the Supabase emulator's database: {e}")))?;
        schema::install(&pool).await.map_err(Error::Other)?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], cfg.port)))
            .await
            .map_err(|e| Error::io(format!("bind 127.0.0.1:{}", cfg.port), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read local address", e))?;
        let keys = Keys::generate(&format!("http://127.0.0.1:{}", addr.port()));
        let keys = if cfg.auth.asymmetric_keys {
            keys.with_signing_key()
        } else {
            keys
        };
        let closed = CancellationToken::new();
        let storage = match &cfg.storage {
            Some((endpoint, backing)) => {
                let s3 = endpoint.client();
                // The backing bucket: the scenario's (it exists), or one made for it.
                if s3.head_bucket().bucket(backing).send().await.is_err() {
                    s3.create_bucket()
                        .bucket(backing)
                        .send()
                        .await
                        .map_err(|e| {
                            Error::Other(format!(
                                "the Supabase emulator's storage bucket {backing}: {}",
                                crate::run::stores::sdk_error(&e)
                            ))
                        })?;
                }
                Some(storage::Storage {
                    pool: pool.clone(),
                    keys: keys.clone(),
                    s3,
                    backing: backing.clone(),
                    max_upload: 50 << 20,
                })
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            storage,
            auth: auth::Auth {
                pool: pool.clone(),
                keys: keys.clone(),
                settings: cfg.auth.clone(),
                inbox: Arc::default(),
            },
            keys,
            pool,
            schema: rest::SchemaCache::default(),
        });
        // The schema cache empties when the database's schema changes.
        let mut ddl = sqlx::postgres::PgListener::connect_with(&shared.pool)
            .await
            .map_err(|e| Error::Other(format!("the Supabase emulator's schema listener: {e}")))?;
        ddl.listen("pgrst")
            .await
            .map_err(|e| Error::Other(format!("the Supabase emulator's schema listener: {e}")))?;
        let watched = Arc::downgrade(&shared);
        let stop_listening = closed.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = ddl.try_recv() => n,
                    () = stop_listening.cancelled() => return,
                };
                let Some(shared) = watched.upgrade() else {
                    return;
                };
                // A notification, or a lost connection (missed notifications): start over.
                shared.schema.clear();
                if next.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        });
        let app = Router::new()
            .fallback(gateway)
            .with_state(Arc::clone(&shared));
        let stop = closed.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(Supabase {
            shared,
            addr,
            closed,
        })
    }

    /// The project URL the clients are given (`createClient(url, key)`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// Stops serving; the database keeps its data.
    pub async fn shutdown(&self) {
        self.closed.cancel();
        self.shared.pool.close().await;
    }
}

impl Drop for Supabase {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// The gateway's 401s, worded as Supabase's.
fn key_error(message: &str, hint: &str) -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        json!({"message": message, "hint": hint}),
    )
}

async fn gateway(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    if method == Method::OPTIONS {
        return Reply::json(StatusCode::OK, Value::Null).without_body();
    }
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    // The local inbox takes no key, as Mailpit takes none; nor does the link a mail holds,
    // which a browser opens by URL alone.
    if let Some(rest) = path.strip_prefix("/inbox/") {
        return s.auth.inbox.serve(&method, rest, query);
    }
    // Supabase's gateway leaves these Auth routes open too: the JWKS, which the project's
    // own services fetch to verify tokens.
    if method == Method::GET && path == "/auth/v1/.well-known/jwks.json" {
        return Reply::json(StatusCode::OK, s.keys.jwks());
    }
    if method == Method::GET && path == "/auth/v1/verify" && headers.get("apikey").is_none() {
        return s
            .auth
            .serve(&method, "verify", query, &headers, &body, Role::Anon)
            .await;
    }
    // What a browser fetches by URL alone: a public object, and a signed URL (its token
    // is the credential), as Supabase's gateway lets them through without a key.
    if let Some(rest_of) = path.strip_prefix("/storage/v1/")
        && ((method == Method::GET || method == Method::HEAD)
            && (rest_of.starts_with("object/public/") || rest_of.starts_with("object/sign/"))
            || method == Method::PUT && rest_of.starts_with("object/upload/sign/"))
        && headers.get("apikey").is_none()
    {
        let Some(storage) = &s.storage else {
            return storage::error(
                404,
                "not_found",
                "this emulator has no object store for Storage",
            );
        };
        let anon = rest::Caller {
            role: Role::Anon,
            claims: json!({"role": "anon"}),
        };
        return storage
            .serve(&method, rest_of, query, &headers, &body, anon)
            .await;
    }
    let key = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            rest::query::pairs(query)
                .into_iter()
                .find(|(k, _)| k == "apikey")
                .map(|(_, v)| v)
        });
    let Some(key) = key else {
        return key_error(
            "No API key found in request",
            "No `apikey` request header or url param was found.",
        );
    };
    let Some(key_role) = s.keys.role_of_key(&key) else {
        return key_error(
            "Invalid API key",
            "Double check your Supabase `anon` or `service_role` API key.",
        );
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    if let Some(rest) = path.strip_prefix("/auth/v1/") {
        // Admin calls carry the secret key (or the service_role JWT) as the bearer too.
        let role = match bearer.as_deref().map(|b| (s.keys.role_of_key(b), b)) {
            Some((Some(r), _)) => r,
            Some((None, token)) => match s.keys.verify(token) {
                Ok(c) if c["role"] == "service_role" => Role::ServiceRole,
                _ => Role::Anon,
            },
            None => key_role,
        };
        let role = if key_role == Role::ServiceRole {
            Role::ServiceRole
        } else {
            role
        };
        return s
            .auth
            .serve(&method, rest, query, &headers, &body, role)
            .await;
    }
    if let Some(rest_of) = path.strip_prefix("/storage/v1/") {
        let Some(storage) = &s.storage else {
            return storage::error(
                404,
                "not_found",
                "this emulator has no object store for Storage",
            );
        };
        let caller = match caller(&s.keys, key_role, bearer.as_deref()) {
            Ok(c) => c,
            Err(r) => {
                return storage::error(r.status.as_u16(), "InvalidJWT", "invalid JWT");
            }
        };
        return storage
            .serve(&method, rest_of, query, &headers, &body, caller)
            .await;
    }
    if let Some(resource) = path.strip_prefix("/rest/v1") {
        let caller = match caller(&s.keys, key_role, bearer.as_deref()) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let resource = rest::query::decode(resource.trim_start_matches('/'));
        return rest::serve(
            &s.pool, &s.schema, caller, method, &resource, query, &headers, &body,
        )
        .await;
    }
    Reply::json(
        StatusCode::NOT_FOUND,
        json!({"message": "no Route matched with those values"}),
    )
}

/// The REST caller: the role and claims of the bearer token (an API key, or a JWT signed
/// with the project's secret), else of the API key.
fn caller(keys: &Keys, key_role: Role, bearer: Option<&str>) -> Result<rest::Caller, Reply> {
    let token = match bearer {
        None => {
            return Ok(rest::Caller {
                role: key_role,
                claims: json!({"role": key_role.name()}),
            });
        }
        Some(t) => t,
    };
    if let Some(r) = keys.role_of_key(token)
        && !token.contains('.')
    {
        return Ok(rest::Caller {
            role: r,
            claims: json!({"role": r.name()}),
        });
    }
    let claims = keys.verify(token).map_err(|e| {
        rest::error(401, e.code(), &e.message(), None, None).header(
            "www-authenticate",
            &format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.message()
            ),
        )
    })?;
    let role = claims["role"].as_str().unwrap_or("anon");
    let Some(role) = Role::from_name(role) else {
        return Err(rest::error(
            401,
            "PGRST301",
            &format!(
                "the JWT's role {role:?} is not one a request may take (anon, authenticated, service_role)"
            ),
            None,
            None,
        ));
    };
    Ok(rest::Caller { role, claims })
}
