//! Runtime installer: puts each real runtime into `$HARNESS_HOME/runtimes/<name>-<version>/`
//! from the package registries, records what it installed in a manifest, and verifies the
//! result runs.
//!
//! Installs are idempotent and serialised across processes by a file lock; each one is
//! built in a staging folder and renamed into place only once its manifest is written, so a
//! folder without a manifest is an interrupted install and gets redone.

mod neo4j;
mod object_store;
mod otel;
pub(crate) mod postgres;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, IoContext},
    fsutil, home,
    progress::{Progress, ProgressEvent},
};

/// One of the runtimes harness installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Postgres,
    S3,
    Neo4j,
    Otel,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 4] = [Self::Postgres, Self::S3, Self::Neo4j, Self::Otel];

    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::S3 => "s3",
            Self::Neo4j => "neo4j",
            Self::Otel => "otel",
        }
    }

    /// The pinned version this build of harness installs.
    pub fn version(self) -> &'static str {
        match self {
            Self::Postgres => postgres::VERSION,
            Self::S3 => object_store::VERSION,
            Self::Neo4j => neo4j::VERSION,
            Self::Otel => otel::VERSION,
        }
    }

    /// Where the pinned version lives once installed. Neo4j's folder also names the build
    /// of harness's launcher in it, so a changed launcher is a new install, not a stale one.
    pub fn dir(self) -> PathBuf {
        let key = match self {
            Self::Neo4j => format!("{}-{}", self.version(), neo4j::launcher_digest()),
            _ => self.version().to_owned(),
        };
        home::runtimes_dir().join(format!("{}-{key}", self.name()))
    }

    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::UnknownRuntime {
                name: name.to_owned(),
                known: Self::ALL.map(Self::name).join(", "),
            })
    }

    /// The command that installs this runtime.
    pub fn fix_command(self) -> String {
        format!("harness runtimes install --only {}", self.name())
    }
}

/// One file the manifest vouches for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What an install put on disk; `manifest.json` in the runtime's folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub runtime: RuntimeKind,
    pub version: String,
    pub source: String,
    pub installed_at_unix: u64,
    pub files: Vec<FileEntry>,
}

