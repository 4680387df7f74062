//! Postgres, physical method with point-in-time recovery: the server's WAL streamed from
//! just before a base backup (`pg_receivewal`, as Barman's streaming mode does) and the base
//! backup itself (`pg_basebackup`); the restore copies both into a fresh instance of
//! Postgres, replays the WAL to a recovery target and promotes the instance.
//!
//! Nothing on the server under test changes: no `archive_command`, no restart, only two
//! replication connections, so the method works on every provider and on an external
//! target. A base backup holds the whole server, so the fresh instance has every database
//! the server had; the drill reaches its scenario's copy there.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use sqlx::{PgPool, Row};

use super::{
    Provider,
    postgres::{admin, long_running_tool, run_tool, tool},
};
use crate::{
    stack::native::postgres::PostgresEndpoint,
    stack::{
        native::{process::GroupGuard, user::ServiceUser},
        records::Groups,
    },
};

/// Where the WAL replay stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every WAL record that was streamed.
    EndOfWal,
    /// `recovery_target_lsn`, the record there replayed.
    Lsn(String),
    /// `recovery_target_lsn` and not inclusive: everything before this position (the
    /// drill's `disaster` step recorded it just before it struck).
    Before(String),
    /// `recovery_target_time`.
    Time(String),
    /// `recovery_target_name`.
    RestorePoint(String),
}

impl Target {
    /// The server settings that stop the replay here and promote the instance.
    fn settings(&self) -> Vec<String> {
        let stop = match self {
            Target::EndOfWal => return Vec::new(),
            Target::Lsn(l) => format!("recovery_target_lsn={l}"),
            Target::Before(l) => {
                return vec![
                    format!("recovery_target_lsn={l}"),
                    "recovery_target_inclusive=off".into(),
                    "recovery_target_action=promote".into(),
                ];
            }
            Target::Time(t) => format!("recovery_target_time={t}"),
            Target::RestorePoint(n) => format!("recovery_target_name={n}"),
        };
        vec![stop, "recovery_target_action=promote".into()]
    }

    pub fn describe(&self) -> String {
        match self {
            Target::EndOfWal => "the end of the WAL".into(),
            Target::Lsn(l) => format!("WAL position {l}"),
            Target::Before(l) => format!("just before the disaster (WAL position {l})"),
            Target::Time(t) => format!("time {t}"),
            Target::RestorePoint(n) => format!("restore point {n}"),
        }
    }
}

