//! Helpers shared by the CLI test binaries.

use std::{path::Path, time::Duration};

/// Waits until a run owned by `owner` in `home` has a record for which `done` holds, and
/// returns that record.
pub fn wait_for_run(
    home: &Path,
    owner: u32,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..1200 {
        let found = std::fs::read_dir(home.join("runs"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{owner}-"))
            })
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .find(|r| done(r));
        if let Some(record) = found {
            return record;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {owner} never recorded {what}");
}
