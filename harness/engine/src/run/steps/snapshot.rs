//! `snapshot`: compare a value with a snapshot stored beside the scenario, in insta's
//! `.snap` format (`snapshots/<file stem>__<name>.snap`), so `cargo insta review` can
//! accept changes. A missing or different snapshot fails the step and writes a `.snap.new`
//! beside it; `--update-snapshots` (or `INSTA_UPDATE=always`) writes the snapshot instead.
//! Secrets and the `redact` JSONPaths are replaced before anything is compared or written.

use std::path::PathBuf;

use harness_scenario::Snapshot;
use serde_json::Value;

use super::{Handler, StepError};
use crate::run::context::Ctx;

impl Handler for Snapshot {
    type Output = Value;

    /// A snapshot has no document: it passes or fails here.
    async fn run(&self, ctx: &mut Ctx) -> Result<Option<Value>, StepError> {
        compare(ctx, self).await.map(|()| None)
    }
}

async fn compare(ctx: &mut Ctx, s: &Snapshot) -> Result<(), StepError> {
    let mut value = ctx.render_value(&s.value)?;
    for path in &s.redact {
        redact_path(&mut value, path);
    }
    ctx.redactor.redact_value(&mut value);
    let body = serde_json::to_string_pretty(&value).map_err(|e| StepError::error(e.to_string()))?;
    let file = snapshot_path(ctx, &s.name);
    let header = format!(
        "---\nsource: {}\nexpression: {}\n---\n",
        ctx.path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        s.name
    );
    let update = ctx.update_snapshots || std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    let existing = std::fs::read_to_string(&file).ok();
    let stored = existing.as_deref().map(snapshot_body);
    if stored == Some(body.trim_end()) {
        return Ok(());
    }
    let write = |path: &PathBuf| -> Result<(), StepError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StepError::error(format!("create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, format!("{header}{body}\n"))
            .map_err(|e| StepError::error(format!("write {}: {e}", path.display())))
    };
    if update {
        return write(&file);
    }
    let new = file.with_extension("snap.new");
    write(&new)?;
    let new = crate::run::shown_path(&new);
    Err(StepError::Failed {
        message: match stored {
            Some(_) => format!(
                "snapshot `{}` changed; review {} (or run with --update-snapshots)",
                s.name,
                new.display()
            ),
            None => format!(
                "snapshot `{}` does not exist yet; review {} (or run with --update-snapshots)",
                s.name,
                new.display()
            ),
        },
        expected: stored.map(|s| s.to_owned()),
        actual: Some(body),
        span: None,
    })
}

fn snapshot_path(ctx: &Ctx, name: &str) -> PathBuf {
    let stem = ctx
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ctx.dir
        .join("snapshots")
        .join(format!("{stem}__{name}.snap"))
}

/// The body of an insta snapshot file: everything after the second `---` line.
fn snapshot_body(text: &str) -> &str {
    let mut rest = text;
    for _ in 0..2 {
        match rest.find("---\n") {
            Some(i) => rest = &rest[i + 4..],
            None => return text.trim_end(),
        }
    }
    rest.trim_end()
}

fn redact_path(value: &mut Value, path: &str) {
    let Ok(p) = serde_json_path::JsonPath::parse(path) else {
        return;
    };
    let locations: Vec<String> = p
        .query_located(value)
        .locations()
        .map(|l| l.to_json_pointer())
        .collect();
    for pointer in locations {
        if let Some(v) = value.pointer_mut(&pointer) {
            *v = Value::String("[redacted]".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_body_of_an_insta_file() {
        assert_eq!(
            snapshot_body("---\nsource: a\n---\n{\n  \"a\": 1\n}\n"),
            "{\n  \"a\": 1\n}"
        );
    }

    #[test]
    fn redacts_every_match() {
        let mut v = json!({"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]});
        redact_path(&mut v, "$.items[*].id");
        assert_eq!(
            v,
            json!({"items": [{"id": "[redacted]", "n": "a"}, {"id": "[redacted]", "n": "b"}]})
        );
    }
}