/// A WAL position as Postgres prints it (`16/B374D848`).
pub fn is_lsn(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

/// `pg_receivewal`, streaming the server's WAL into a folder from before the base backup
/// until the restore drains it.
///
/// It streams from a physical replication slot of its own, so the server keeps every segment
/// until the stream has it, however far a busy server runs ahead (without one, a checkpoint
/// may remove a segment the stream has not read yet). The slot is dropped with the stream
/// ([`Receiver::release`], or after [`Receiver::drain`]); one left by a killed run is dropped
/// by the next stream on that server.
pub struct Receiver {
    child: tokio::process::Child,
    _group: GroupGuard,
    /// Its `application_name`, by which `pg_stat_replication` shows it.
    name: String,
    /// Its replication slot, `harness_drill_<pid>_<name>`.
    slot: String,
    server: PostgresEndpoint,
    pub dir: PathBuf,
    log: PathBuf,
}

/// The prefix of the drills' replication slots; the harness process's id follows.
const SLOT_PREFIX: &str = "harness_drill_";

/// Drops the drills' slots that no stream uses and whose harness process is gone (a killed
/// run's).
async fn drop_abandoned_slots(admin: &PgPool) {
    let Ok(slots) = sqlx::query_scalar::<_, String>(
        "SELECT slot_name::text FROM pg_replication_slots WHERE NOT active AND starts_with(slot_name::text, $1)",
    )
    .bind(SLOT_PREFIX)
    .fetch_all(admin)
    .await
    else {
        return;
    };
    for slot in slots {
        let pid = slot
            .strip_prefix(SLOT_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|p| p.parse::<i32>().ok());
        let alive = pid
            .is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if !alive {
            let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
                .bind(&slot)
                .execute(admin)
                .await;
        }
    }
}

impl Receiver {
    /// Starts streaming into `dir` from a new slot and waits until the server shows the
    /// stream.
    pub async fn start(
        pg: &PostgresEndpoint,
        dir: &Path,
        name: &str,
        groups: Option<Groups>,
    ) -> Result<Receiver, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let log = dir.with_extension("log");
        let out =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let admin = admin(pg).await?;
        drop_abandoned_slots(&admin).await;
        let slot: String = format!("{SLOT_PREFIX}{}_{name}", std::process::id())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(63)
            .collect();
        sqlx::query("SELECT pg_create_physical_replication_slot($1, true)")
            .bind(&slot)
            .execute(&admin)
            .await
            .map_err(|e| format!("create the replication slot {slot}: {e}"))?;
        let mut cmd = long_running_tool("pg_receivewal", pg, "postgres");
        cmd.env("PGAPPNAME", name)
            .arg("--directory")
            .arg(dir)
            .arg(format!("--slot={slot}"))
            .args(["--no-password", "--synchronous", "--no-loop"])
            .stderr(Stdio::from(out))
            .process_group(0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                drop_slot(&admin, &slot).await;
                return Err(format!("pg_receivewal: could not start it: {e}"));
            }
        };
        let group = GroupGuard::new(child.id()).recorded(groups, "pg_receivewal");
        let mut r = Receiver {
            child,
            _group: group,
            name: name.to_owned(),
            slot,
            server: pg.clone(),
            dir: dir.to_owned(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let shown = loop {
            if let Ok(Some(status)) = r.child.try_wait() {
                break Err(format!("pg_receivewal exited ({status}): {}", r.log_tail()));
            }
            let streaming: Option<String> = sqlx::query_scalar(
                "SELECT state FROM pg_stat_replication WHERE application_name = $1",
            )
            .bind(name)
            .fetch_optional(&admin)
            .await
            .map_err(|e| format!("read pg_stat_replication: {e}"))?;
            if streaming.as_deref() == Some("streaming") {
                break Ok(());
            }
            if Instant::now() > deadline {
                break Err(format!(
                    "pg_receivewal did not start streaming within 15 s: {}",
                    r.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        admin.close().await;
        match shown {
            Ok(()) => Ok(r),
            Err(e) => {
                r.release().await;
                Err(e)
            }
        }
    }

    /// Stops the stream without draining it and drops its slot.
    pub async fn release(mut self) {
        self.stop_child().await;
        drop_slot_on(&self.server, &self.slot).await;
    }

    /// SIGINT: pg_receivewal flushes what it has and exits (killed after 10 s).
    async fn stop_child(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(6).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Waits until the stream holds everything the server had flushed, and `upto` at least,
    /// then stops it and completes its last, partial segment. The WAL folder is then what a
    /// restore replays.
    ///
    /// When the server is `down` (killed), the stream ended with it: what it had flushed is
    /// the WAL, and its slot (on the server's disk) is returned, to be dropped once the
    /// server is up again.
    pub async fn drain(
        mut self,
        pg: &PostgresEndpoint,
        upto: Option<&str>,
        down: bool,
    ) -> Result<Option<(PostgresEndpoint, String)>, String> {
        if down {
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_err()
            {
                self.stop_child().await;
            }
            self.complete_partial()?;
            return Ok(Some((self.server.clone(), self.slot.clone())));
        }
        let admin = admin(pg).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let drained = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Err(format!(
                    "pg_receivewal stopped streaming ({status}): {}",
                    self.log_tail()
                ));
            }
            let row = sqlx::query(
                "SELECT r.flush_lsn >= greatest(pg_current_wal_flush_lsn(), $2::pg_lsn), \
                 r.flush_lsn::text FROM pg_stat_replication r WHERE r.application_name = $1",
            )
            .bind(&self.name)
            .bind(upto.unwrap_or("0/0"))
            .fetch_optional(&admin)
            .await
            .map_err(|e| format!("read pg_stat_replication: {e}"))?;
            if row.as_ref().and_then(|r| r.get::<Option<bool>, _>(0)) == Some(true) {
                break Ok(());
            }
            if Instant::now() > deadline {
                break Err(format!(
                    "the WAL stream did not catch up with the server within 30 s (it had {})",
                    row.and_then(|r| r.get::<Option<String>, _>(1))
                        .unwrap_or_else(|| "nothing".into())
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.stop_child().await;
        drop_slot(&admin, &self.slot).await;
        admin.close().await;
        drained?;
        self.complete_partial()?;
        Ok(None)
    }

    /// The segment being written is `NAME.partial`; recovery reads it under its name.
    fn complete_partial(&self) -> Result<(), String> {
        for entry in std::fs::read_dir(&self.dir)
            .map_err(|e| format!("list {}: {e}", self.dir.display()))?
            .flatten()
        {
            let path = entry.path();
            if let Some(full) = path
                .to_str()
                .and_then(|p| p.strip_suffix(".partial"))
                .map(PathBuf::from)
            {
                std::fs::rename(&path, &full)
                    .map_err(|e| format!("rename {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// Drops `slot` on `server`, if it is still there.
pub async fn drop_slot_on(server: &PostgresEndpoint, slot: &str) {
    if let Ok(admin) = admin(server).await {
        drop_slot(&admin, slot).await;
        admin.close().await;
    }
}

async fn drop_slot(admin: &PgPool, slot: &str) {
    let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(slot)
        .execute(admin)
        .await;
}

/// The settings a replay needs at least as high as on the backed-up server (Postgres aborts
/// the recovery otherwise), as `name=value`.
pub async fn replay_settings(pool: &PgPool) -> Result<Vec<String>, String> {
    let rows = sqlx::query(
        "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', \
         'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', \
         'max_locks_per_transaction')",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| format!("read the server's settings: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| format!("{}={}", r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect())
}

/// The WAL position the server will write next.
pub async fn insert_lsn(pool: &PgPool) -> Result<String, String> {
    sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(pool)
        .await
        .map_err(|e| format!("read the WAL position: {e}"))
}

/// `pg_basebackup` of the whole server into `base`, in plain format, with the WAL it needs
/// to be consistent.
pub async fn base_backup(pg: &PostgresEndpoint, base: &Path) -> Result<(), String> {
    let mut cmd = tool("pg_basebackup", pg, "postgres");
    cmd.arg("--pgdata").arg(base).args([
        "--format=plain",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--no-password",
        "--no-sync",
    ]);
    run_tool(cmd, "pg_basebackup").await
}

/// The bytes of every file under `dir`.
pub fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// How a restored instance runs.
pub enum Host {
    Process(Box<crate::stack::native::process::ServiceProcess>),
    Container(Box<crate::stack::docker::ContainerService>),
}

/// A restored instance of Postgres, stopped when the drill ends.
pub struct Instance {
    pub host: Host,
    _group: Option<GroupGuard>,
    pub endpoint: PostgresEndpoint,
    /// Its folder (data, WAL archive, log).
    pub dir: PathBuf,
}

impl Host {
    /// A clean shutdown (a process), or the container removed.
    pub async fn stop(&mut self) {
        match self {
            Host::Process(p) => p.stop(Duration::from_secs(10)).await,
            Host::Container(c) => c.remove().await,
        }
    }

    /// Killed at once (a process) or removed (a container): for an instance nobody used.
    pub async fn stop_now(&mut self) {
        match self {
            Host::Process(p) => p.stop(Duration::ZERO).await,
            Host::Container(c) => c.remove().await,
        }
    }

    /// For `Drop`: a synchronous kill.
    pub fn kill_now(&mut self) {
        match self {
            Host::Process(p) => p.kill_now(),
            Host::Container(c) => c.remove_on_drop(),
        }
    }

    fn exited(&mut self) -> Option<String> {
        use crate::stack::readiness::Watch;
        match self {
            Host::Process(p) => p.exited(),
            Host::Container(c) => c.exited(),
        }
    }
}

impl Instance {
    pub async fn stop(&mut self) {
        self.host.stop().await;
    }

    pub fn kill_now(&mut self) {
        self.host.kill_now();
    }

    fn exited(&mut self) -> Option<String> {
        self.host.exited()
    }
}

/// The user a restored instance's folder belongs to, and natively its runtime.
pub(super) struct Provisioned {
    pub native: Option<(crate::runtimes::Installed, ServiceUser)>,
    pub owner: Option<(u32, u32)>,
    pub port: u16,
}

/// Makes `dir` (a fresh folder) the restored instance's, owned by the user Postgres runs as
/// on `on`, and picks its port.
pub(super) fn provision(dir: &Path, on: &Provider) -> Result<Provisioned, String> {
    crate::stack::native::service_dir(
        dir.parent().unwrap_or(dir),
        &dir.file_name().unwrap_or_default().to_string_lossy(),
    )
    .map_err(|e| e.to_string())?;
    let (native, owner) = match on {
        Provider::Native => {
            let runtime = match crate::runtimes::status(
                crate::runtimes::RuntimeKind::Postgres,
                false,
            ) {
                crate::runtimes::RuntimeStatus::Installed(i) => i,
                _ => {
                    return Err(
                        "a restore starts a Postgres of its own, and its runtime is not installed: run `harness runtimes install postgres`"
                            .into(),
                    );
                }
            };
            let user = ServiceUser::for_postgres().map_err(|e| e.to_string())?;
            user.give(dir).map_err(|e| e.to_string())?;
            (Some((runtime, user)), user.ids())
        }
        Provider::Docker { .. } => {
            let uid = crate::stack::docker::IMAGE_POSTGRES_UID;
            std::os::unix::fs::chown(dir, Some(uid), Some(uid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            (None, Some((uid, uid)))
        }
    };
    let port = crate::stack::ports::free_port().map_err(|e| e.to_string())?;
    Ok(Provisioned {
        native,
        owner,
        port,
    })
}

/// Copies the base backup and the WAL into `dir` (a fresh folder), starts Postgres on it
/// with `target` (as `on` says), and waits until the replay reached the target and the
/// instance was promoted. The phases: provision (the folder and its owner), restore (the
/// copies), replay (the start through the promotion).
pub async fn restore(
    base: &Path,
    wal: &Path,
    dir: &Path,
    target: &Target,
    on: &Provider,
    matching: &[String],
    groups: Option<Groups>,
) -> Result<(Instance, Vec<(&'static str, Duration)>), String> {
    let t = Instant::now();
    let provisioned = provision(dir, on)?;
    let owner = provisioned.owner;
    let provision = t.elapsed();

    let t = Instant::now();
    let (data, archive) = (dir.join("data"), dir.join("archive"));
    let (b, w, d, a) = (
        base.to_owned(),
        wal.to_owned(),
        data.clone(),
        archive.clone(),
    );
    tokio::task::spawn_blocking(move || {
        crate::fsutil::copy_tree(&b, &d, owner)?;
        crate::fsutil::copy_tree(&w, &a, owner)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("copy the backup: {e}"))?;
    let signal = data.join("recovery.signal");
    std::fs::write(&signal, "").map_err(|e| format!("write {}: {e}", signal.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&signal, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", signal.display()))?;
    }
    let restored = t.elapsed();

    let t = Instant::now();
    let mut settings = vec![format!(
        "restore_command=cp \"{}/%f\" \"%p\"",
        archive.display()
    )];
    settings.extend(target.settings());
    settings.extend(matching.iter().cloned());
    let instance =
        start_recovering(dir, &target.describe(), on, provisioned, &settings, groups).await?;
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

/// Starts Postgres on the restored data directory in `dir/data` with `settings`, and waits
/// until its recovery reached `target` and it was promoted. A restored instance archives
/// nothing: the backed-up server's `archive_command` (in its configuration files) would
/// push the new timeline into the server's own archive.
pub(super) async fn start_recovering(
    dir: &Path,
    target: &str,
    on: &Provider,
    provisioned: Provisioned,
    settings: &[String],
    groups: Option<Groups>,
) -> Result<Instance, String> {
    let mut settings = settings.to_vec();
    settings.push("archive_mode=off".into());
    let port = provisioned.port;
    let timeout = Duration::from_secs(300);
    let started = match (on, provisioned.native) {
        (
            Provider::Docker {
                image,
                run_id,
                password,
            },
            _,
        ) => crate::stack::docker::start_postgres_from(
            image,
            run_id,
            dir,
            port,
            password.clone(),
            &settings,
            timeout,
        )
        .await
        .map(|(c, e)| (Host::Container(Box::new(c)), e)),
        (_, Some((runtime, user))) => {
            crate::stack::native::start_postgres_from(&runtime, dir, user, port, &settings, timeout)
                .await
                .map(|(p, e)| (Host::Process(Box::new(p)), e))
        }
        (Provider::Native, None) => unreachable!("a native restore has its runtime"),
    };
    // Why the server gave up: its last FATAL line, one about the recovery first; the ones
    // that turn a connection away while it starts (the wait's own attempts) say nothing.
    let fatal = || {
        let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        let reasons: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("FATAL"))
            .filter(|l| {
                ![
                    "not yet accepting connections",
                    "is starting up",
                    "is shutting down",
                    "is in recovery mode",
                ]
                .iter()
                .any(|noise| l.contains(noise))
            })
            .collect();
        reasons
            .iter()
            .rfind(|l| l.contains("recovery"))
            .or(reasons.last())
            .map(|l| (*l).to_owned())
            .unwrap_or_default()
    };
    let (host, endpoints) = started.map_err(|e| {
        let why = fatal();
        if why.is_empty() {
            format!("the restored instance did not start: {e}")
        } else {
            format!("the restored instance did not come up to {target}: {why}")
        }
    })?;
    let endpoint = endpoints
        .postgres
        .ok_or_else(|| "the restored instance has no endpoint".to_owned())?;
    let group = match &host {
        Host::Process(p) => {
            Some(GroupGuard::new(Some(p.pid)).recorded(groups, "postgres-restored"))
        }
        Host::Container(_) => None,
    };
    let mut instance = Instance {
        host,
        _group: group,
        endpoint,
        dir: dir.to_owned(),
    };
    // Connections open once the replay is consistent: the restore is done at the promotion.
    if let Err(e) = promoted(&mut instance, timeout).await {
        instance.stop().await;
        return Err(format!(
            "the restored instance did not come up to {target}: {e} {}",
            fatal()
        ));
    }
    Ok(instance)
}

/// Waits until the instance has left recovery.
async fn promoted(instance: &mut Instance, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let options = instance.endpoint.connect_options().database("postgres");
    loop {
        if let Some(how) = instance.exited() {
            return Err(format!("it stopped ({how})"));
        }
        if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await {
            let recovering: Result<bool, _> = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut c)
                .await;
            let _ = sqlx::Connection::close(c).await;
            if matches!(recovering, Ok(false)) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "it was still recovering after {} s",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_target_stops_the_replay_and_promotes() {
        assert!(Target::EndOfWal.settings().is_empty());
        assert_eq!(
            Target::Lsn("0/3000060".into()).settings(),
            [
                "recovery_target_lsn=0/3000060",
                "recovery_target_action=promote"
            ]
        );
        assert!(is_lsn("16/B374D848") && is_lsn("0/0"));
        assert!(!is_lsn("16B374D848") && !is_lsn("x/1") && !is_lsn("0/"));
    }
}
