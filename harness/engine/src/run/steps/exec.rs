//! `exec`: run a local command. The document is `{exit_code, stdout, stderr, json}` where
//! `json` is stdout parsed as JSON (or null).

use std::process::Stdio;

use harness_scenario::Exec;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{StepError, capture, expect_json};
use crate::run::{context::Ctx, matcher, processes};

pub async fn run(ctx: &mut Ctx, s: &Exec) -> Result<(), StepError> {
    let mut cmd = processes::program(ctx, s.cargo.as_deref(), s.command.as_ref(), &s.args).await?;
    let cwd = match &s.cwd {
        Some(d) => {
            let d = ctx.render_str(d)?;
            ctx.dir.join(d)
        }
        None => ctx.dir.clone(),
    };
    cmd.current_dir(&cwd).kill_on_drop(true);
    for (k, v) in &s.env {
        let v = ctx.render_str(v)?;
        cmd.env(k, v);
    }
    cmd.stdin(if s.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        StepError::error(format!(
            "could not start the command in {}: {e}",
            cwd.display()
        ))
    })?;
    if let (Some(input), Some(mut stdin)) = (&s.stdin, child.stdin.take()) {
        let input = ctx.render_str(input)?;
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| StepError::error(format!("writing stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| StepError::error(format!("waiting for the command: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().map_or(Value::Null, Value::from);
    let parsed = serde_json::from_str::<Value>(&stdout).unwrap_or(Value::Null);
    let doc = json!({"exit_code": code, "stdout": stdout, "stderr": stderr, "json": parsed});

    match &s.expect.exit_code {
        Some(m) => matcher::check(ctx, "exit code", m, doc.get("exit_code"))?,
        None => {
            if code != 0 {
                return Err(StepError::Failed {
                    message: format!("command exited with {code}; stderr: {}", tail(&stderr)),
                    expected: Some("0".into()),
                    actual: Some(code.to_string()),
                    span: None,
                });
            }
        }
    }
    if let Some(m) = &s.expect.stdout {
        matcher::check(ctx, "stdout", m, doc.get("stdout"))?;
    }
    if let Some(m) = &s.expect.stderr {
        matcher::check(ctx, "stderr", m, doc.get("stderr"))?;
    }
    expect_json(ctx, &doc, &s.expect.json)?;
    capture(ctx, &doc, None, &s.capture)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
