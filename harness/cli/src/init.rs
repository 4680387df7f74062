//! `harness init`: the files a project needs to test itself with harness.
//!
//! It writes a first scenario, a CI workflow and `.gitignore` lines into any project, and in
//! a Cargo package also the nextest wiring that makes each scenario file its own test (a
//! `[[test]]` target calling the `harness-testing` crate). It writes only files that are
//! not there yet, unless `--force`.

use std::path::{Path, PathBuf};

use harness_engine::Error;

const FIRST_SCENARIO: &str = r#"# A first scenario for {name}. `harness run scenarios/` runs every file here; each one gets
# its own database (and bucket and graph label, with those services in `stack`).
#
# To test your service, start it under `processes` (any language: `command` runs any
# program) and check it with `http` steps. docs/your-app.md in harness walks through it.
name: the stack is up and the scenario's own database answers
stack: [postgres]
# processes:
#   - name: app
#     {program}
#     env_from: [postgres]        # DATABASE_URL and PG* for this scenario's database
#     ready: { http: /healthz }   # started when GET /healthz answers 2xx
# defaults:
#   http: { base_url: "${processes.app.url}" }
steps:
  - name: the database answers, and starts empty
    sql:
      query: select count(*) as tables from information_schema.tables where table_schema = 'public'
      expect:
        rows: [{ tables: 0 }]
  # - name: the service is healthy
  #   http: { url: /healthz, expect: { status: 200 } }
"#;

const TEST_TARGET: &str = r#"//! Each file under `scenarios/` is its own test: `cargo nextest run --test scenarios`
//! (or `cargo test --test scenarios`). Written by `harness init`.

fn main() -> std::process::ExitCode {
    harness_testing::main("scenarios")
}
"#;

const WORKFLOW: &str = r#"# Written by `harness init`: runs the scenarios under scenarios/ on every push and pull
# request, and keeps the JUnit report.
name: scenarios
on: [push, pull_request]
jobs:
  scenarios:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: install harness and its runtimes
        run: |
          cargo install --locked --git {repository} harness-cli
          harness runtimes install
      - name: run the scenarios
        run: {run}
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: scenario-report
          path: {report}
"#;

const GITIGNORE: &[&str] = &["# harness", "*.snap.new", "/target/"];

/// What `harness init` wrote or changed, relative to the project folder.
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Whether the project is a Cargo package (and got the test target).
    pub cargo: bool,
}

pub fn init(dir: &Path, force: bool) -> Result<Written, Error> {
    if !dir.is_dir() {
        return Err(Error::BadInput(format!(
            "init {}: there is no such folder",
            dir.display()
        )));
    }
    let manifest = dir.join("Cargo.toml");
    let cargo_toml = match std::fs::read_to_string(&manifest) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(format!("read {}", manifest.display()), e)),
    };
    let package = cargo_toml.as_deref().and_then(package_name);
    if cargo_toml.is_some() && package.is_none() {
        return Err(Error::BadInput(format!(
            "init {}: its Cargo.toml has no [package] with a name (a workspace root?); run `harness init` in the package that should run the scenarios",
            dir.display()
        )));
    }
    let name = package.clone().unwrap_or_else(|| {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "your service".into())
    });

    let mut plan: Vec<(PathBuf, String)> = Vec::new();
    let program = match &package {
        Some(p) => format!("cargo: {p}               # this package's binary, built once per run"),
        None => "command: [\"./server\"]      # any program; $PORT is its port".to_owned(),
    };
    plan.push((
        PathBuf::from("scenarios/smoke.yaml"),
        FIRST_SCENARIO
            .replace("{name}", &name)
            .replace("{program}", &program),
    ));
    let (run, report) = if package.is_some() {
        plan.push((PathBuf::from("tests/scenarios.rs"), TEST_TARGET.to_owned()));
        (
            "cargo install --locked cargo-nextest && cargo nextest run --test scenarios --profile ci",
            "target/nextest/ci/junit.xml",
        )
    } else {
        (
            "harness run scenarios/ --junit target/junit.xml --json target/report.json",
            "target/",
        )
    };
    plan.push((
        PathBuf::from(".github/workflows/scenarios.yml"),
        WORKFLOW
            .replace("{repository}", env!("CARGO_PKG_REPOSITORY"))
            .replace("{run}", run)
            .replace("{report}", report),
    ));
    if package.is_some() {
        plan.push((PathBuf::from(".config/nextest.toml"), NEXTEST.to_owned()));
    }
    for (path, _) in &plan {
        if !force && dir.join(path).exists() {
            return Err(Error::BadInput(format!(
                "init: {} is there already, and harness init does not overwrite; move it away, or pass --force to replace what harness init writes",
                dir.join(path).display()
            )));
        }
    }
    let mut written = Vec::new();
    for (path, text) in plan {
        write(&dir.join(&path), &text)?;
        written.push(path);
    }
    if let Some(text) = &cargo_toml {
        let edited = with_test_target(text, &dependency());
        if edited != *text {
            write(&manifest, &edited)?;
            written.push(PathBuf::from("Cargo.toml"));
        }
    }
    let gitignore = dir.join(".gitignore");
    let old = match std::fs::read_to_string(&gitignore) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(format!("read {}", gitignore.display()), e)),
    };
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .copied()
        .filter(|l| {
            l.starts_with('#')
                || !old
                    .lines()
                    .any(|o| o.trim().trim_end_matches('/') == l.trim_end_matches('/'))
        })
        .collect();
    if missing.iter().any(|l| !l.starts_with('#')) {
        let mut text = old.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for l in missing {
            text.push_str(l);
            text.push('\n');
        }
        write(&gitignore, &text)?;
        written.push(PathBuf::from(".gitignore"));
    }
    Ok(Written {
        files: written,
        cargo: package.is_some(),
    })
}

