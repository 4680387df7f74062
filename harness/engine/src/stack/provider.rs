//! Which provider runs a stack's services: child processes (`native`), containers
//! (`docker`), or a stack someone else started (`external`).

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A stack provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Every service is a child process of harness (the default).
    #[default]
    Native,
    /// Every service is a container started through testcontainers.
    Docker,
    /// The services were started by someone else; harness only attaches to them.
    External,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Native, Self::Docker, Self::External];

    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Docker => "docker",
            Self::External => "external",
        }
    }

    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "choose a provider: unknown provider `{name}`; known providers are {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }

    /// `HARNESS_PROVIDER`, or native when it is unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var("HARNESS_PROVIDER") {
            Ok(v) if !v.trim().is_empty() => Self::parse(v.trim()),
            _ => Ok(Self::Native),
        }
    }
}

/// A process fault injected into one service of a running stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// Freeze the service (SIGSTOP / `docker pause`): connections hang, nothing is lost.
    Pause,
    /// Thaw a paused service.
    Unpause,
    /// Stop it gracefully (its stop signal, then SIGKILL after a grace period).
    Stop,
    /// Kill it at once (SIGKILL), as a crash would.
    Kill,
    /// Start a stopped or killed service again on the same port and data, and wait for it.
    Start,
    /// Stop, then start, then wait until it is ready again.
    Restart,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Self::Pause,
        Self::Unpause,
        Self::Stop,
        Self::Kill,
        Self::Start,
        Self::Restart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Start => "start",
            Self::Restart => "restart",
        }
    }

    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "read the fault: unknown fault `{name}`; known faults are {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}