/// An installed runtime.
#[derive(Clone, Debug)]
pub struct Installed {
    pub kind: RuntimeKind,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Installed {
    /// Path of a file inside the install.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// What `status` found.
#[derive(Debug)]
pub enum RuntimeStatus {
    Installed(Installed),
    Missing,
    Corrupt(String),
}

/// Looks at an install without changing it. `deep` re-hashes every recorded file.
pub fn status(kind: RuntimeKind, deep: bool) -> RuntimeStatus {
    let dir = kind.dir();
    let manifest_path = dir.join("manifest.json");
    if !dir.exists() {
        return RuntimeStatus::Missing;
    }
    let manifest: Manifest = match fs::read(&manifest_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => return RuntimeStatus::Corrupt(format!("unreadable manifest: {e}")),
    };
    for file in &manifest.files {
        let path = dir.join(&file.path);
        match fs::metadata(&path) {
            Ok(meta) if meta.len() == file.size => {}
            Ok(meta) => {
                return RuntimeStatus::Corrupt(format!(
                    "{} is {} bytes, the manifest says {}",
                    file.path,
                    meta.len(),
                    file.size
                ));
            }
            Err(_) => return RuntimeStatus::Corrupt(format!("{} is missing", file.path)),
        }
        if deep && fsutil::sha256_file(&path).ok().as_deref() != Some(file.sha256.as_str()) {
            return RuntimeStatus::Corrupt(format!("{} does not match its checksum", file.path));
        }
    }
    RuntimeStatus::Installed(Installed {
        kind,
        dir,
        manifest,
    })
}

/// Makes sure every runtime in `kinds` is installed, installing what is missing or corrupt
/// (all of them again with `force`).
pub async fn ensure(
    kinds: &[RuntimeKind],
    force: bool,
    progress: &Progress,
) -> Result<Vec<Installed>, Error> {
    let kinds = kinds.to_vec();
    let progress = progress.clone();
    tokio::task::spawn_blocking(move || ensure_blocking(&kinds, force, &progress))
        .await
        .map_err(|e| Error::Other(format!("install task failed: {e}")))?
}

fn ensure_blocking(
    kinds: &[RuntimeKind],
    force: bool,
    progress: &Progress,
) -> Result<Vec<Installed>, Error> {
    let ready = |k: RuntimeKind| match status(k, false) {
        RuntimeStatus::Installed(i) if !force => Some(i),
        _ => None,
    };
    // Neo4j's class-data-sharing archive, made once per JDK beside its install.
    let cds_missing = |all: &[Installed]| {
        all.iter().any(|i| {
            i.kind == RuntimeKind::Neo4j
                && neo4j::cds_archive(&i.dir)
                    .is_some_and(|a| !a.is_file() && !a.with_extension("failed").is_file())
        })
    };
    if let Some(all) = kinds.iter().map(|k| ready(*k)).collect::<Option<Vec<_>>>()
        && !cds_missing(&all)
    {
        return Ok(all);
    }
    let _lock = lock(progress)?;
    let mut out = Vec::new();
    for &kind in kinds {
        // Another process may have finished this install while we waited for the lock.
        if let Some(done) = ready(kind) {
            out.push(done);
            continue;
        }
        out.push(install_one(kind, progress)?);
    }
    for i in out.iter().filter(|i| i.kind == RuntimeKind::Neo4j) {
        let step = |s: &str| {
            progress(&ProgressEvent::InstallStep {
                runtime: "neo4j".to_owned(),
                step: s.to_owned(),
            })
        };
        if let Err(e) = neo4j::ensure_cds(&i.dir, &step) {
            step(&format!(
                "no class-data-sharing archive, Neo4j starts without one: {e}"
            ));
        }
    }
    Ok(out)
}

fn lock(progress: &Progress) -> Result<Flock<fs::File>, Error> {
    let dir = home::runtimes_dir();
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    let path = dir.join(".install.lock");
    let file = fs::File::create(&path).ctx(|| format!("open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, _)) => {
            progress(&ProgressEvent::WaitingForLock {
                path: path.display().to_string(),
            });
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| Error::io(format!("lock {}", path.display()), e.into()))
        }
    }
}

fn install_one(kind: RuntimeKind, progress: &Progress) -> Result<Installed, Error> {
    let started = Instant::now();
    let root = home::runtimes_dir();
    let staging = root.join(format!(".staging-{}-{}", kind.name(), std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).ctx(|| format!("create {}", staging.display()))?;
    let step = |s: &str| {
        progress(&ProgressEvent::InstallStep {
            runtime: kind.name().to_owned(),
            step: s.to_owned(),
        })
    };
    let result = match kind {
        RuntimeKind::Postgres => postgres::install(&staging, &step),
        RuntimeKind::S3 => object_store::install(&staging, &step),
        RuntimeKind::Neo4j => neo4j::install(&staging, &step),
        RuntimeKind::Otel => otel::install(&staging, &step),
    };
    let (source, files) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let manifest = Manifest {
        runtime: kind,
        version: kind.version().to_owned(),
        source,
        installed_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        files: files
            .iter()
            .map(|rel| entry(&staging, rel))
            .collect::<Result<_, _>>()?,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    fs::write(staging.join("manifest.json"), json).ctx(|| "write manifest".to_owned())?;
    let dir = kind.dir();
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).ctx(|| format!("move install into {}", dir.display()))?;
    remove_superseded(kind, &dir);
    progress(&ProgressEvent::Installed {
        runtime: kind.name().to_owned(),
        version: kind.version().to_owned(),
        elapsed: started.elapsed(),
    });
    Ok(Installed {
        kind,
        dir,
        manifest,
    })
}

/// Removes the finished installs of `kind` that `current` replaces (an older launcher
/// build of the same Neo4j, say), so superseded copies do not pile up.
fn remove_superseded(kind: RuntimeKind, current: &Path) {
    let Some(parent) = current.parent() else {
        return;
    };
    let prefix = format!("{}-", kind.name());
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path != current && name.starts_with(&prefix) && path.join("manifest.json").is_file() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn entry(root: &Path, rel: &str) -> Result<FileEntry, Error> {
    let path = root.join(rel);
    let size = fs::metadata(&path)
        .ctx(|| format!("stat {}", path.display()))?
        .len();
    Ok(FileEntry {
        path: rel.to_owned(),
        size,
        sha256: fsutil::sha256_file(&path)?,
    })
}

/// How long one install command (a Go or Maven build) may take:
/// `HARNESS_INSTALL_TIMEOUT_SECS`, else 30 minutes (a cold module cache on a small machine).
fn install_timeout() -> std::time::Duration {
    let secs = std::env::var("HARNESS_INSTALL_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok());
    std::time::Duration::from_secs(secs.unwrap_or(30 * 60))
}

/// Runs a build command, logging to `log`, within [`install_timeout`] (past it, the
/// command is killed); on failure the error carries the log's tail. The command stays in
/// harness's process group, so a Ctrl-C at the terminal stops it too.
pub(crate) fn run_logged(runtime: RuntimeKind, cmd: &mut Command, log: &Path) -> Result<(), Error> {
    let out = crate::home::create_private_file(log)?;
    let err = out.try_clone().ctx(|| "dup log".to_owned())?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let failed = |message: String, log: String| Error::Install {
        runtime: runtime.name().to_owned(),
        message,
        log,
    };
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("could not run `{program}`: {e}"), String::new()))?;
    let limit = install_timeout();
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(
                    format!(
                        "`{program}` took longer than {limit:?} (HARNESS_INSTALL_TIMEOUT_SECS)"
                    ),
                    format!(
                        "; last lines of {}:\n{}",
                        log.display(),
                        fsutil::tail(log, 15)
                    ),
                ));
            }
            Err(e) => return Err(failed(format!("wait for `{program}`: {e}"), String::new())),
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(Error::Install {
        runtime: runtime.name().to_owned(),
        message: format!("`{program}` exited with {status}"),
        log: format!(
            "; last lines of {}:\n{}",
            log.display(),
            fsutil::tail(log, 15)
        ),
    })
}

