//! Every file in `tests/malformed/` must be rejected, with each problem pointing inside the
//! file, and its full report must match the snapshot in `tests/malformed/snapshots/`.

use datatest_stable::Utf8Path;
use harness_scenario::Diagnostics;

const ROOT: &str = "tests/malformed";

fn rejected(path: &Utf8Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    // The name relative to the corpus keeps absolute paths out of the snapshots.
    let name = path.strip_prefix(ROOT).unwrap_or(path).as_str();
    let diagnostics = match harness_scenario::parse_bytes(name, &bytes) {
        Ok(scenario) => {
            return Err(format!("{name} was accepted: {scenario:#?}").into());
        }
        Err(d) => d,
    };
    check_spans(name, &diagnostics)?;
    let stem = path.file_stem().unwrap_or(name).to_owned();
    insta::with_settings!({
        snapshot_path => "malformed/snapshots",
        prepend_module_to_snapshot => false,
        input_file => path.as_str(),
        omit_expression => true,
    }, {
        insta::assert_snapshot!(stem, diagnostics.render());
    });
    Ok(())
}

/// Every problem, and every place it also points at, lies inside the file's text.
fn check_spans(name: &str, d: &Diagnostics) -> datatest_stable::Result<()> {
    if d.problems.is_empty() {
        return Err(format!("{name}: rejected without any problem").into());
    }
    let len = d.source.text.len();
    for p in &d.problems {
        let spans = std::iter::once(p.span).chain(p.also.iter().map(|(s, _)| *s));
        for s in spans {
            if s.offset + s.len > len {
                return Err(format!(
                    "{name}: problem `{}` points at {}..{}, past the end ({len} bytes)",
                    p.message,
                    s.offset,
                    s.offset + s.len
                )
                .into());
            }
        }
        let (line, col) = d.source.line_col(p.span.offset);
        let lines = d.source.text.lines().count().max(1);
        if line > lines + 1 || col == 0 {
            return Err(format!("{name}: problem `{}` at {line}:{col}", p.message).into());
        }
    }
    Ok(())
}

datatest_stable::harness! {
    { test = rejected, root = ROOT, pattern = r"^[^/]+\.(yaml|yml|bin)$" },
}
