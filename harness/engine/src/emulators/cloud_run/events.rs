//! The emulator's structured events: every deploy decision, instance start and stop, cold
//! start and request, in memory (for tests and reports) and as JSON lines in
//! `events.jsonl` of the log folder.

use std::{io::Write, path::Path, sync::Mutex};

use serde_json::{Value, json};

pub struct Events {
    list: Mutex<Vec<Value>>,
    file: Mutex<Option<std::fs::File>>,
    redact: Mutex<Vec<String>>,
}

impl Events {
    pub fn new(dir: &Path) -> Self {
        let file = std::fs::create_dir_all(dir)
            .ok()
            .and_then(|()| std::fs::File::create(dir.join("events.jsonl")).ok());
        Events {
            list: Mutex::new(Vec::new()),
            file: Mutex::new(file),
            redact: Mutex::new(Vec::new()),
        }
    }

    /// Values (secrets) that never appear in an event.
    pub fn redact(&self, value: &str) {
        if value.len() >= 4 {
            self.redact
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(value.to_owned());
        }
    }

    /// Records `event` of `kind`, with its time.
    pub fn push(&self, kind: &str, mut event: Value) {
        event["event"] = json!(kind);
        event["at"] = json!(super::meta::now());
        let mut text = event.to_string();
        let mut changed = false;
        for s in self.redact.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "[redacted]");
                changed = true;
            }
        }
        let event: Value = if changed {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        } else {
            event
        };
        if let Some(f) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(f, "{text}");
        }
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<Value> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Events of `kind` so far.
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }
}
