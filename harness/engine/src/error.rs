//! Errors the engine reports, and the process exit codes they map to.
//!
//! Messages are lowercase sentences that the CLI prints after `error: `. One that starts
//! with an action and a colon (`attach: …`, `read --image …: …`) says what harness was
//! doing. [`Error::hint`] says what to do, where the message does not already.

use std::path::PathBuf;

/// Exit codes of every harness command, documented in `docs/getting-started.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything passed.
    Ok = 0,
    /// A scenario or check failed.
    Failed = 1,
    /// Bad input or configuration.
    BadInput = 2,
    /// The environment could not be set up.
    Environment = 3,
    /// Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it); everything the
    /// run started was cleaned up first.
    Interrupted = 130,
}

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown service `{name}`; known services are {known}")]
    UnknownService { name: String, known: String },

    #[error("unknown runtime `{name}`; known runtimes are {known}")]
    UnknownRuntime { name: String, known: String },

    #[error("port {port} requested for {service} is already in use on 127.0.0.1")]
    PortInUse { service: String, port: u16 },

    #[error("runtime {runtime} is not installed{detail}\n  fix: {fix}")]
    RuntimeMissing {
        runtime: String,
        detail: String,
        fix: String,
    },

    #[error("runtime {runtime} could not be installed: {message}{log}")]
    Install {
        runtime: String,
        message: String,
        log: String,
    },

    #[error("{service} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    ServiceExited {
        service: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{service} was not ready after {waited_ms} ms: {condition}; last lines of {}:\n{tail}", log.display())]
    ReadinessTimeout {
        service: String,
        condition: String,
        waited_ms: u128,
        log: PathBuf,
        tail: String,
    },

    #[error("reach the Docker engine: {detail}\n  fix: {fix}")]
    DockerUnavailable { detail: String, fix: String },

    #[error(
        "use the Docker engine: it speaks API {found}, and the Docker provider (testcontainers) needs API {needed} or newer\n  fix: upgrade the Docker engine, or use `--provider native`"
    )]
    DockerTooOld { found: String, needed: String },

    #[error(
        "find the {service} image: {image} is not on this machine, and harness does not pull\n  fix: {fix}"
    )]
    ImageMissing {
        service: String,
        image: String,
        fix: String,
    },

    #[error("docker: {0}")]
    Docker(String),

    #[error("service {0} is not part of this stack")]
    NotInStack(&'static str),

    #[error("no detached stack {0} is recorded")]
    NoSuchRun(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("postgres: {0}")]
    Sql(#[from] sqlx::Error),

    #[error("neo4j: {0}")]
    Neo4j(#[from] neo4rs::Error),

    #[error("object store: {0}")]
    S3(String),

    #[error("http: {0}")]
    Http(#[from] reqwest::Error),

    /// Bad input that is not a scenario file (a missing path, a bad flag value).
    #[error("{0}")]
    BadInput(String),

    /// SIGINT or SIGTERM arrived; what was started has been cleaned up.
    #[error("{0}: interrupted by a signal")]
    Interrupted(String),

    #[error("{0}")]
    Other(String),

    /// The details were printed already (a file's problems, with their excerpts); only the
    /// exit code is left to give.
    #[error("{problems}")]
    Reported { problems: String, code: ExitCode },
}

impl Error {
    /// The exit code a command ends with when it fails with this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::UnknownService { .. }
            | Error::UnknownRuntime { .. }
            | Error::PortInUse { .. }
            | Error::NoSuchRun(_)
            | Error::BadInput(_) => ExitCode::BadInput,
            Error::Interrupted(_) => ExitCode::Interrupted,
            Error::Reported { code, .. } => *code,
            _ => ExitCode::Environment,
        }
    }

    /// What to do about it, when the message does not say already.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::UnknownService { name, known } | Error::UnknownRuntime { name, known } => {
                match harness_scenario::did_you_mean(name, known.split(", ")) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "name one of those, or several separated by commas".into(),
                }
            }
            Error::PortInUse { service, port } => format!(
                "leave the port out to get a free one, pick another with `--port {service}=PORT`, \
                 or stop what listens on {port} (`ss -ltnp 'sport = :{port}'` shows it)"
            ),
            Error::NoSuchRun(_) => "`harness status` lists the recorded stacks".into(),
            Error::ServiceExited { .. } | Error::ReadinessTimeout { .. } => {
                "the log lines above say why; `harness doctor` checks the installs".into()
            }
            Error::Sql(_) | Error::Neo4j(_) | Error::S3(_) | Error::Http(_) => {
                "check that the stack is still up (`harness status`)".into()
            }
            _ => return None,
        })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds a context line to I/O results.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::io(context(), source))
    }
}
