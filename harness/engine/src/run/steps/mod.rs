//! Step kinds, one module each, dispatched from [`run`]. Each kind turns its result into a
//! JSON "document" that `expect.json` and `capture` read with JSONPath.
//!
//! Kinds that later capabilities provide (deploy, traffic, rollback, fault, backup,
//! restore) plug in through [`Extensions`] without touching the runner.

pub mod cypher;
pub mod eventually;
pub mod exec;
pub mod http;
pub mod s3;
pub mod snapshot;
pub mod sql;
pub mod telemetry;

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use harness_scenario::{Action, Capture, CaptureFrom, Matcher, RowsExpect, Step};
use serde_json::Value;

use super::{context::Ctx, matcher};

pub use super::error::StepError;

/// A step kind provided by a capability.
pub trait StepHandler: Send + Sync {
    /// Checks the step's arguments when the run is planned; `Err` is a bad-input message.
    fn validate(&self, args: &Value) -> Result<(), String>;
    /// Runs the step; the returned value is the step's document.
    fn run<'a>(
        &'a self,
        ctx: &'a mut Ctx,
        args: &'a Value,
    ) -> BoxFuture<'a, Result<Value, StepError>>;
}

/// The capabilities registered with a runner, by step kind.
#[derive(Clone, Default)]
pub struct Extensions {
    handlers: BTreeMap<String, Arc<dyn StepHandler>>,
}

impl Extensions {
    pub fn register(&mut self, kind: &str, handler: Arc<dyn StepHandler>) {
        self.handlers.insert(kind.to_owned(), handler);
    }
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn StepHandler>> {
        self.handlers.get(kind)
    }
}

/// Runs one step. Returns how many tries it took (more than one only for `eventually`).
pub fn run<'a>(
    ctx: &'a mut Ctx,
    step: &'a Step,
    ext: &'a Extensions,
) -> BoxFuture<'a, Result<u32, StepError>> {
    Box::pin(async move {
        let result = match &step.action {
            Action::Http(s) => http::run(ctx, s).await,
            Action::Sql(s) => sql::run(ctx, s).await,
            Action::S3(s) => s3::run(ctx, s).await,
            Action::Cypher(s) => cypher::run(ctx, s).await,
            Action::Exec(s) => exec::run(ctx, s).await,
            Action::Snapshot(s) => snapshot::run(ctx, s).await,
            Action::Telemetry(s) => telemetry::run(ctx, s).await,
            Action::Eventually(e) => return eventually::run(ctx, e, ext).await,
            Action::Extension(x) => match ext.get(&x.kind) {
                Some(h) => {
                    let h = Arc::clone(h);
                    let args = ctx.render_value(&x.args)?;
                    h.run(ctx, &args).await.map(|_| ())
                }
                None => Err(StepError::error(format!(
                    "no capability provides the `{}` step kind",
                    x.kind
                ))),
            },
        };
        result.map(|()| 1).map_err(|e| match e {
            // Point at the step when the error has no more precise place.
            StepError::Error {
                message,
                span: None,
            } => StepError::Error {
                message,
                span: Some(step.span),
            },
            StepError::Failed {
                message,
                expected,
                actual,
                span: None,
            } => StepError::Failed {
                message,
                expected,
                actual,
                span: Some(step.span),
            },
            other => other,
        })
    })
}

/// Checks `expect.json`: each JSONPath against the document.
pub fn expect_json(
    ctx: &mut Ctx,
    doc: &Value,
    json: &BTreeMap<String, Matcher>,
) -> Result<(), StepError> {
    for (path, m) in json {
        let actual = matcher::select(path, doc);
        matcher::check(ctx, path, m, actual.as_ref())?;
    }
    Ok(())
}

/// `rows`, `row_count`, `affected` and `json` expectations (shared by `sql` and `cypher`).
pub fn check_rows(ctx: &mut Ctx, doc: &Value, e: &RowsExpect) -> Result<(), StepError> {
    if let Some(m) = &e.affected {
        matcher::check(ctx, "affected rows", m, doc.get("affected"))?;
    }
    if let Some(m) = &e.row_count {
        let n = doc.as_array().map(|a| Value::from(a.len()));
        matcher::check(ctx, "row count", m, n.as_ref())?;
    }
    if let Some(rows) = &e.rows {
        let expected = ctx.render_value(&Value::Array(rows.clone()))?;
        if !matcher::equal(&expected, doc) {
            return Err(StepError::Failed {
                message: "rows did not match".into(),
                expected: Some(matcher::short(&ctx.redactor, &expected)),
                actual: Some(matcher::short(&ctx.redactor, doc)),
                span: None,
            });
        }
    }
    expect_json(ctx, doc, &e.json)
}

fn select_capture(
    c: &Capture,
    doc: &Value,
    headers: Option<&BTreeMap<String, String>>,
) -> Option<Value> {
    match &c.from {
        CaptureFrom::Path(p) => matcher::select(p, doc),
        CaptureFrom::Header(h) => headers
            .and_then(|hs| hs.get(h))
            .map(|v| Value::String(v.clone())),
    }
}

/// Registers the values of `secret: true` captures with the redactor as soon as the
/// document exists, before any expectation: a failing expectation then never shows them.
pub fn register_secrets(
    ctx: &Ctx,
    doc: &Value,
    headers: Option<&BTreeMap<String, String>>,
    captures: &BTreeMap<String, Capture>,
) {
    for c in captures.values().filter(|c| c.secret) {
        if let Some(value) = select_capture(c, doc, headers) {
            ctx.add_secret_value(&value);
        }
    }
}

/// Stores captures from the document (and headers, for HTTP).
pub fn capture(
    ctx: &mut Ctx,
    doc: &Value,
    headers: Option<&BTreeMap<String, String>>,
    captures: &BTreeMap<String, Capture>,
) -> Result<(), StepError> {
    for (name, c) in captures {
        let Some(value) = select_capture(c, doc, headers) else {
            let from = match &c.from {
                CaptureFrom::Path(p) => format!("`{p}`"),
                CaptureFrom::Header(h) => format!("header `{h}`"),
            };
            return Err(StepError::Failed {
                message: format!("capture `{name}`: {from} found nothing"),
                expected: Some("a value to capture".into()),
                actual: Some(matcher::short(&ctx.redactor, doc)),
                span: Some(c.span),
            });
        };
        if c.secret {
            ctx.add_secret_value(&value);
        }
        ctx.captures.insert(name.clone(), value);
    }
    Ok(())
}

/// The step's `expect.error`: when set, the operation must have failed with a matching
/// message; when unset, a failure is an error of the step. `what` names the operation
/// ("the statement").
pub fn expect_error<T>(
    ctx: &mut Ctx,
    result: Result<T, String>,
    want: Option<&Matcher>,
    what: &str,
) -> Result<Option<T>, StepError> {
    match (result, want) {
        (Ok(v), None) => Ok(Some(v)),
        (Err(e), None) => Err(StepError::error(format!("{what} failed: {e}"))),
        (Err(e), Some(m)) => {
            matcher::check(ctx, "error", m, Some(&Value::String(e)))?;
            Ok(None)
        }
        (Ok(_), Some(m)) => Err(StepError::Failed {
            message: format!("{what} succeeded but an error was expected"),
            expected: Some("an error".into()),
            actual: Some("success".into()),
            span: Some(m.span),
        }),
    }
}
