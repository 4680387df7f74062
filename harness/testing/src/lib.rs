//! Each scenario file of a project as its own test, for `cargo test` and `cargo nextest run`.
//!
//! A test target with `harness = false` calls [`main`] with the folder of scenario files:
//!
//! ```toml
//! [[test]]
//! name = "scenarios"
//! harness = false
//!
//! [dev-dependencies]
//! harness-testing = "0.1"
//! ```
//!
//! ```no_run
//! // tests/scenarios.rs
//! fn main() -> std::process::ExitCode {
//!     harness_testing::main("scenarios")
//! }
//! ```
//!
//! Every `*.yaml` and `*.yml` file under the folder is one test, named by its path in it
//! (files and folders starting with `_` or `.`, and folders named `snapshots` or `fixtures`,
//! are not scenarios, as for `harness run`). A test runs `harness run FILE`: the `harness`
//! CLI on `PATH`, or the program `HARNESS_BIN` names. It passes when the scenario passes; a
//! failed scenario's report is the test's output.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use libtest_mimic::{Arguments, Failed, Trial};

/// The environment variable naming the `harness` program to run (default: `harness` on
/// `PATH`).
pub const BIN_ENV: &str = "HARNESS_BIN";

/// Runs the scenario files under `root` (relative to the package, `CARGO_MANIFEST_DIR`) as
/// tests, with the test harness's usual arguments (filters, `--list`, `--exact`, ...).
pub fn main(root: impl AsRef<Path>) -> ExitCode {
    let args = Arguments::from_args();
    let base = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let root = base.join(root);
    let files = match scenario_files(&root) {
        Ok(files) => files,
        Err(e) => {
            eprintln!(
                "error: cannot read the scenario folder {}: {e}",
                root.display()
            );
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!(
            "error: no scenario files (*.yaml, *.yml) under {}",
            root.display()
        );
        return ExitCode::from(2);
    }
    let trials = files
        .into_iter()
        .map(|file| {
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            Trial::test(name, move || run_one(&file))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// The scenario files under `root`, sorted.
pub fn scenario_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                if name != "snapshots" && name != "fixtures" {
                    walk(&path, out)?;
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    out.sort();
    Ok(out)
}

/// The `harness` program this crate runs.
pub fn harness_bin() -> OsString {
    std::env::var_os(BIN_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "harness".into())
}

fn run_one(file: &Path) -> Result<(), Failed> {
    let bin = harness_bin();
    let out = Command::new(&bin)
        .arg("run")
        .arg(file)
        .args(["--jobs", "1", "--color", "false"])
        .output()
        .map_err(|e| {
            Failed::from(format!(
                "could not start `{}`: {e}\nhelp: install the harness CLI (`cargo install --path harness/cli` in a harness checkout, or `cargo install --git URL harness-cli`), or set {BIN_ENV} to its path",
                bin.to_string_lossy()
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Failed::from(format!(
        "`harness run {}` {}\n{}{}",
        file.display(),
        match out.status.code() {
            Some(1) => "reported a failed scenario".to_owned(),
            Some(code) => format!("exited with {code}"),
            None => "was killed by a signal".to_owned(),
        },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_files_skip_what_harness_run_skips() {
        let dir = std::env::temp_dir().join(format!("harness-testing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in [
            "a.yaml",
            "b.yml",
            "_defaults.yaml",
            ".hidden.yaml",
            "notes.txt",
            "sub/c.yaml",
            "_private/d.yaml",
            "snapshots/e.yaml",
            "fixtures/f.yaml",
        ] {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, "").expect("write");
        }
        let found: Vec<String> = scenario_files(&dir)
            .expect("walk")
            .iter()
            .map(|p| p.strip_prefix(&dir).expect("inside").display().to_string())
            .collect();
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(found, ["a.yaml", "b.yml", "sub/c.yaml"]);
    }
}
