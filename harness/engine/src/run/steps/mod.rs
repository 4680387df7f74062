//! Step kinds, one module each. A kind is a [`Handler`] over its typed arguments from
//! `harness_scenario::kinds`: `run` returns the step's document, `check` applies the kind's
//! own expectations (status, rows, exit code, …), and [`run`] applies what every kind shares
//! (secret captures registered first, then `expect.json`, then `capture`).
//!
//! Adding a kind: a file here with `impl Handler for TheKind`, and one line in [`run`].
//! Experimental `x-` kinds plug in through [`Extensions`] without touching the runner.

pub mod cloud_run;
pub mod cypher;
pub mod drill;
pub mod eventually;
pub mod exec;
pub mod fault;
pub mod http;
pub mod rls;
pub mod s3;
pub mod snapshot;
pub mod sql;
pub mod telemetry;

use std::{collections::BTreeMap, future::Future, sync::Arc};

use futures::future::BoxFuture;
use harness_scenario::{Action, Capture, CaptureFrom, Kind, Matcher, RowsExpect, Step};
use serde_json::Value;

use super::{context::Ctx, matcher};

pub use super::error::StepError;

/// What a step produced: the document `expect.json` and `capture` read with JSONPath, and
/// for HTTP the response headers `capture` can name.
pub trait Document: Send {
    fn doc(&self) -> &Value;
    fn headers(&self) -> Option<&BTreeMap<String, String>> {
        None
    }
}

impl Document for Value {
    fn doc(&self) -> &Value {
        self
    }
}

/// The engine half of a step kind.
pub trait Handler: Kind + Sync {
    type Output: Document;
    /// Runs the step. `Ok(None)`: nothing to check further (the operation failed as
    /// `expect.error` asked, or the kind has no document).
    fn run(
        &self,
        ctx: &mut Ctx,
    ) -> impl Future<Output = Result<Option<Self::Output>, StepError>> + Send;
    /// The kind's own expectations, after secret captures are registered and before
    /// `expect.json`.
    fn check(&self, _ctx: &mut Ctx, _out: &Self::Output) -> Result<(), StepError> {
        Ok(())
    }
}

/// Runs a kind and applies what every kind shares.
async fn checked<K: Handler>(ctx: &mut Ctx, kind: &K) -> Result<(), StepError> {
    let Some(out) = kind.run(ctx).await? else {
        return Ok(());
    };
    apply(ctx, &out, kind.json_expect(), kind.captures(), |ctx| {
        kind.check(ctx, &out)
    })
}

/// Secrets first (so no failure shows them), then the kind's checks, `expect.json` and
/// `capture`.
fn apply(
    ctx: &mut Ctx,
    out: &dyn Document,
    json: &BTreeMap<String, Matcher>,
    captures: &BTreeMap<String, Capture>,
    check: impl FnOnce(&mut Ctx) -> Result<(), StepError>,
) -> Result<(), StepError> {
    register_secrets(ctx, out.doc(), out.headers(), captures);
    check(ctx)?;
    expect_json(ctx, out.doc(), json)?;
    capture(ctx, out.doc(), out.headers(), captures)
}

/// An experimental `x-` step kind provided by a handler registered with the runner.
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

/// The `x-` kinds registered with a runner.
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
            Action::Http(s) => checked(ctx, s).await,
            Action::Sql(s) => checked(ctx, s).await,
            Action::S3(s) => checked(ctx, s).await,
            Action::Cypher(s) => checked(ctx, s).await,
            Action::Exec(s) => checked(ctx, s).await,
            Action::Snapshot(s) => checked(ctx, s).await,
            Action::Telemetry(s) => checked(ctx, s).await,
            Action::Fault(s) => checked(ctx, s).await,
            Action::Schedule(s) => checked(ctx, s).await,
            Action::Deploy(s) => checked(ctx, s).await,
            Action::Traffic(s) => checked(ctx, s).await,
            Action::Rollback(s) => checked(ctx, s).await,
            Action::Job(s) => checked(ctx, s).await,
            Action::Backup(s) => checked(ctx, s).await,
            Action::Disaster(s) => checked(ctx, s).await,
            Action::Restore(s) => checked(ctx, s).await,
            Action::Verify(s) => checked(ctx, s).await,
            Action::Rls(s) => checked(ctx, s).await,
            Action::Eventually(e) => return eventually::run(ctx, e, ext).await,
            // The plan refuses these; a runner driven without a plan says so too.
            Action::Reserved(r) => Err(StepError::Error {
                message: format!(
                    "step kind `{}` is not available yet: it comes with {}",
                    r.kind, r.capability
                ),
                span: Some(r.span),
            }),
            Action::Extension(x) => match ext.get(&x.kind) {
                Some(h) => {
                    let h = Arc::clone(h);
                    let args = ctx.render_value(&x.args)?;
                    // Checked again once filled in: the plan saw the text as written.
                    h.validate(&args).map_err(|message| StepError::Error {
                        message,
                        span: Some(x.span),
                    })?;
                    let doc = h.run(ctx, &args).await?;
                    apply(ctx, &doc, &x.json, &x.capture, |_| Ok(()))
                }
                None => Err(StepError::error(format!(
                    "no handler provides the `{}` step kind",
                    x.kind
                ))),
            },
        };
        // Point at the step when the error has no more precise place.
        result.map(|()| 1).map_err(|e| e.at(step.span))
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

/// `rows`, `row_count` and `affected` expectations (shared by `sql` and `cypher`).
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
            let message = match matcher::difference_note(&ctx.redactor, "$", &expected, doc) {
                Some(note) => format!("rows did not match; {note}"),
                None => "rows did not match".into(),
            };
            return Err(StepError::Failed {
                message,
                expected: Some(matcher::short(&ctx.redactor, &expected)),
                actual: Some(matcher::short(&ctx.redactor, doc)),
                span: None,
            });
        }
    }
    Ok(())
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
