//! Helpers shared by the scenario tests: run files on a fresh stack and keep every event
//! and every byte of console output.

#![allow(dead_code)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use harness_engine::{
    report::{Fanout, console::Console, json::JsonReport, junit::JunitReport},
    run::{
        Reporter, RunOptions, Summary,
        events::Event,
        session::{
            SessionError, StackSource, can_share_recorded, load_paths, run_loaded, stack_secrets,
        },
    },
};

/// A `Write` whose bytes can be read afterwards.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buffer lock")).into_owned()
    }
}

#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Event>>>);

impl Reporter for Collect {
    fn event(&mut self, event: &Event) {
        self.0.lock().expect("events lock").push(event.clone());
    }
}

/// A file or folder of the engine's test corpus (`tests/corpus/REL`).
pub fn corpus(rel: &str) -> PathBuf {
    PathBuf::from("tests/corpus").join(rel)
}

/// Writes scenario files into a fresh folder.
pub fn scenarios(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write scenario");
    }
    dir
}

/// The folder the workspace's binaries are built into (`target/debug`), so `cargo:`
/// processes use the binaries this test run built instead of building again.
pub fn bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/debug/deps/<test binary>
    Some(exe.parent()?.parent()?.to_path_buf())
}

pub struct Outcome {
    pub summary: Summary,
    pub events: Vec<Event>,
    pub console: String,
    /// The stack's generated credentials.
    pub secrets: Vec<String>,
}

pub fn run_files(paths: &[PathBuf], jobs: usize) -> Result<Outcome, String> {
    run(paths, jobs, None, RunOptions::default())
}

/// The variable the nextest setup script (`.config/test-stack.sh`) sets to the run id of
/// the stack it started for the whole test run.
pub const TEST_STACK_ENV: &str = "HARNESS_TEST_STACK";

/// Like [`run_files`], on the test run's shared stack when there is one and the files can
/// share it: none takes a stack service away (those start a stack of their own, as they
/// would run alone in one run), and the stack has every service they need.
pub fn run_files_shared(paths: &[PathBuf]) -> Result<Outcome, String> {
    let shared = std::env::var(TEST_STACK_ENV)
        .ok()
        .filter(|id| !id.is_empty())
        .filter(|id| can_share_recorded(paths, id));
    run_on(paths, 1, None, RunOptions::default(), shared)
}

/// Like [`run_files`], with options (extensions, cancellation) of the test's own.
pub fn run_files_with(
    paths: &[PathBuf],
    jobs: usize,
    options: RunOptions,
) -> Result<Outcome, String> {
    run(paths, jobs, None, options)
}

/// Like [`run_files`] (two at a time), also writing the JSON and JUnit reports.
pub fn run_files_with_reports(
    paths: &[PathBuf],
    json: &Path,
    junit: &Path,
) -> Result<Outcome, String> {
    run(
        paths,
        2,
        Some((json.to_path_buf(), junit.to_path_buf())),
        RunOptions::default(),
    )
}

fn run(
    paths: &[PathBuf],
    jobs: usize,
    reports: Option<(PathBuf, PathBuf)>,
    options: RunOptions,
) -> Result<Outcome, String> {
    run_on(paths, jobs, reports, options, None)
}

fn run_on(
    paths: &[PathBuf],
    jobs: usize,
    reports: Option<(PathBuf, PathBuf)>,
    options: RunOptions,
    shared: Option<String>,
) -> Result<Outcome, String> {
    let source = match shared {
        Some(id) => StackSource::Attach(id),
        None => StackSource::Start,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let scenarios = match load_paths(paths) {
            Ok(s) => s,
            Err(SessionError::Invalid(d)) => {
                return Err(d.iter().map(|d| d.to_plain()).collect::<String>());
            }
            Err(SessionError::Env(e)) => return Err(e.to_string()),
        };
        let events = Collect::default();
        let console = SharedBuf::default();
        let secrets = Arc::new(Mutex::new(Vec::new()));
        let (ev, out, sec) = (events.clone(), console.clone(), Arc::clone(&secrets));
        // Seed 7 unless the test chose one.
        let seed = match options.seed {
            0 => 7,
            s => s,
        };
        let options = RunOptions {
            jobs,
            seed,
            bin_dir: bin_dir(),
            ..options
        };
        let summary = run_loaded(
            scenarios,
            &source,
            options,
            harness_engine::progress::silent(),
            &[],
            move |endpoints| {
                *sec.lock().expect("secrets lock") = stack_secrets(endpoints);
                let mut reporters: Vec<Box<dyn Reporter>> =
                    vec![Box::new(ev), Box::new(Console::new(Box::new(out), false))];
                if let Some((json, junit)) = reports {
                    reporters.push(Box::new(JsonReport::new(json)));
                    reporters.push(Box::new(JunitReport::new(junit)));
                }
                Ok(Box::new(Fanout::new(reporters)))
            },
        )
        .await
        .map_err(|e| match e {
            SessionError::Invalid(d) => d.iter().map(|d| d.to_plain()).collect::<String>(),
            other => format!("{other:?}"),
        })?;
        let events = events.0.lock().expect("events lock").clone();
        let secrets = secrets.lock().expect("secrets lock").clone();
        Ok(Outcome {
            summary,
            events,
            console: console.text(),
            secrets,
        })
    })
}
