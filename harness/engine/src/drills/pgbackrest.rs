//! Postgres with pgBackRest (Debian's `pgbackrest`), so a drill rehearses the tool teams run
//! in production: a stanza in a repository of the scenario's, the server's WAL archived by
//! its own `archive_command` (`pgbackrest archive-push`), full, differential and
//! incremental backups, `verify`, and a `restore` to a recovery target into a fresh
//! instance started by the stack's provider.
//!
//! pgBackRest reads the server's data directory and reaches it over its Unix socket, so it
//! runs where the server runs: as the user Postgres runs as (natively), or inside the
//! stack's container (the Docker provider; the image carries `pgbackrest`). The stack's
//! Postgres runs with `archive_mode=on` and a no-op `archive_command`; the first backup
//! sets pgBackRest's with `ALTER SYSTEM` and a reload (no restart), and the drill's end
//! resets it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::PgPool;

use super::{
    Provider,
    physical::{Instance, Target, provision, start_recovering},
};
use crate::stack::{native::user::ServiceUser, records::Groups};

/// The stanza of every drill's repository (one repository per scenario).
const STANZA: &str = "harness";

/// Where the backed-up server runs, and so where pgBackRest runs.
#[derive(Clone, Debug)]
pub enum Server {
    /// A process of the native provider: its data directory, socket folder and port.
    Native {
        data: PathBuf,
        socket: PathBuf,
        port: u16,
    },
    /// The Docker provider's container `id`, of `image`.
    Container { id: String, image: String },
}

/// A scenario's pgBackRest repository, its stanza created and the server archiving into it.
pub struct Repo {
    server: Server,
    /// The backed-up server, whose `archive_command` [`Repo::release`] resets.
    pool: PgPool,
    /// The repository's folder: on the host (native) or in the container.
    dir: PathBuf,
    /// Backups taken, the latest last.
    pub backups: Vec<Backup>,
}

/// One pgBackRest backup.
#[derive(Clone, Debug)]
pub struct Backup {
    /// pgBackRest's label (`20261202-023343F_20261202-023350I`).
    pub label: String,
    /// `full`, `diff` or `incr`.
    pub kind: String,
    /// What the backup added to the repository, in bytes.
    pub bytes: u64,
    /// The whole server's size when backed up.
    pub database_bytes: u64,
    pub took: Duration,
    pub verify: Duration,
}

/// The configuration of a repository in `dir`, for the server's data in `data`.
fn config(dir: &Path, data: &Path, socket: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "[global]\nrepo1-path={d}/repo\nrepo1-retention-full=2\nlog-path={d}/log\nlock-path={d}/lock\nspool-path={d}/spool\nlog-level-console=warn\nlog-level-stderr=error\nlog-level-file=off\nstart-fast=y\narchive-timeout=60\n\n[{STANZA}]\npg1-path={}\npg1-socket-path={}\npg1-port={port}\npg1-user=postgres\n",
        data.display(),
        socket.display(),
    )
}

/// The `pgbackrest restore` options that stop the replay at `target` and promote.
fn target_options(target: &Target) -> Vec<String> {
    let mut o = match target {
        Target::EndOfWal => vec!["--type=default".to_owned()],
        Target::Lsn(l) => vec!["--type=lsn".into(), format!("--target={l}")],
        Target::Before(l) => vec![
            "--type=lsn".into(),
            format!("--target={l}"),
            "--target-exclusive".into(),
        ],
        Target::Time(t) => vec!["--type=time".into(), format!("--target={t}")],
        Target::RestorePoint(n) => vec!["--type=name".into(), format!("--target={n}")],
    };
    if !matches!(target, Target::EndOfWal) {
        o.push("--target-action=promote".into());
    }
    o
}

