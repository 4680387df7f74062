//! A request's connection, and how its statements reach Postgres in one round trip.
//!
//! A request is a transaction that sets the caller's role and claims, runs the statement and
//! commits: four round trips when each is its own message. Here the settings
//! and the statements travel as one simple-protocol message, which Postgres runs as one
//! implicit transaction (committed at its end, rolled back whole on an error), so a request
//! costs the database one round trip. Values are written into that message as quoted
//! literals ([`literal`]), never spliced raw.
//!
//! A request that must decide after its statement whether to keep it (`Prefer:
//! tx=rollback`, or a write that asks for a single object and may return another count of
//! rows) runs in an explicit transaction instead.

use axum::http::{HeaderMap, Method};
use serde_json::Value;
use sqlx::{
    Executor, PgConnection, PgPool, Postgres, Row, Transaction, pool::PoolConnection,
    postgres::PgRow,
};

use super::{Caller, db_error, error};
use crate::emulators::supabase::{Reply, keys::Role};

/// `s` as a SQL string literal, the way Postgres's `quote_literal` writes it: quotes doubled,
/// and backslashes doubled in an `E''` literal, so its meaning does not depend on
/// `standard_conforming_strings`.
pub fn literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// `s` as a `text` value.
pub fn text(s: &str) -> String {
    format!("({}::text)", literal(s))
}

/// `items` as a `text[]` value.
pub fn text_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| literal(s)).collect();
    format!("(ARRAY[{}]::text[])", items.join(", "))
}

/// Column `col` of row `row` of what [`Session::run`] returned, as text (`None` for NULL or
/// a row that is not there).
pub fn text_at(rows: &[PgRow], row: usize, col: usize) -> Option<String> {
    rows.get(row)
        .and_then(|r| r.try_get::<Option<String>, _>(col).ok())
        .flatten()
}

/// The JSON document of column `col` of row `row`, or `none` without one.
pub fn json_at(rows: &[PgRow], row: usize, col: usize, none: Value) -> Value {
    text_at(rows, row, col)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(none)
}

enum Conn {
    /// Each [`Session::run`] is one implicit transaction.
    Pooled(PoolConnection<Postgres>),
    /// An explicit transaction, ended by [`Session::finish`] (or rolled back when dropped).
    Open(Transaction<'static, Postgres>),
}

/// The connection one REST request runs on, as its caller.
pub struct Session {
    conn: Conn,
    /// The statement that sets the caller's role, claims and request for what follows it.
    prelude: String,
    role: Role,
}

impl Session {
    /// Takes a connection for `caller`; `transaction` opens an explicit one.
    pub async fn open(
        pool: &PgPool,
        caller: &Caller,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        transaction: bool,
    ) -> Result<Session, Reply> {
        let heads: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(k, _)| *k != "authorization" && *k != "apikey" && *k != "cookie")
            .filter_map(|(k, v)| {
                Some((
                    k.as_str().to_owned(),
                    Value::String(v.to_str().ok()?.to_owned()),
                ))
            })
            .collect();
        let prelude = format!(
            "SELECT set_config('request.jwt.claims', {}, true), set_config('request.method', {}, true), \
             set_config('request.path', {}, true), set_config('request.headers', {}, true), \
             set_config('role', {}, true)",
            literal(&caller.claims.to_string()),
            literal(method.as_str()),
            literal(path),
            literal(&Value::Object(heads).to_string()),
            literal(caller.role.name()),
        );
        let fail = |e| db_error(e, caller.role);
        let conn = if transaction {
            Conn::Open(pool.begin().await.map_err(fail)?)
        } else {
            Conn::Pooled(pool.acquire().await.map_err(fail)?)
        };
        Ok(Session {
            conn,
            prelude,
            role: caller.role,
        })
    }

    /// The connection, for reading the catalog (which every role may read).
    pub fn conn(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            Conn::Pooled(c) => c,
            Conn::Open(t) => t,
        }
    }

    /// Runs `statements` as the caller, in one message after the caller's settings, and
    /// returns the rows they return, in order (each statement here returns one row).
    pub async fn run(&mut self, statements: &[String]) -> Result<Vec<PgRow>, Reply> {
        let mut message = self.prelude.clone();
        for s in statements {
            message.push_str(";\n");
            message.push_str(s);
        }
        if message.contains('\0') {
            // A bound value would have been refused with this; in a message it would end
            // the text early.
            return Err(error(
                400,
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0x00",
                None,
                None,
            ));
        }
        let role = self.role;
        // Through the executor (a boxed Send future): `RawSql::fetch_all`'s own future is
        // not Send for every lifetime, which a request's future must be.
        let rows = self
            .conn()
            .fetch_all(sqlx::raw_sql(&message))
            .await
            .map_err(|e| db_error(e, role))?;
        // The prelude's own row first.
        Ok(rows.into_iter().skip(1).collect())
    }

    /// Ends an explicit transaction: commits it, or rolls it back.
    pub async fn finish(self, commit: bool) -> Result<(), Reply> {
        let Conn::Open(t) = self.conn else {
            return Ok(());
        };
        let r = if commit {
            t.commit().await
        } else {
            t.rollback().await
        };
        r.map_err(|e| db_error(e, self.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_mark_backslashes() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\'b"), r"E'a\\''b'");
        assert_eq!(text("x"), "('x'::text)");
        assert_eq!(
            text_array(&["a".into(), "b'c".into()]),
            "(ARRAY['a', 'b''c']::text[])"
        );
        assert_eq!(text_array(&[]), "(ARRAY[]::text[])");
    }
}
