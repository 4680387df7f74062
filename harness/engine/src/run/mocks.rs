//! The HTTP stubs a scenario declares, each on its own wiremock server on 127.0.0.1.

use harness_scenario::Mock;
use wiremock::{
    MockGuard, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

use super::{context::Ctx, steps::StepError};

/// A running stub and what it must have received.
pub struct RunningMock {
    pub name: String,
    pub expect_calls: Option<u64>,
    pub span: harness_scenario::Span,
    guard: MockGuard,
    _server: MockServer,
}

impl RunningMock {
    pub async fn calls(&self) -> usize {
        self.guard.received_requests().await.len()
    }
}

pub async fn start(ctx: &mut Ctx, mocks: &[Mock]) -> Result<Vec<RunningMock>, StepError> {
    let mut out = Vec::new();
    for m in mocks {
        let server = MockServer::start().await;
        let mut builder = wiremock::Mock::given(path(ctx.render_str(&m.request.path)?));
        if let Some(verb) = &m.request.method {
            builder = builder.and(method(verb.as_str()));
        }
        for (k, v) in &m.request.headers {
            builder = builder.and(header(k.as_str(), ctx.render_str(v)?.as_str()));
        }
        for (k, v) in &m.request.query {
            builder = builder.and(query_param(k.as_str(), ctx.render_str(v)?.as_str()));
        }
        if let Some(json) = &m.request.json {
            builder = builder.and(body_json(ctx.render_value(json)?));
        }
        let mut response = ResponseTemplate::new(m.response.status);
        for (k, v) in &m.response.headers {
            response = response.insert_header(k.as_str(), ctx.render_str(v)?.as_str());
        }
        if let Some(body) = &m.response.body {
            response = response.set_body_string(ctx.render_str(body)?);
        }
        if let Some(json) = &m.response.json {
            response = response.set_body_json(ctx.render_value(json)?);
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
            _server: server,
        });
    }
    Ok(out)
}
