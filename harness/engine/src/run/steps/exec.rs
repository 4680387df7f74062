//! `exec`: run a local command. The document is `{exit_code, stdout, stderr, json}` where
//! `json` is stdout parsed as JSON (or null).

use std::process::Stdio;

use harness_scenario::Exec;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{Handler, StepError};
use crate::{
    run::{context::Ctx, matcher, processes},
    stack::native::process::GroupGuard,
};

impl Handler for Exec {
    type Output = Value;

    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        let s = self;
        let mut cmd =
            processes::program(ctx, s.cargo.as_deref(), s.command.as_ref(), &s.args).await?;
        let cwd = match &s.cwd {
            Some(d) => {
                let d = ctx.render(d)?;
                ctx.dir.join(d)
            }
            None => ctx.dir.clone(),
        };
        // Its own process group, so a timeout or Ctrl-C kills what the command started too.
        cmd.current_dir(&cwd).process_group(0).kill_on_drop(true);
        if let Some(groups) = &ctx.groups {
            cmd.env(crate::stack::records::RUN_DIR_ENV, groups.run_dir());
        }
        for (k, v) in &s.env {
            let v = ctx.render(v)?;
            cmd.env(k, v);
        }
        let input = match &s.stdin {
            Some(text) => Some(ctx.render(text)?),
            None => None,
        };
        cmd.stdin(if input.is_some() {
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
        let _group = GroupGuard::new(child.id()).recorded(ctx.groups.clone(), "exec");
        // Feed stdin while reading both outputs, so neither side blocks on a full pipe.
        let stdin = child.stdin.take();
        let write = async move {
            if let (Some(input), Some(mut stdin)) = (input, stdin) {
                match stdin.write_all(input.as_bytes()).await {
                    // The command need not read all of its input.
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        return Err(StepError::error(format!("writing stdin: {e}")));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let ((), out, err) = tokio::try_join!(write, read_all(stdout), read_all(stderr))?;
        let status = child
            .wait()
            .await
            .map_err(|e| StepError::error(format!("waiting for the command: {e}")))?;
        let stdout = String::from_utf8_lossy(&out).into_owned();
        let stderr = String::from_utf8_lossy(&err).into_owned();
        let code = status.code().map_or(Value::Null, Value::from);
        let parsed = serde_json::from_str::<Value>(&stdout).unwrap_or(Value::Null);
        Ok(Some(
            json!({"exit_code": code, "stdout": stdout, "stderr": stderr, "json": parsed}),
        ))
    }

    fn check(&self, ctx: &mut Ctx, doc: &Value) -> Result<(), StepError> {
        let s = self;
        let code = doc.get("exit_code").cloned().unwrap_or(Value::Null);
        let stderr = doc
            .get("stderr")
            .and_then(Value::as_str)
            .unwrap_or_default();

        match &s.expect.exit_code {
            Some(m) => matcher::check(ctx, "exit code", m, doc.get("exit_code"))?,
            None => {
                if code != 0 {
                    return Err(StepError::Failed {
                        message: format!("command exited with {code}; stderr: {}", tail(stderr)),
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
        Ok(())
    }
}

async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, StepError> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buf)
            .await
            .map_err(|e| StepError::error(format!("reading the command's output: {e}")))?;
    }
    Ok(buf)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
