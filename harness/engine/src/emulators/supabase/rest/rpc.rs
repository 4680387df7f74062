//! `/rest/v1/rpc/{function}`: a SQL function of the exposed schema called with named
//! arguments (the JSON body of a POST, the query string of a GET), each cast to the type
//! its parameter has in the catalog. A function returning rows (a set or a table) is read
//! like a table: the request's filters, order and paging apply to its rows.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sqlx::Row;

use super::{
    Caller, SCHEMA, db_error, error,
    query::Query,
    session::{self, Session},
    sql::{Builder, Param, Table},
};
use crate::{emulators::supabase::Reply, run::stores::quote_ident};

pub(super) async fn call(
    session: &mut Session,
    caller: &Caller,
    method: &Method,
    name: &str,
    q: &Query,
    body: &[u8],
    _prefs: &[(String, String)],
) -> Result<Reply, Reply> {
    let args: serde_json::Map<String, Value> = match *method {
        Method::POST => {
            if body.is_empty() {
                serde_json::Map::new()
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        return Err(error(
                            400,
                            "PGRST102",
                            "Empty or invalid json",
                            Some("a function's arguments are one JSON object"),
                            None,
                        ));
                    }
                }
            }
        }
        Method::GET | Method::HEAD => q
            .rest
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
        _ => {
            return Err(error(
                405,
                "PGRST101",
                "Only GET and POST call a function",
                None,
                None,
            ));
        }
    };
    // The function whose named parameters cover the arguments given.
    let rows = sqlx::query(
        "SELECT p.oid::regprocedure::text, coalesce(p.proargnames, '{}')::text[], \
         coalesce((SELECT array_agg(format_type(t, NULL) ORDER BY i) \
            FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) WITH ORDINALITY u(t, i)), '{}'), \
         p.proretset, format_type(p.prorettype, NULL), (SELECT typtype FROM pg_type WHERE oid = p.prorettype)::text, \
         p.pronargdefaults, coalesce(p.proargmodes::text[], '{}') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND p.proname = $2",
    )
    .bind(SCHEMA)
    .bind(name)
    .fetch_all(session.conn())
    .await
    .map_err(|e| db_error(e, caller.role))?;
    // Each parameter: its name, type and whether it is an input (modes i, b, v) or a
    // returned column (t, o, b).
    let params_of = |r: &sqlx::postgres::PgRow| -> Vec<(String, String, bool, bool)> {
        let names: Vec<String> = r.get(1);
        let types: Vec<String> = r.get(2);
        let modes: Vec<String> = r.get(7);
        types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mode = modes.get(i).map_or("i", String::as_str);
                (
                    names.get(i).cloned().unwrap_or_default(),
                    t.clone(),
                    matches!(mode, "i" | "b" | "v"),
                    matches!(mode, "t" | "o" | "b"),
                )
            })
            .collect()
    };
    let given: Vec<&String> = args.keys().collect();
    let chosen = rows.iter().find(|r| {
        let inputs: Vec<String> = params_of(r)
            .into_iter()
            .filter(|p| p.2)
            .map(|p| p.0)
            .collect();
        let defaults = usize::try_from(r.get::<i16, _>(6)).unwrap_or(0);
        given.iter().all(|g| inputs.contains(g)) && given.len() + defaults >= inputs.len()
    });
    let Some(f) = chosen else {
        let keys: Vec<&str> = given.iter().map(|s| s.as_str()).collect();
        return Err(error(
            404,
            "PGRST202",
            &format!(
                "Could not find the function {SCHEMA}.{name}({}) in the schema cache",
                keys.join(", ")
            ),
            Some(&format!(
                "Searched for the function {SCHEMA}.{name} with parameters {} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
                keys.join(", ")
            )),
            None,
        ));
    };
    let params = params_of(f);
    let (set, ret_type, typtype): (bool, String, String) = (f.get(3), f.get(4), f.get(5));
    let table = Table {
        schema: SCHEMA.into(),
        name: name.into(),
        columns: Vec::new(),
        primary_key: Vec::new(),
    };
    let mut b = Builder::new(&table);
    let mut call_args = Vec::new();
    for (k, v) in &args {
        let ty = params
            .iter()
            .find(|p| p.2 && &p.0 == k)
            .map_or_else(|| "text".to_owned(), |p| p.1.clone());
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let p = b.bind(Param::Text(text));
        call_args.push(format!("{} => CAST({p} AS {ty})", quote_ident(k)));
    }
    let call = format!(
        "{}.{}({})",
        quote_ident(SCHEMA),
        quote_ident(name),
        call_args.join(", ")
    );
    let rows_out = set || typtype == "c" || ret_type == "record";
    if !rows_out {
        let statement = format!("SELECT to_json({call})::text");
        let results = session.run(&[statement]).await?;
        let v = session::json_at(&results, 0, 0, Value::Null);
        return Ok(Reply::json(StatusCode::OK, v));
    }
    // Rows: their columns are what the function returns, which the filters name.
    let cols: Vec<(String, String)> = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = to_regtype($1)) AND a.attnum > 0 ORDER BY a.attnum",
    )
    .bind(&ret_type)
    .fetch_all(session.conn())
    .await
    .map_err(|e| db_error(e, caller.role))?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let out_cols: Vec<(String, String)> = if cols.is_empty() {
        // `RETURNS TABLE (…)` and OUT parameters.
        params
            .iter()
            .filter(|p| p.3)
            .map(|p| (p.0.clone(), p.1.clone()))
            .collect()
    } else {
        cols
    };
    let shape = Table {
        schema: SCHEMA.into(),
        name: name.into(),
        columns: out_cols,
        primary_key: Vec::new(),
    };
    let mut r = Builder::new(&shape);
    let filters = r.filters(&q.filters)?;
    let order = r.order(&q.order)?;
    let page = match q.limit {
        Some(l) => format!(" LIMIT {l} OFFSET {}", q.offset.unwrap_or(0)),
        None => format!(" OFFSET {}", q.offset.unwrap_or(0)),
    };
    let statement = format!(
        "SELECT coalesce(json_agg(_r), '[]'::json)::text FROM (SELECT * FROM {call} _f WHERE {filters}{order}{page}) _r"
    );
    let results = session.run(&[statement]).await?;
    Ok(Reply::json(
        StatusCode::OK,
        session::json_at(&results, 0, 0, Value::Array(Vec::new())),
    ))
}