const NEXTEST: &str = r#"# Written by `harness init`. Each scenario starts its own stack, so a few at a time.
[profile.default]
slow-timeout = { period = "60s", terminate-after = 5 }

[profile.ci]
fail-fast = false
junit = { path = "junit.xml" }

[test-groups]
scenarios = { max-threads = 2 }

[[profile.default.overrides]]
filter = "binary(scenarios)"
test-group = "scenarios"
"#;

/// The `harness-testing` dependency line: the crate beside this CLI's source when it is
/// there (an install from a checkout or from git), else the published version.
fn dependency() -> String {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testing");
    match beside.join("Cargo.toml").is_file() {
        true => {
            let path = beside.canonicalize().unwrap_or(beside);
            format!(
                "harness-testing = {{ path = {:?} }}",
                path.display().to_string()
            )
        }
        false => format!("harness-testing = \"{}\"", env!("CARGO_PKG_VERSION")),
    }
}

/// The package name in a Cargo.toml's `[package]` table.
fn package_name(text: &str) -> Option<String> {
    let mut in_package = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_package = t == "[package]";
            continue;
        }
        if in_package
            && let Some(rest) = t.strip_prefix("name")
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// The manifest with a `scenarios` test target (no libtest harness) and the dev-dependency,
/// each added only when missing.
fn with_test_target(text: &str, dependency: &str) -> String {
    let mut out = text.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let has_target = text.contains("name = \"scenarios\"");
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("harness-testing"))
    {
        match out.find("[dev-dependencies]\n") {
            Some(at) => {
                let at = at + "[dev-dependencies]\n".len();
                out.insert_str(at, &format!("{dependency}\n"));
            }
            None => out.push_str(&format!("\n[dev-dependencies]\n{dependency}\n")),
        }
    }
    if !has_target {
        out.push_str("\n# Each file under scenarios/ is its own test (written by `harness init`).\n[[test]]\nname = \"scenarios\"\nharness = false\n");
    }
    out
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| io(format!("create {}", parent.display()), e))?;
    }
    std::fs::write(path, text).map_err(|e| io(format!("write {}", path.display()), e))
}

fn io(context: String, source: std::io::Error) -> Error {
    Error::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_target_and_dependency_are_added_once() {
        let text = "[package]\nname = \"demo\"\n\n[dev-dependencies]\nserde = \"1\"\n";
        let once = with_test_target(text, "harness-testing = \"0.1.0\"");
        assert!(once.contains("[dev-dependencies]\nharness-testing = \"0.1.0\"\nserde"));
        assert!(once.contains("[[test]]\nname = \"scenarios\"\nharness = false\n"));
        assert_eq!(with_test_target(&once, "harness-testing = \"0.1.0\""), once);
        let bare = with_test_target("[package]\nname = \"x\"", "harness-testing = \"0.1.0\"");
        assert!(bare.contains("\n[dev-dependencies]\nharness-testing = \"0.1.0\"\n"));
    }

    #[test]
    fn the_package_name_comes_from_the_package_table() {
        let text = "[workspace]\nname = \"no\"\n[package]\nversion = \"1\"\nname = \"demo-app\"\n";
        assert_eq!(package_name(text).as_deref(), Some("demo-app"));
        assert_eq!(package_name("[workspace]\nmembers = []\n"), None);
    }
}
