//! The HTTP stubs a scenario declares, each on its own wiremock server on 127.0.0.1.

use harness_scenario::Mock;
use serde_json::Value;
use wiremock::{
    MockGuard, MockServer, Request, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

use super::{context::Ctx, matcher, steps::StepError};

/// A running stub and what it must have received.
pub struct RunningMock {
    pub name: String,
    pub expect_calls: Option<u64>,
    pub span: harness_scenario::Span,
    guard: MockGuard,
    server: MockServer,
    want: Want,
}

/// What the stub matches, with its references filled in.
struct Want {
    method: Option<String>,
    path: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    json: Option<Value>,
}

impl RunningMock {
    pub async fn calls(&self) -> usize {
        self.guard.received_requests().await.len()
    }

    /// The requests that reached this mock's server but matched no stub, each with what
    /// differed from the stub.
    pub async fn unmatched(&self) -> Vec<String> {
        let all = self.server.received_requests().await.unwrap_or_default();
        all.iter()
            .filter_map(|r| {
                let why = self.want.differences(r);
                (!why.is_empty()).then(|| {
                    let query = r.url.query().map(|q| format!("?{q}")).unwrap_or_default();
                    format!("{} {}{query}: {}", r.method, r.url.path(), why.join("; "))
                })
            })
            .collect()
    }
}

impl Want {
    fn differences(&self, r: &Request) -> Vec<String> {
        let mut why = Vec::new();
        if let Some(m) = &self.method
            && !r.method.as_str().eq_ignore_ascii_case(m)
        {
            why.push(format!("the stub wants method {m}"));
        }
        if r.url.path() != self.path {
            why.push(format!("the stub wants path {}", self.path));
        }
        for (k, v) in &self.headers {
            match r.headers.get(k.as_str()).and_then(|h| h.to_str().ok()) {
                None => why.push(format!("header `{k}` is absent (the stub wants `{v}`)")),
                Some(got) if got != v => {
                    why.push(format!("header `{k}` is `{got}`, the stub wants `{v}`"))
                }
                Some(_) => {}
            }
        }
        for (k, v) in &self.query {
            let got = r.url.query_pairs().find(|(name, _)| name == k.as_str());
            match got {
                None => why.push(format!("query `{k}` is absent (the stub wants `{v}`)")),
                Some((_, got)) if got != v.as_str() => {
                    why.push(format!("query `{k}` is `{got}`, the stub wants `{v}`"))
                }
                Some(_) => {}
            }
        }
        if let Some(want) = &self.json {
            match serde_json::from_slice::<Value>(&r.body) {
                Err(_) => why.push("the body is not JSON (the stub wants a JSON body)".into()),
                Ok(got) => {
                    if let Some((at, _, _)) = matcher::first_difference("$", want, &got) {
                        why.push(format!("the JSON body differs from the stub's at `{at}`"));
                    }
                }
            }
        }
        why
    }
}

/// Notes on the requests the mocks received but matched no stub, for a failure message
/// (empty when there are none).
pub async fn unmatched_notes(mocks: &[RunningMock]) -> String {
    let mut out = String::new();
    for m in mocks {
        let unmatched = m.unmatched().await;
        if unmatched.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n\nmock `{}` received {} that matched no stub (it answered 404):",
            m.name,
            if unmatched.len() == 1 {
                "a request".to_owned()
            } else {
                format!("{} requests", unmatched.len())
            }
        ));
        for u in unmatched {
            out.push_str(&format!("\n    {u}"));
        }
    }
    out
}

pub async fn start(ctx: &mut Ctx, mocks: &[Mock]) -> Result<Vec<RunningMock>, StepError> {
    let mut out = Vec::new();
    for m in mocks {
        let server = MockServer::start().await;
        let mut want = Want {
            method: m.request.method.clone(),
            path: ctx.render_str(&m.request.path)?,
            headers: Vec::new(),
            query: Vec::new(),
            json: None,
        };
        let mut builder = wiremock::Mock::given(path(want.path.as_str()));
        if let Some(verb) = &m.request.method {
            builder = builder.and(method(verb.as_str()));
        }
        for (k, v) in &m.request.headers {
            let v = ctx.render_str(v)?;
            builder = builder.and(header(k.as_str(), v.as_str()));
            want.headers.push((k.clone(), v));
        }
        for (k, v) in &m.request.query {
            let v = ctx.render_str(v)?;
            builder = builder.and(query_param(k.as_str(), v.as_str()));
            want.query.push((k.clone(), v));
        }
        if let Some(json) = &m.request.json {
            let json = ctx.render_value(json)?;
            builder = builder.and(body_json(json.clone()));
            want.json = Some(json);
        }
        let mut response = ResponseTemplate::new(m.response.status);
        // A declared `content-type` is the body's type; the body kind gives the default.
        let mut content_type = None;
        for (k, v) in &m.response.headers {
            let v = ctx.render_str(v)?;
            if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(v);
            } else {
                response = response.insert_header(k.as_str(), v.as_str());
            }
        }
        if let Some(body) = &m.response.body {
            let mime = content_type.take().unwrap_or_else(|| "text/plain".into());
            response = response.set_body_raw(ctx.render_str(body)?.into_bytes(), &mime);
        }
        if let Some(json) = &m.response.json {
            let json = serde_json::to_vec(&ctx.render_value(json)?)
                .map_err(|e| StepError::error(format!("mock `{}`: {e}", m.name)))?;
            let mime = content_type
                .take()
                .unwrap_or_else(|| "application/json".into());
            response = response.set_body_raw(json, &mime);
        }
        if let Some(ct) = content_type {
            response = response.insert_header("content-type", ct.as_str());
        }
        if let Some(delay) = m.response.delay {
            response = response.set_delay(delay.0);
        }
        let guard = server
            .register_as_scoped(builder.respond_with(response))
            .await;
        ctx.mocks.insert(m.name.clone(), server.uri());
        out.push(RunningMock {
            name: m.name.clone(),
            expect_calls: m.expect_calls,
            span: m.span,
            guard,
            server,
            want,
        });
    }
    Ok(out)
}