impl Repo {
    /// Creates the repository in `dir`, points the server's `archive_command` at it, creates
    /// the stanza and checks that the server archives into it (`pgbackrest check`).
    pub async fn create(server: Server, dir: PathBuf, pool: &PgPool) -> Result<Repo, String> {
        let repo = Repo {
            server,
            pool: pool.clone(),
            dir,
            backups: Vec::new(),
        };
        let conf = match &repo.server {
            Server::Native { data, socket, port } => {
                crate::stack::native::service_dir(
                    repo.dir.parent().unwrap_or(&repo.dir),
                    &repo.dir.file_name().unwrap_or_default().to_string_lossy(),
                )
                .map_err(|e| e.to_string())?;
                let user = ServiceUser::for_postgres().map_err(|e| e.to_string())?;
                user.give(&repo.dir).map_err(|e| e.to_string())?;
                let conf = repo.dir.join("pgbackrest.conf");
                std::fs::write(&conf, config(&repo.dir, data, socket, *port))
                    .map_err(|e| format!("write {}: {e}", conf.display()))?;
                user.give(&conf).map_err(|e| e.to_string())?;
                conf
            }
            Server::Container { id, .. } => {
                // The container's server listens on the stack's port, on its usual socket.
                let port: i64 = sqlx::query_scalar("SELECT current_setting('port')::bigint")
                    .fetch_one(pool)
                    .await
                    .map_err(|e| e.to_string())?;
                let text = config(
                    &repo.dir,
                    Path::new("/var/lib/postgresql/data"),
                    Path::new("/var/run/postgresql"),
                    u16::try_from(port).unwrap_or(5432),
                );
                let d = repo.dir.display().to_string();
                crate::stack::docker::exec(
                    id,
                    "postgres",
                    &[
                        "sh".into(),
                        "-c".into(),
                        format!("mkdir -p '{d}' && cat > '{d}/pgbackrest.conf'"),
                    ],
                    text.as_bytes(),
                )
                .await
                .map_err(|e| format!("pgBackRest's repository in the stack's container: {e}"))?;
                repo.dir.join("pgbackrest.conf")
            }
        };
        let command = format!(
            "pgbackrest --config={} --stanza={STANZA} archive-push %p",
            conf.display()
        );
        let mode: String = sqlx::query_scalar("SELECT current_setting('archive_mode')")
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
        if mode == "off" {
            return Err(
                "pgBackRest archives the server's WAL with its `archive_command`, and this server runs with `archive_mode=off` (it takes a restart to change): harness's stacks run with `archive_mode=on`; start the server with it"
                    .into(),
            );
        }
        sqlx::query(&format!(
            "ALTER SYSTEM SET archive_command = '{}'",
            command.replace('\'', "''")
        ))
        .execute(pool)
        .await
        .map_err(|e| format!("set the server's archive_command: {e}"))?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(pool)
            .await
            .map_err(|e| e.to_string())?;
        repo.run(&["stanza-create"]).await?;
        repo.run(&["check"]).await?;
        Ok(repo)
    }

    /// The server's `archive_command` back to its configuration file's (a no-op on
    /// harness's stacks).
    pub async fn release(self) {
        let _ = sqlx::query("ALTER SYSTEM RESET archive_command")
            .execute(&self.pool)
            .await;
        let _ = sqlx::query("SELECT pg_reload_conf()")
            .execute(&self.pool)
            .await;
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("pgbackrest.conf")
    }

