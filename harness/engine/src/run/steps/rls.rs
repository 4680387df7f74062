//! `rls`: row-level security over every user-scoped table. The catalog says which tables are
//! user-scoped and how their security is set; the Supabase emulator's REST API, called as
//! each fixture user and as an anonymous browser, says what those callers can read.

use harness_scenario::kinds::rls::Rls;
use serde_json::{Value, json};

use super::{Handler, StepError};
use crate::run::{context::Ctx, stores::quote_ident};

/// A user-scoped table, as the catalog describes it.
struct Table {
    name: String,
    owner: String,
    rls: bool,
}

impl Handler for Rls {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let pool = ctx
            .iso
            .pool
            .clone()
            .ok_or_else(|| StepError::error("postgres is not part of this run"))?;
        let supabase = ctx
            .supabase
            .clone()
            .ok_or_else(|| StepError::error("an `rls` step needs the Supabase emulator"))?;
        let owner = self.owner.as_deref().unwrap_or("owner_id");
        let db = |e: sqlx::Error| StepError::error(format!("read the catalog: {e}"));
        let (listed, listed_cols): (Vec<String>, Vec<String>) = self
            .tables
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .unzip();
        let found: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text, c.relrowsecurity \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
               AND ((a.attname = $1 AND NOT c.relname = ANY($2)) \
                 OR (c.relname, a.attname) IN (SELECT * FROM unnest($2::text[], $3::text[]))) \
             ORDER BY 1",
        )
        .bind(owner)
        .bind(&listed)
        .bind(&listed_cols)
        .fetch_all(&pool)
        .await
        .map_err(db)?;
        for (t, c) in &self.tables {
            if !found.iter().any(|(n, o, _)| n == t && o == c) {
                return Err(StepError::error(format!(
                    "`tables` names public.{t}.{c}, which the database does not have"
                )));
            }
        }
        if found.is_empty() {
            return Err(StepError::failed(format!(
                "no table of schema public has the column {owner}, so there is nothing to prove"
            )));
        }
        let tables: Vec<Table> = found
            .into_iter()
            .map(|(name, owner, rls)| Table { name, owner, rls })
            .collect();
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        // Permissive policies that let any row through, for a role a caller can have.
        let open: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT tablename::text, policyname::text, cmd::text, coalesce(qual, '') = 'true' \
             FROM pg_policies WHERE schemaname = 'public' AND tablename = ANY($1) \
               AND permissive = 'PERMISSIVE' \
               AND roles && ARRAY['public', 'anon', 'authenticated']::name[] \
               AND (qual = 'true' OR with_check = 'true') ORDER BY 1, 2",
        )
        .bind(&names)
        .fetch_all(&pool)
        .await
        .map_err(db)?;

        let readers: Vec<String> = if self.users.is_empty() {
            ctx.supabase_users.keys().cloned().collect()
        } else {
            self.users.clone()
        };
        let mut sessions = Vec::new();
        for r in &readers {
            let s = ctx.supabase_users.get(r).ok_or_else(|| {
                StepError::error(format!("`rls` reads as `{r}`, which is not a fixture user"))
            })?;
            sessions.push((r.clone(), s.id.clone(), s.access_token.clone()));
        }
        let keys = supabase.keys();
        let publishable = keys.publishable.expose().to_owned();
        let base = supabase.url();

        let mut findings = Vec::new();
        let mut report = Vec::new();
        for t in &tables {
            if !t.rls {
                findings.push(format!(
                    "public.{} is user-scoped (it has {}) but row-level security is off: every role granted the table reads all of it",
                    t.name, t.owner
                ));
            }
            for (table, policy, cmd, using) in open.iter().filter(|p| p.0 == t.name) {
                let what = if *using {
                    "USING (true)"
                } else {
                    "WITH CHECK (true)"
                };
                findings.push(format!(
                    "public.{table}: policy {policy} ({cmd}) has {what}, so it lets every caller reach every user's rows"
                ));
            }
            // What the readers do not own, seen by the table's owner (no row security).
            let ids: Vec<String> = sessions.iter().map(|s| s.1.clone()).collect();
            let others: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM public.{} WHERE NOT ({}::text = ANY($1))",
                quote_ident(&t.name),
                quote_ident(&t.owner)
            ))
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .map_err(db)?;
            for (reader, id, token) in &sessions {
                let filter = format!("{}=neq.{id}", t.owner);
                let seen = visible(
                    ctx,
                    &base,
                    &t.name,
                    &t.owner,
                    Some(&filter),
                    &publishable,
                    Some(token),
                )
                .await?;
                if seen > 0 {
                    findings.push(format!(
                        "public.{}: {reader} reads {seen} row{} other users own",
                        t.name,
                        if seen == 1 { "" } else { "s" }
                    ));
                }
            }
            let seen = visible(ctx, &base, &t.name, &t.owner, None, &publishable, None).await?;
            if seen > 0 {
                findings.push(format!(
                    "public.{}: an anonymous caller (the publishable key) reads {seen} row{}",
                    t.name,
                    if seen == 1 { "" } else { "s" }
                ));
            }
            report.push(
                json!({"table": t.name, "owner": t.owner, "rls": t.rls, "others_rows": others}),
            );
        }
        let doc = json!({"tables": report, "findings": findings});
        if findings.is_empty() {
            Ok(Some(doc))
        } else {
            Err(StepError::Failed {
                message: format!(
                    "row-level security does not hold over the user-scoped tables:\n  - {}",
                    findings.join("\n  - ")
                ),
                expected: Some("no caller reaches rows it does not own".into()),
                actual: Some(format!(
                    "{} finding{}",
                    findings.len(),
                    if findings.len() == 1 { "" } else { "s" }
                )),
                span: None,
            })
        }
    }
}

/// How many rows of `table` a caller reads through REST (`Prefer: count=exact`); a refusal
/// (401 or 403: the role may not read the table at all) counts as none.
async fn visible(
    ctx: &Ctx,
    base: &str,
    table: &str,
    owner: &str,
    filter: Option<&str>,
    apikey: &str,
    token: Option<&str>,
) -> Result<u64, StepError> {
    let mut url = format!("{base}/rest/v1/{table}?select={owner}&limit=1");
    if let Some(f) = filter {
        url.push('&');
        url.push_str(f);
    }
    let mut req = ctx
        .http
        .get(&url)
        .header("apikey", apikey)
        .header("prefer", "count=exact");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| StepError::error(format!("read public.{table} through REST: {e}")))?;
    let status = resp.status().as_u16();
    if matches!(status, 401 | 403) {
        return Ok(0);
    }
    let range = resp
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if status != 200 && status != 206 {
        let body = resp.text().await.unwrap_or_default();
        return Err(StepError::error(format!(
            "read public.{table} through REST: {status} {body}"
        )));
    }
    range
        .as_deref()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            StepError::error(format!(
                "read public.{table} through REST: no count in Content-Range {range:?}"
            ))
        })
}