/// Finds a tool on PATH or at one of `fallbacks`.
pub(crate) fn find_tool(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// A tool needed to build a runtime is missing.
pub(crate) fn missing_tool(runtime: RuntimeKind, tool: &str, fix: &str) -> Error {
    Error::RuntimeMissing {
        runtime: runtime.name().to_owned(),
        detail: format!(" and cannot be built: `{tool}` was not found"),
        fix: fix.to_owned(),
    }
}

/// The Go toolchain, for the object store and the collector.
pub(crate) fn go_tool(runtime: RuntimeKind) -> Result<PathBuf, Error> {
    find_tool("go", &["/usr/local/go/bin/go"]).ok_or_else(|| {
        missing_tool(
            runtime,
            "go",
            "install Go >= 1.25 and put `go` on PATH (Debian: the golang-1.25 backport, or the Go tarball)",
        )
    })
}

pub use neo4j::{
    JVM_FLAGS as NEO4J_JVM_FLAGS, MAIN_CLASS as NEO4J_MAIN_CLASS, cds_archive as neo4j_cds_archive,
    java,
};
pub use object_store::BINARY as S3_BINARY;
pub use otel::BINARY as OTEL_BINARY;
pub use postgres::{TEMPLATE as POSTGRES_TEMPLATE, bin_dir as postgres_bin_dir};

/// The build tools behind the installers: ((name, found), the command that installs it).
pub fn toolchain_checks() -> Vec<((&'static str, bool), &'static str)> {
    vec![
        (
            ("tool:go", go_tool(RuntimeKind::S3).is_ok()),
            "install Go >= 1.25 and put it on PATH",
        ),
        (
            ("tool:mvn", find_tool("mvn", &[]).is_some()),
            "apt-get install -y maven",
        ),
        (
            ("tool:java", java().is_some()),
            "apt-get install -y openjdk-17-jdk-headless",
        ),
        (
            (
                "tool:postgres",
                postgres_bin_dir().join("postgres").is_file(),
            ),
            "apt-get install -y postgresql-15",
        ),
    ]
}
