//! The native provider: every service is a child process of harness in its own folder
//! under the run's data directory, bound to 127.0.0.1 on a free port.

pub mod neo4j;
pub mod object_store;
pub mod otel;
pub mod postgres;
pub mod process;
pub mod user;

use std::{fs, path::Path, sync::Arc, time::Duration};

use self::{
    process::{ServiceProcess, wait_ready},
    user::ServiceUser,
};
use super::{
    Endpoints, ServiceKind,
    services::{Description, Launch, describe},
};
use crate::{
    error::{Error, IoContext},
    runtimes::Installed,
};

/// Starts `kind` from its installed runtime on `port` and waits until it is ready.
pub(crate) async fn start(
    kind: ServiceKind,
    run_dir: &Path,
    runtime: &Installed,
    port: u16,
    timeout: Duration,
) -> Result<(ServiceProcess, Endpoints), Error> {
    let dir = service_dir(run_dir, kind.name())?;
    // Postgres refuses to run as root: it gets its own user and a copy of the template.
    let user = match kind {
        ServiceKind::Postgres => {
            let user = ServiceUser::for_postgres()?;
            postgres::prepare(&dir, runtime, user).await?;
            Some(user)
        }
        _ => None,
    };
    let description = describe(kind, &Launch::Native(runtime), &dir, port)?;
    launch(description, &dir, user, timeout).await
}

/// Starts a Postgres on `port` from the data directory already in `dir/data` (a restored
/// base backup, owned by `user`), with `settings` added (`-c`), and waits until it takes
/// its new password: after any recovery, once it was promoted.
pub(crate) async fn start_postgres_from(
    runtime: &Installed,
    dir: &Path,
    user: ServiceUser,
    port: u16,
    settings: &[String],
    timeout: Duration,
) -> Result<(ServiceProcess, Endpoints), Error> {
    let mut d = describe(ServiceKind::Postgres, &Launch::Native(runtime), dir, port)?;
    for s in settings {
        d.args.extend(["-c".to_owned(), s.clone()]);
    }
    launch(d, dir, Some(user), timeout).await
}

/// Starts `kind` from its installed runtime on `port` with its files already in `dir` (a
/// restored store), and waits until it is ready.
pub(crate) async fn start_service_from(
    kind: ServiceKind,
    dir: &Path,
    port: u16,
    timeout: Duration,
) -> Result<(ServiceProcess, Endpoints), Error> {
    let runtime = match crate::runtimes::status(kind, false) {
        crate::runtimes::RuntimeStatus::Installed(i) => i,
        _ => {
            return Err(Error::RuntimeMissing {
                runtime: kind.name().into(),
                detail: String::new(),
                fix: kind.fix_command(),
            });
        }
    };
    let description = describe(kind, &Launch::Native(&runtime), dir, port)?;
    launch(description, dir, None, timeout).await
}

/// Runs a description as a child process (respawned the same way on restart).
async fn launch(
    d: Description,
    dir: &Path,
    user: Option<ServiceUser>,
    timeout: Duration,
) -> Result<(ServiceProcess, Endpoints), Error> {
    let name = d.kind.name();
    let program = d
        .program
        .clone()
        .ok_or_else(|| Error::Other(format!("{name} has no native program")))?;
    let (args, env) = (d.args.clone(), d.env.clone());
    let respawn = Arc::new(move || {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args).envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(user) = user {
            user.apply_tokio(&mut cmd);
        }
        cmd
    });
    let log = dir.join(format!("{name}.log"));
    let mut process = ServiceProcess::spawn_with(name, respawn, &log, d.stop_signal)?;
    wait_ready(&mut process, &d.ready, timeout).await?;
    Ok((process, d.endpoints))
}

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
