//! The unprivileged user a service runs as. Postgres refuses to run as root, so when harness
//! runs as root its services drop to `nobody`; otherwise they run as the current user.

use std::{path::Path, process::Command};

use nix::unistd::{Uid, User};

use crate::error::{Error, IoContext};

#[derive(Clone, Copy, Debug)]
pub struct ServiceUser {
    ids: Option<(u32, u32)>,
}

impl ServiceUser {
    pub fn for_postgres() -> Result<Self, Error> {
        if !Uid::effective().is_root() {
            return Ok(Self { ids: None });
        }
        let user = User::from_name("nobody").ok().flatten().ok_or_else(|| {
            Error::Other("running as root, but there is no `nobody` user to run postgres as".into())
        })?;
        Ok(Self {
            ids: Some((user.uid.as_raw(), user.gid.as_raw())),
        })
    }

    pub fn ids(self) -> Option<(u32, u32)> {
        self.ids
    }

    /// Hands a path to this user.
    pub fn give(self, path: &Path) -> Result<(), Error> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .ctx(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }

    /// Makes a command run as this user.
    pub fn apply(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
    }

    pub fn apply_tokio(self, cmd: &mut tokio::process::Command) {
        if let Some((uid, gid)) = self.ids {
            cmd.uid(uid).gid(gid);
        }
    }
}
