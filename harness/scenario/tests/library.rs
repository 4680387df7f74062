//! The scenario library (`scenarios/*.yaml` at the workspace root) is the example people
//! copy: every file must parse and pass the lint with no warnings.

use std::path::PathBuf;

use harness_scenario::{Diagnostics, Source, lint, parse_bytes};

fn library() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
            yaml && !name.starts_with(['_', '.']) && p.is_file()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_library_has_no_lint_warnings() {
    let files = library();
    assert!(files.len() >= 5, "found only {files:?}");
    let mut reports = String::new();
    for path in &files {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let name = format!("scenarios/{file}");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let scenario = match parse_bytes(&name, &bytes) {
            Ok(s) => s,
            Err(d) => {
                reports.push_str(&d.to_plain());
                continue;
            }
        };
        let warnings = lint(&scenario);
        if !warnings.is_empty() {
            let source = Source::new(name, String::from_utf8_lossy(&bytes).into_owned());
            reports.push_str(&Diagnostics::new(source, warnings).to_plain());
        }
    }
    assert!(
        reports.is_empty(),
        "the scenario library has problems:\n{reports}"
    );
}
