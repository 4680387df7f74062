//! Every file in `scenarios/` is its own test and must pass; every file in
//! `tests/corpus/fail/` must fail, and how it fails (step, location, expected vs actual) is
//! an insta snapshot. Under nextest they share the test run's stack (`.config/test-stack.sh`),
//! except the files that take a stack service away: those start the stack they need.

mod support;

use std::path::Path;

use harness_engine::run::events::{Event, Status};
use serde_json::json;

fn library(path: &Path) -> datatest_stable::Result<()> {
    let out = support::run_files_shared(&[path.to_path_buf()])?;
    if out.summary.failed + out.summary.errored > 0 || out.summary.passed != 1 {
        return Err(format!("scenario did not pass:\n{}", out.console).into());
    }
    Ok(())
}

fn must_fail(path: &Path) -> datatest_stable::Result<()> {
    let out = support::run_files_shared(&[path.to_path_buf()])?;
    assert_eq!(
        out.summary.failed,
        1,
        "{} must fail:\n{}",
        path.display(),
        out.console
    );
    let mut steps = Vec::new();
    let mut finished = None;
    for e in &out.events {
        match e {
            Event::StepFinished {
                phase,
                name,
                status,
                ..
            } => steps.push(format!("{phase:?} › {name}: {status:?}")),
            Event::ScenarioFinished {
                status,
                failed_step,
                rollback_failures,
                ..
            } => {
                assert_eq!(*status, Status::Failed);
                finished = Some(json!({
                    "failed_step": failed_step,
                    "rollback_failures": rollback_failures,
                }));
            }
            _ => {}
        }
    }
    let text = serde_json::to_string(&json!({ "steps": steps, "outcome": finished }))?;
    for secret in &out.secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a stack secret leaked into events"
        );
        assert!(
            !out.console.contains(secret.as_str()),
            "a stack secret leaked into the console"
        );
    }
    // Retry counts depend on timing.
    let text = regex::Regex::new(r"after \d+ tries")?.replace_all(&text, "after N tries");
    // So do a drill's measured recovery time and losses (its objectives stay).
    let mut text = text.into_owned();
    for (measured, placeholder) in [
        (r"(RTO|RPO) \d+\.\d+ s", "$1 N s"),
        (
            r"\d+ committed records were lost, \d+\.\d+ s of commits",
            "N committed records were lost, N s of commits",
        ),
        (r"\(records \d+ to \d+\)", "(records N to M)"),
    ] {
        text = regex::Regex::new(measured)?
            .replace_all(&text, placeholder)
            .into_owned();
    }
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    insta::with_settings!({snapshot_path => "corpus/fail/outcomes", prepend_module_to_snapshot => false}, {
        insta::assert_yaml_snapshot!(name, value);
    });
    Ok(())
}

datatest_stable::harness! {
    { test = library, root = "../../scenarios", pattern = r"^(platform/)?[^_/][^/]*\.ya?ml$" },
    { test = library, root = "tests/corpus/pass", pattern = r"^(shared/)?[^_/][^/]*\.ya?ml$" },
    { test = must_fail, root = "tests/corpus/fail", pattern = r"^(shared/)?[^_/][^/]*\.ya?ml$" },
}
