//! Every file in `tests/malformed/` must be rejected, with each problem pointing inside the
//! file, and its full report must match the snapshot in `tests/malformed/snapshots/`.

use datatest_stable::Utf8Path;
use harness_scenario::Diagnostics;

const ROOT: &str = "tests/malformed";

fn rejected(path: &Utf8Path, bytes: Vec<u8>) -> datatest_stable::Result<()> {
    // The name relative to the corpus keeps absolute paths out of the snapshots.
    let name = path.strip_prefix(ROOT).unwrap_or(path).as_str();
    // A folder's shared defaults come with each of its files, as `harness run` reads them.
    let shared_path = path.with_file_name(harness_scenario::SHARED_FILE);
    let shared = std::fs::read(&shared_path).ok().map(|b| {
        let shared_name = shared_path.strip_prefix(ROOT).unwrap_or(&shared_path);
        (shared_name.as_str().to_owned(), b)
    });
    let shared = shared.as_ref().map(|(n, b)| (n.as_str(), b.as_slice()));
    let diagnostics = match harness_scenario::parse_files(name, &bytes, shared) {
        Ok((scenario, _)) => {
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
    { test = rejected, root = ROOT, pattern = r"^(shared/)?[^_/][^/]*\.(yaml|yml|bin)$" },
}