    /// Runs `pgbackrest --config=… --stanza=harness ARGS` where the server runs, and returns
    /// its standard output.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut argv = vec![
            format!("--config={}", self.conf().display()),
            format!("--stanza={STANZA}"),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let what = format!("pgbackrest {}", args.first().copied().unwrap_or_default());
        match &self.server {
            Server::Native { .. } => native(&argv, &what).await,
            Server::Container { id, .. } => {
                let mut cmd = vec!["pgbackrest".to_owned()];
                cmd.extend(argv);
                crate::stack::docker::exec(id, "postgres", &cmd, b"")
                    .await
                    .map_err(|e| {
                        let e = e.to_string();
                        if e.contains("executable file not found") {
                            "pgBackRest is not in the stack's Postgres image: build the image with `harness images build postgres` (it installs Debian's pgbackrest)".to_owned()
                        } else {
                            format!("{what}: {e}")
                        }
                    })
            }
        }
    }

    /// A backup of `kind` (`full`, `diff`, `incr`), then `pgbackrest verify` of the
    /// repository.
    pub async fn backup(&mut self, kind: &str) -> Result<Backup, String> {
        let t = Instant::now();
        self.run(&["backup", &format!("--type={kind}")]).await?;
        let took = t.elapsed();
        let t = Instant::now();
        self.run(&["verify"]).await?;
        let verify = t.elapsed();
        let info = self.run(&["info", "--output=json"]).await?;
        let info: Value =
            serde_json::from_str(&info).map_err(|e| format!("pgbackrest info: not JSON ({e})"))?;
        let last = info[0]["backup"]
            .as_array()
            .and_then(|b| b.last())
            .ok_or("pgbackrest info lists no backup after the backup")?;
        let b = Backup {
            label: last["label"].as_str().unwrap_or_default().to_owned(),
            kind: last["type"].as_str().unwrap_or(kind).to_owned(),
            bytes: last["info"]["repository"]["delta"].as_u64().unwrap_or(0),
            database_bytes: last["info"]["size"].as_u64().unwrap_or(0),
            took,
            verify,
        };
        self.backups.push(b.clone());
        Ok(b)
    }

    /// Archives the WAL segment the server is writing (a switch, then `pgbackrest check`
    /// waits until the archive has it), so that a restore can replay up to now.
    pub async fn archive_current(&self) -> Result<(), String> {
        self.run(&["check"]).await.map(|_| ())
    }

    /// Restores the latest backup into `dir` (a fresh folder) with `pgbackrest restore`, up
    /// to `target`, starts Postgres on it from `on` and waits for the promotion. The
    /// phases: provision, restore (pgBackRest's copy), replay (the start through the
    /// promotion; the WAL comes from the repository with `archive-get`).
    pub async fn restore(
        &self,
        dir: &Path,
        target: &Target,
        on: &Provider,
        matching: &[String],
        groups: Option<Groups>,
    ) -> Result<(Instance, Vec<(&'static str, Duration)>), String> {
        let t = Instant::now();
        let provisioned = provision(dir, on)?;
        let data = dir.join("data");
        make_data_dir(&data, provisioned.owner)?;
        let provision = t.elapsed();

        let t = Instant::now();
        let mut args = vec![format!("--pg1-path={}", data.display())];
        args.extend(target_options(target));
        args.push("restore".into());
        match (&self.server, on) {
            (Server::Native { .. }, _) => {
                let mut argv = vec![
                    format!("--config={}", self.conf().display()),
                    format!("--stanza={STANZA}"),
                ];
                argv.extend(args);
                native(&argv, "pgbackrest restore").await?;
            }
            (Server::Container { id, .. }, Provider::Docker { image, run_id, .. }) => {
                // The repository comes out of the stack's container into the restore's
                // folder, which the restoring container and the restored instance bind at
                // the same path.
                let copy = dir.join("pgbackrest");
                crate::stack::docker::copy_out(id, &self.dir.display().to_string(), &copy)
                    .await
                    .map_err(|e| format!("copy pgBackRest's repository out: {e}"))?;
                let conf = copy.join("pgbackrest.conf");
                std::fs::write(
                    &conf,
                    config(&copy, &data, Path::new("/var/run/postgresql"), 5432),
                )
                .map_err(|e| format!("write {}: {e}", conf.display()))?;
                let uid = crate::stack::docker::IMAGE_POSTGRES_UID;
                crate::fsutil::chown_tree(&copy, uid, uid)
                    .map_err(|e| format!("chown {}: {e}", copy.display()))?;
                let mut argv = vec![
                    "pgbackrest".to_owned(),
                    format!("--config={}", conf.display()),
                    format!("--stanza={STANZA}"),
                ];
                argv.extend(args);
                crate::stack::docker::run_once(image, run_id, dir, uid, &argv)
                    .await
                    .map_err(|e| format!("pgbackrest restore: {e}"))?;
            }
            (Server::Container { .. }, Provider::Native) => {
                return Err(
                    "a pgBackRest backup of a container restores into a container of its image"
                        .into(),
                );
            }
        }
        let restored = t.elapsed();

        let t = Instant::now();
        let instance =
            start_recovering(dir, &target.describe(), on, provisioned, matching, groups).await?;
        let replay = t.elapsed();
        Ok((
            instance,
            vec![
                ("provision", provision),
                ("restore", restored),
                ("replay", replay),
            ],
        ))
    }
}

/// The restore's empty data directory, 0700 and the instance's user's.
fn make_data_dir(data: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data).map_err(|e| format!("create {}: {e}", data.display()))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", data.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(data, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", data.display()))?;
    }
    Ok(())
}

/// Runs the host's `pgbackrest` as the user Postgres runs as.
async fn native(argv: &[String], what: &str) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("pgbackrest");
    cmd.args(argv)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    ServiceUser::for_postgres()
        .map_err(|e| e.to_string())?
        .apply_tokio(&mut cmd);
    let out = cmd.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "pgbackrest is not installed: install Debian's `pgbackrest` (apt-get install pgbackrest; `.ci/run` does)".to_owned()
        } else {
            format!("{what}: could not start it: {e}")
        }
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Err(format!("{what} failed: {}", reason(&text)))
}

/// pgBackRest's own reason: its `ERROR:` lines (and their hints), else the output's end.
fn reason(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("HINT:"))
        .collect();
    if errors.is_empty() {
        lines
            .iter()
            .rev()
            .take(4)
            .rev()
            .copied()
            .collect::<Vec<_>>()
            .join(" / ")
    } else {
        errors.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_target_becomes_pgbackrest_restore_options() {
        assert_eq!(target_options(&Target::EndOfWal), ["--type=default"]);
        assert_eq!(
            target_options(&Target::Before("0/7000E48".into())),
            [
                "--type=lsn",
                "--target=0/7000E48",
                "--target-exclusive",
                "--target-action=promote"
            ]
        );
        assert_eq!(
            target_options(&Target::RestorePoint("before-migration".into()))[..2],
            ["--type=name", "--target=before-migration"]
        );
    }

    #[test]
    fn pgbackrests_reason_is_its_error_line() {
        let out = "2026-12-02 INFO: check command begin\nERROR: [068]: archive_command '/bin/true' must contain pgbackrest\n2026-12-02 INFO: check command end: aborted";
        assert_eq!(
            reason(out),
            "ERROR: [068]: archive_command '/bin/true' must contain pgbackrest"
        );
    }
}
