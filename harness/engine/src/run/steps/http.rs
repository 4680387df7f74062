//! `http`: send a request, check status, headers, JSON and body, capture values.
//!
//! The document is the response body parsed as JSON, or the body text when it is not JSON.

use std::collections::BTreeMap;

use harness_scenario::Http;
use serde_json::Value;

use super::{Document, Handler, StepError};
use crate::run::{context::Ctx, matcher};

/// A response: the document (the body as JSON, or its text) and what `expect` reads.
pub struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    text: String,
    doc: Value,
}

impl Document for Response {
    fn doc(&self) -> &Value {
        &self.doc
    }
    fn headers(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.headers)
    }
}

impl Handler for Http {
    type Output = Response;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Response>, StepError> {
        send(ctx, self).await.map(Some)
    }

    fn check(&self, ctx: &mut Ctx, r: &Response) -> Result<(), StepError> {
        if let Some(m) = &self.expect.status {
            // The body of an unexpected status usually says why: show it (redacted, cut).
            matcher::check(ctx, "status", m, Some(&Value::from(r.status))).map_err(|e| {
                let body = matcher::short(&ctx.redactor, &Value::String(r.text.clone()));
                e.map_message(|m| format!("{m}; the response body: {body}"))
            })?;
        }
        for (name, m) in &self.expect.headers {
            let actual = r.headers.get(name).map(|v| Value::String(v.clone()));
            // The headers it did send show a misspelt name or a proxy's rewrite.
            matcher::check(ctx, &format!("header `{name}`"), m, actual.as_ref()).map_err(|e| {
                // `date` changes every second and is seldom the point, unless checked.
                let shown: BTreeMap<&String, &String> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| *k != "date" || *k == name)
                    .collect();
                let all = serde_json::to_value(&shown).unwrap_or_default();
                let sent = matcher::short(&ctx.redactor, &all);
                e.map_message(|m| format!("{m}; the response's headers: {sent}"))
            })?;
        }
        if let Some(m) = &self.expect.body {
            matcher::check(ctx, "body", m, Some(&Value::String(r.text.clone())))?;
        }
        Ok(())
    }
}

async fn send(ctx: &mut Ctx, s: &Http) -> Result<Response, StepError> {
    let method = s.method.as_deref().unwrap_or("GET");
    let defaults = std::sync::Arc::clone(&ctx.scenario);
    let defaults = &defaults.defaults.http;
    let mut url = ctx.render(&s.url)?;
    // A path is relative to `defaults.http.base_url`.
    if url.starts_with('/')
        && let Some(base) = &defaults.base_url
    {
        url = format!("{}{url}", ctx.render(base)?.trim_end_matches('/'));
    }
    // Checked once filled in: the text written may only become a URL then.
    if let Err(e) = url::Url::parse(&url) {
        let shown = matcher::short(&ctx.redactor, &Value::String(url));
        return Err(StepError::Error {
            message: format!("`url` is not a URL once its references are filled in ({e}): {shown}"),
            span: Some(s.url.span),
        });
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| StepError::error(e.to_string()))?;
    let mut req = ctx.http.request(method, &url);
    // A step's own headers win over its caller's, which win over the defaults'.
    let caller = match &s.caller {
        Some(c) => ctx.supabase_caller(c)?.to_vec(),
        None => Vec::new(),
    };
    for (k, v) in &caller {
        if !s.headers.keys().any(|h| h.eq_ignore_ascii_case(k)) {
            req = req.header(k, v);
        }
    }
    for (k, v) in &defaults.headers {
        let overridden = s.headers.keys().any(|h| h.eq_ignore_ascii_case(k))
            || caller.iter().any(|(h, _)| h.eq_ignore_ascii_case(k));
        if !overridden {
            let v = ctx.render(v)?;
            req = req.header(k, v);
        }
    }
    for (k, v) in &s.headers {
        let v = ctx.render(v)?;
        req = req.header(k, v);
    }
    if !s.query.is_empty() {
        let mut q = Vec::new();
        for (k, v) in &s.query {
            q.push((k.clone(), ctx.render(v)?));
        }
        req = req.query(&q);
    }
    if let Some(body) = &s.body {
        req = req.body(ctx.render(body)?);
    }
    if let Some(json) = &s.json {
        req = req.json(&ctx.render_value(json)?);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| StepError::error(format!("{url}: {}", error_chain(&e))))?;
    let status = resp.status().as_u16();
    let headers: BTreeMap<String, String> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let text = resp
        .text()
        .await
        .map_err(|e| StepError::error(format!("reading the body of {url}: {e}")))?;
    let doc = serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::String(text.clone()));
    Ok(Response {
        status,
        headers,
        text,
        doc,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
