//! `sql`: run a statement in the scenario's own database.
//!
//! `query` returns rows; Postgres itself turns each row into JSON (`row_to_json`), so every
//! column type arrives with its natural JSON form. The document is the list of rows.
//! `execute` runs for effect; its document is `{ "affected": N }`.

use harness_scenario::Sql;
use serde_json::Value;
use sqlx::{Arguments, postgres::PgArguments};

use super::{Handler, StepError, check_rows, expect_error};
use crate::run::{context::Ctx, stores::quote_ident};

impl Handler for Sql {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let s = self;
        let pool = ctx
            .iso
            .pool
            .clone()
            .ok_or_else(|| StepError::error("postgres is not part of this run"))?;
        let mut params = Vec::new();
        for p in &s.params {
            params.push(ctx.render_value(p)?);
        }
        let role = match &s.role {
            Some(r) => Some(ctx.render(r)?),
            None => None,
        };
        let mut settings = Vec::new();
        for (k, v) in &s.settings {
            settings.push((k.clone(), ctx.render(v)?));
        }
        let (statement, is_query) = match (&s.query, &s.execute) {
            (Some(q), _) => (ctx.render(q)?, true),
            (None, Some(e)) => (ctx.render(e)?, false),
            (None, None) => {
                return Err(StepError::error("a `sql` step needs `query` or `execute`"));
            }
        };
        let result = run_statement(pool, role, settings, statement, params, is_query).await;
        expect_error(ctx, result, s.expect.error.as_ref(), "the statement")
    }

    fn check(&self, ctx: &mut Ctx, doc: &Value) -> Result<(), StepError> {
        check_rows(ctx, doc, &self.expect)
    }
}

/// Boxed with owned inputs: sqlx's executor lifetimes otherwise defeat the `Send` check of
/// the step dispatcher's future.
fn run_statement(
    pool: sqlx::PgPool,
    role: Option<String>,
    settings: Vec<(String, String)>,
    statement: String,
    params: Vec<Value>,
    is_query: bool,
) -> futures::future::BoxFuture<'static, Result<Value, String>> {
    Box::pin(async move {
        let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
        if let Some(role) = &role {
            let set_role = format!("SET LOCAL ROLE {}", quote_ident(role));
            sqlx::Executor::execute(&mut *tx, set_role.as_str())
                .await
                .map_err(|e| db_error(&e))?;
        }
        for (name, value) in &settings {
            sqlx::query("select set_config($1, $2, true)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(&e))?;
        }
        let args = arguments(&params)?;
        let doc = if is_query {
            let trimmed = statement.trim().trim_end_matches(';');
            let wrapped = format!(
                "WITH harness_q AS ({trimmed}) SELECT coalesce(row_to_json(harness_q)::text, 'null') FROM harness_q"
            );
            let rows: Vec<String> = sqlx::query_scalar_with::<_, String, _>(&wrapped, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| db_error(&e))?;
            Value::Array(
                rows.iter()
                    .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
                    .collect(),
            )
        } else if params.is_empty() {
            // Without arguments sqlx uses the simple protocol, so several statements may run.
            let done = sqlx::Executor::execute(&mut *tx, statement.as_str())
                .await
                .map_err(|e| db_error(&e))?;
            serde_json::json!({ "affected": done.rows_affected() })
        } else {
            let done = sqlx::query_with(&statement, args)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(&e))?;
            serde_json::json!({ "affected": done.rows_affected() })
        };
        tx.commit().await.map_err(|e| db_error(&e))?;
        Ok(doc)
    })
}

/// Binds JSON values as their natural Postgres types.
fn arguments(params: &[Value]) -> Result<PgArguments, String> {
    let mut args = PgArguments::default();
    for p in params {
        let added = match p {
            Value::Null => args.add(None::<String>),
            Value::Bool(b) => args.add(*b),
            Value::Number(n) if n.is_i64() => args.add(n.as_i64()),
            Value::Number(n) => args.add(n.as_f64()),
            Value::String(s) => args.add(s.clone()),
            other => args.add(other.to_string()),
        };
        added.map_err(|e| format!("binding a parameter: {e}"))?;
    }
    Ok(args)
}

fn db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    }
}
