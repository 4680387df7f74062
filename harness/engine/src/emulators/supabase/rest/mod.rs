//! The REST surface (`/rest/v1`), PostgREST's as supabase-js and supabase-py call it, over
//! the live schema of the database: every request is one transaction that takes the
//! caller's role (`SET LOCAL ROLE anon | authenticated | service_role`) with its JWT claims
//! in `request.jwt.claims`, so Postgres's row-level security decides what the caller sees;
//! the emulator only builds the statement, from quoted names and quoted values, and sends
//! it with the caller's settings in one round trip ([`session`]).

pub mod query;
mod rpc;
mod session;
pub mod sql;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};

use self::{
    query::{Item, Query},
    session::Session,
    sql::{BuildError, Builder, Embed, Table},
};
use super::{Reply, keys::Role};
use crate::run::stores::quote_ident;

/// The exposed schema.
const SCHEMA: &str = "public";

/// Who is calling, as the gateway decided.
pub struct Caller {
    pub role: Role,
    pub claims: Value,
}

/// A PostgREST-shaped error reply.
pub fn error(
    status: u16,
    code: &str,
    message: &str,
    details: Option<&str>,
    hint: Option<&str>,
) -> Reply {
    Reply::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"code": code, "details": details, "hint": hint, "message": message}),
    )
}

impl From<BuildError> for Reply {
    fn from(e: BuildError) -> Reply {
        error(
            e.status,
            &e.code,
            &e.message,
            e.details.as_deref(),
            e.hint.as_deref(),
        )
    }
}

impl From<query::ParseError> for Reply {
    fn from(e: query::ParseError) -> Reply {
        error(400, "PGRST100", &e.message, Some(&e.details), None)
    }
}

/// A database error as PostgREST answers it: its SQLSTATE as `code`, with PostgREST's
/// statuses.
pub(super) fn db_error(e: sqlx::Error, role: Role) -> Reply {
    let Some(db) = e.as_database_error() else {
        return error(
            503,
            "PGRST000",
            &format!("database unavailable: {e}"),
            None,
            None,
        );
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
    let (details, hint) = (
        pg.and_then(|p| p.detail().map(str::to_owned)),
        pg.and_then(|p| p.hint().map(str::to_owned)),
    );
    let status = match code.as_str() {
        "23505" | "23503" | "23P01" => 409,
        "42501" if role == Role::Anon => 401,
        "42501" => 403,
        "42P01" | "42883" => 404,
        "P0001" | "23502" | "23514" | "22P02" | "22007" | "22008" | "22003" | "42703" | "42804"
        | "42601" | "21000" => 400,
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") => 503,
        _ => 400,
    };
    error(
        status,
        &code,
        db.message(),
        details.as_deref(),
        hint.as_deref(),
    )
}

/// The table `name` of the exposed schema, as the catalog has it now (the schema is read
/// on every request, so a migration shows at once).
async fn table(conn: &mut PgConnection, name: &str) -> Result<Option<Table>, sqlx::Error> {
    let qualified = format!("{}.{}", quote_ident(SCHEMA), quote_ident(name));
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
         FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
         AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let primary_key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
    )
    .bind(&qualified)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Table {
        schema: SCHEMA.into(),
        name: name.into(),
        columns: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        primary_key,
    }))
}

