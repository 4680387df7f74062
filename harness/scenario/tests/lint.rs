//! Every file in `tests/lint/` is a valid scenario that the lint pass warns about; its
//! warnings, as `harness validate` renders them, must match the snapshot in
//! `tests/lint/snapshots/`.

use datatest_stable::Utf8Path;
use harness_scenario::{Diagnostics, Severity, Source, lint};

const ROOT: &str = "tests/lint";

fn warned(path: &Utf8Path, text: String) -> datatest_stable::Result<()> {
    let name = path.strip_prefix(ROOT).unwrap_or(path).as_str();
    let scenario = harness_scenario::parse(name, &text)
        .map_err(|d| format!("{name} is invalid:\n{}", d.to_plain()))?;
    let warnings = lint(&scenario);
    if warnings.is_empty() {
        return Err(format!("{name}: no warnings").into());
    }
    for w in &warnings {
        let at = text.get(w.span.offset..w.span.offset + w.span.len);
        if w.severity != Severity::Warning || !at.is_some_and(|t| t.starts_with("${")) {
            return Err(format!("{name}: `{}` points at {at:?}", w.message).into());
        }
    }
    let diagnostics = Diagnostics::new(Source::new(name, text), warnings);
    let stem = path.file_stem().unwrap_or(name).to_owned();
    insta::with_settings!({
        snapshot_path => "lint/snapshots",
        prepend_module_to_snapshot => false,
        input_file => path.as_str(),
        omit_expression => true,
    }, {
        insta::assert_snapshot!(stem, diagnostics.render());
    });
    Ok(())
}

datatest_stable::harness! {
    { test = warned, root = ROOT, pattern = r"^[^/]+\.ya?ml$" },
}
