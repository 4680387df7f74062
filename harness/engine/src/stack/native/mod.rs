//! The native provider: every service is a child process of harness in its own folder
//! under the run's data directory, bound to 127.0.0.1 on a free port.

pub mod neo4j;
pub mod object_store;
pub mod otel;
pub mod postgres;
pub mod process;
pub mod user;

use std::{fs, path::Path};

use crate::error::{Error, IoContext};

/// Creates a service's folder inside the run directory, private to this user (Postgres's
/// is then handed to the user it runs as). Postgres's socket lives in it, so no other user
/// can reach the socket.
pub(crate) fn service_dir(run_dir: &Path, name: &str) -> Result<std::path::PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let dir = run_dir.join(name);
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .ctx(|| format!("chmod {}", dir.display()))?;
    Ok(dir)
}