/// Each item's embedded resource, resolved through the foreign keys between `t` and it
/// (in either direction; a hint names the constraint or a column of it).
fn plan<'a>(
    conn: &'a mut PgConnection,
    t: &'a Table,
    items: &'a [Item],
) -> futures::future::BoxFuture<'a, Result<Vec<Option<Embed>>, Reply>> {
    Box::pin(async move {
        let mut out = Vec::new();
        for item in items {
            let Item::Embed {
                name,
                hint,
                inner,
                items: inner_items,
                ..
            } = item
            else {
                out.push(None);
                continue;
            };
            let Some(other) = table(conn, name)
                .await
                .map_err(|e| db_error(e, Role::ServiceRole))?
            else {
                return Err(error(
                    400,
                    "PGRST200",
                    &format!(
                        "Could not find a relationship between '{}' and '{name}' in the schema cache",
                        t.name
                    ),
                    None,
                    Some(&format!("'{name}' is not a table of the schema")),
                ));
            };
            let rows = sqlx::query(
                "SELECT c.conname::text, (SELECT relname::text FROM pg_class WHERE oid = c.conrelid), \
                 (SELECT relname::text FROM pg_class WHERE oid = c.confrelid), \
                 array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), \
                 array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) \
                       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) \
                 FROM pg_constraint c WHERE c.contype = 'f' AND \
                 ((c.conrelid = to_regclass($1) AND c.confrelid = to_regclass($2)) OR \
                  (c.conrelid = to_regclass($2) AND c.confrelid = to_regclass($1)))",
            )
            .bind(t.qualified())
            .bind(other.qualified())
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(e, Role::ServiceRole))?;
            // (constraint, one-to-many, join, the key's columns)
            type Relation = (String, bool, Vec<(String, String)>, Vec<String>);
            let mut rels: Vec<Relation> = Vec::new();
            for r in &rows {
                let (con, from, _to, from_cols, to_cols): (
                    String,
                    String,
                    String,
                    Vec<String>,
                    Vec<String>,
                ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                if from == t.name {
                    // Many-to-one: the outer rows hold the key.
                    let on = to_cols
                        .iter()
                        .cloned()
                        .zip(from_cols.iter().cloned())
                        .collect();
                    rels.push((con.clone(), false, on, from_cols.clone()));
                }
                if from == other.name && other.name != t.name {
                    // One-to-many: the embedded rows hold the key.
                    let on = from_cols
                        .iter()
                        .cloned()
                        .zip(to_cols.iter().cloned())
                        .collect();
                    rels.push((con, true, on, from_cols));
                }
            }
            if let Some(h) = hint {
                rels.retain(|(con, _, _, cols)| con == h || cols.contains(h));
            }
            let (many, on) = match rels.len() {
                0 => {
                    return Err(error(
                        400,
                        "PGRST200",
                        &format!(
                            "Could not find a relationship between '{}' and '{name}' in the schema cache",
                            t.name
                        ),
                        Some(&format!(
                            "Searched for a foreign key relationship between '{}' and '{name}' in the schema 'public', but no matches were found.",
                            t.name
                        )),
                        None,
                    ));
                }
                1 => {
                    let (_, many, on, _) = rels.remove(0);
                    (many, on)
                }
                _ => {
                    let names: Vec<&str> = rels.iter().map(|r| r.0.as_str()).collect();
                    return Err(error(
                        300,
                        "PGRST201",
                        &format!(
                            "Could not embed because more than one relationship was found for '{}' and '{name}'",
                            t.name
                        ),
                        Some(&format!("the foreign keys {}", names.join(", "))),
                        Some(&format!(
                            "Try changing '{name}' to one of: {}",
                            names
                                .iter()
                                .map(|n| format!("'{name}!{n}'"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ));
                }
            };
            let children = plan(conn, &other, inner_items).await?;
            out.push(Some(Embed {
                table: other,
                many,
                on,
                inner: *inner,
                children,
            }));
        }
        Ok(out)
    })
}

/// The checked type names of `items`' casts (`::text`), in order.
async fn casts(
    conn: &mut PgConnection,
    items: Option<&[Item]>,
) -> Result<Vec<Option<String>>, Reply> {
    let mut out = Vec::new();
    for item in items.unwrap_or_default() {
        if let Item::Column { cast: Some(c), .. } = item {
            let ty: Option<String> = sqlx::query_scalar("SELECT format_type(to_regtype($1), NULL)")
                .bind(c)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_error(e, Role::ServiceRole))?;
            match ty {
                Some(t) => out.push(Some(t)),
                None => {
                    return Err(error(
                        400,
                        "42704",
                        &format!("type \"{c}\" does not exist"),
                        None,
                        None,
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The `Prefer` header's preferences, as `name=value` (or a bare name).
fn prefers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| {
            let p = p.trim();
            match p.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                None => (p.to_owned(), String::new()),
            }
        })
        .collect()
}

pub(super) fn prefer<'a>(all: &'a [(String, String)], name: &str) -> Option<&'a str> {
    all.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `Range: 0-9` as offset and limit.
fn range(headers: &HeaderMap) -> Result<Option<(u64, Option<u64>)>, Reply> {
    let Some(r) = headers.get("range").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let r = r.trim().trim_start_matches("items=");
    let (a, b) = r.split_once('-').unwrap_or((r, ""));
    let from: u64 = a.trim().parse().map_err(|_| range_error(r))?;
    let to = if b.trim().is_empty() {
        None
    } else {
        let to: u64 = b.trim().parse().map_err(|_| range_error(r))?;
        if to < from {
            return Err(range_error(r));
        }
        Some(to - from + 1)
    };
    Ok(Some((from, to)))
}

fn range_error(r: &str) -> Reply {
    error(
        416,
        "PGRST103",
        "Requested range not satisfiable",
        Some(&format!("the range {r:?} is not FROM-TO with FROM ≤ TO")),
        None,
    )
}

/// The tables requests have used, as the catalog described them, until the schema changes:
/// a DDL event trigger in the database (`extensions.pgrst_ddl_watch`, as Supabase installs
/// it) notifies channel `pgrst`, and the emulator's listener empties the cache. A request
/// that fails on a name the cached schema lacks is tried once more on a fresh one (the
/// notification of a migration that just committed may still be on its way).
#[derive(Default)]
pub struct SchemaCache {
    tables: std::sync::Mutex<std::collections::HashMap<String, Table>>,
}

impl SchemaCache {
    pub fn clear(&self) {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn get(&self, name: &str) -> Option<Table> {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn put(&self, t: &Table) {
        self.tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(t.name.clone(), t.clone());
    }
}

/// Serves `/rest/v1/{table}` and `/rest/v1/rpc/{function}`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    pool: &PgPool,
    cache: &SchemaCache,
    caller: Caller,
    method: Method,
    resource: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let first = serve_inner(
        pool,
        Some(cache),
        &caller,
        &method,
        resource,
        raw_query,
        headers,
        body,
    )
    .await;
    let stale = matches!(&first, Err(r) if r.body.as_ref().and_then(|b| b["code"].as_str())
        .is_some_and(|c| matches!(c, "42703" | "PGRST204" | "PGRST200")));
    let result = if stale {
        cache.clear();
        serve_inner(
            pool, None, &caller, &method, resource, raw_query, headers, body,
        )
        .await
    } else {
        first
    };
    match result {
        Ok(r) | Err(r) => r,
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_inner(
    pool: &PgPool,
    cache: Option<&SchemaCache>,
    caller: &Caller,
    method: &Method,
    resource: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    if resource.is_empty() {
        return Err(error(
            404,
            "PGRST125",
            "Invalid path specified in request URL",
            None,
            None,
        ));
    }
    let (rpc, name) = match resource.strip_prefix("rpc/") {
        Some(f) => (true, f),
        None => (false, resource),
    };
    let q = query::parse(raw_query, rpc)?;
    let prefs = prefers(headers);
    let single = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/vnd.pgrst.object+json"));
    let csv = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("text/csv"));
    let keep = prefer(&prefs, "tx") != Some("rollback");
    // Whether the statement's effects stay is only known after it ran.
    let decide = !keep || (single && !matches!(*method, Method::GET | Method::HEAD));
    let mut session = Session::open(pool, caller, method, resource, headers, decide).await?;
    let reply = if rpc {
        rpc::call(&mut session, caller, method, name, &q, body, &prefs).await?
    } else {
        let cached = cache.and_then(|c| c.get(name));
        let t = match cached {
            Some(t) => Some(t),
            None => {
                let t = table(session.conn(), name)
                    .await
                    .map_err(|e| db_error(e, caller.role))?;
                if let (Some(c), Some(t)) = (cache, &t) {
                    c.put(t);
                }
                t
            }
        };
        let Some(t) = t else {
            return Err(error(
                404,
                "PGRST205",
                &format!("Could not find the table '{SCHEMA}.{name}' in the schema cache"),
                None,
                None,
            ));
        };
        match *method {
            Method::GET | Method::HEAD => read(&mut session, &t, &q, headers, &prefs).await?,
            Method::POST => write(&mut session, &t, &q, body, &prefs, Write::Insert).await?,
            Method::PATCH => write(&mut session, &t, &q, body, &prefs, Write::Update).await?,
            Method::PUT => write(&mut session, &t, &q, body, &prefs, Write::Upsert).await?,
            Method::DELETE => write(&mut session, &t, &q, body, &prefs, Write::Delete).await?,
            _ => {
                return Err(error(
                    405,
                    "PGRST117",
                    &format!("Unsupported HTTP method: {method}"),
                    None,
                    None,
                ));
            }
        }
    };
    let reply = if single { reply.single() } else { Ok(reply) };
    // A single object that is not there undoes the write (PostgREST's 406 rolls back).
    session.finish(keep && reply.is_ok()).await?;
    let reply = reply?;
    let reply = if csv { reply.csv() } else { reply };
    Ok(if *method == Method::HEAD {
        reply.without_body()
    } else {
        reply
    })
}

async fn read(
    session: &mut Session,
    t: &Table,
    q: &Query,
    headers: &HeaderMap,
    prefs: &[(String, String)],
) -> Result<Reply, Reply> {
    let casts = casts(session.conn(), q.select.as_deref()).await?;
    let embeds = plan(session.conn(), t, q.select.as_deref().unwrap_or_default()).await?;
    let mut b = Builder::new(t);
    b.embedded = q.embedded.clone();
    let list = b.select_in(q.select.as_deref(), &casts, "_t", &embeds, 0, &[])?;
    b.unused_embedded()?;
    let mut filters = b.filters(&q.filters)?;
    for c in std::mem::take(&mut b.inner) {
        filters = format!("{filters} AND {c}");
    }
    let order = b.order(&q.order)?;
    let (mut offset, mut limit) = (q.offset.unwrap_or(0), q.limit);
    if let Some((from, count)) = range(headers)? {
        offset = offset.max(from);
        limit = match (limit, count) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
    }
    let page = match limit {
        Some(l) => format!(" LIMIT {l} OFFSET {offset}"),
        None => format!(" OFFSET {offset}"),
    };
    let statement = format!(
        "SELECT coalesce(json_agg(_r), '[]'::json)::text FROM (SELECT {list} FROM {} AS _t WHERE {filters}{order}{page}) _r",
        t.qualified()
    );
    let mut statements = vec![statement];
    let counted = matches!(
        prefer(prefs, "count"),
        Some("exact" | "planned" | "estimated")
    );
    if counted {
        let mut c = Builder::new(t);
        let filters = c.filters(&q.filters)?;
        statements.push(format!(
            "SELECT count(*)::text FROM {} WHERE {filters}",
            t.qualified()
        ));
    }
    let results = session.run(&statements).await?;
    let rows = session::json_at(&results, 0, 0, Value::Array(Vec::new()));
    let n = rows.as_array().map_or(0, Vec::len) as u64;
    let total = session::text_at(&results, 1, 0).and_then(|t| t.parse::<u64>().ok());
    let range = match (n, total) {
        (0, Some(t)) => format!("*/{t}"),
        (0, None) => "*/*".into(),
        (n, t) => format!(
            "{offset}-{}/{}",
            offset + n - 1,
            t.map_or("*".into(), |t| t.to_string())
        ),
    };
    let partial = total.is_some_and(|t| n < t && (limit.is_some() || offset > 0));
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(status, rows).header("content-range", &range))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Insert,
    Upsert,
    Update,
    Delete,
}

#[allow(clippy::too_many_arguments)]
async fn write(
    session: &mut Session,
    t: &Table,
    q: &Query,
    body: &[u8],
    prefs: &[(String, String)],
    kind: Write,
) -> Result<Reply, Reply> {
    let doc: Value = if kind == Write::Delete || body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            error(
                400,
                "PGRST102",
                "Empty or invalid json",
                Some(&e.to_string()),
                None,
            )
        })?
    };
    let resolution = prefer(prefs, "resolution");
    let kind = if kind == Write::Insert && resolution.is_some() {
        Write::Upsert
    } else {
        kind
    };
    let casts = casts(session.conn(), q.select.as_deref()).await?;
    let mut b = Builder::new(t);
    let statement = match kind {
        Write::Insert | Write::Upsert => {
            if !doc.is_object() && !doc.is_array() {
                return Err(error(
                    400,
                    "PGRST102",
                    "Empty or invalid json",
                    Some("the body is a JSON object or an array of objects"),
                    None,
                ));
            }
            let keys = q.columns.clone().unwrap_or_else(|| sql::keys_of(&doc));
            let cols = b.columns(&keys)?;
            let rows = match &doc {
                Value::Array(_) => doc.clone(),
                other => Value::Array(vec![other.clone()]),
            };
            let p = b.push_json(rows);
            let list = cols.join(", ");
            let conflict = if kind == Write::Upsert {
                let target = q
                    .on_conflict
                    .clone()
                    .unwrap_or_else(|| t.primary_key.clone());
                if target.is_empty() {
                    return Err(error(
                        400,
                        "42P10",
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                        None,
                        Some("name the conflict's columns with on_conflict"),
                    ));
                }
                let target = b.columns(&target)?.join(", ");
                if resolution == Some("ignore-duplicates") {
                    format!(" ON CONFLICT ({target}) DO NOTHING")
                } else {
                    let set: Vec<String> =
                        cols.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
                    format!(" ON CONFLICT ({target}) DO UPDATE SET {}", set.join(", "))
                }
            } else {
                String::new()
            };
            if cols.is_empty() {
                format!("INSERT INTO {} DEFAULT VALUES RETURNING *", t.qualified())
            } else {
                format!(
                    "INSERT INTO {0} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{0}, CAST({p} AS json)){conflict} RETURNING *",
                    t.qualified()
                )
            }
        }
        Write::Update => {
            if !doc.is_object() {
                return Err(error(
                    400,
                    "PGRST102",
                    "Empty or invalid json",
                    Some("an update's body is one JSON object"),
                    None,
                ));
            }
            let keys = sql::keys_of(&doc);
            let cols = b.columns(&keys)?;
            if cols.is_empty() {
                return Ok(Reply::json(StatusCode::NO_CONTENT, Value::Null).without_body());
            }
            let p = b.push_json(doc.clone());
            let filters = b.filters(&q.filters)?;
            let list = cols.join(", ");
            format!(
                "UPDATE {0} SET ({list}) = (SELECT {list} FROM json_populate_record(NULL::{0}, CAST({p} AS json))) WHERE {filters} RETURNING *",
                t.qualified()
            )
        }
        Write::Delete => {
            let filters = b.filters(&q.filters)?;
            format!("DELETE FROM {} WHERE {filters} RETURNING *", t.qualified())
        }
    };
    let embeds = plan(session.conn(), t, q.select.as_deref().unwrap_or_default()).await?;
    b.embedded = q.embedded.clone();
    let list = b.select_in(q.select.as_deref(), &casts, "_w", &embeds, 0, &[])?;
    b.unused_embedded()?;
    let wrapped = format!(
        "WITH _w AS ({statement}) SELECT coalesce(json_agg(_r), '[]'::json)::text, (SELECT count(*) FROM _w)::text FROM (SELECT {list} FROM _w) _r"
    );
    let results = session.run(&[wrapped]).await?;
    let rows = session::json_at(&results, 0, 0, Value::Array(Vec::new()));
    let count: u64 = session::text_at(&results, 0, 1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let created = matches!(kind, Write::Insert | Write::Upsert);
    let range = if count == 0 {
        "*/*".to_owned()
    } else {
        format!("0-{}/*", count - 1)
    };
    match prefer(prefs, "return") {
        Some("representation") => Ok(Reply::json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            rows,
        )
        .header("content-range", &range)),
        _ => Ok(Reply::json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            },
            Value::Null,
        )
        .header("content-range", &range)
        .without_body()),
    }
}
