//! Security properties of the native provider and the reaper: another local user cannot
//! reach Postgres's trusted socket, and a run record never makes harness signal or delete
//! something that is not its own.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use harness_engine::stack::{
    ProviderKind, Stack,
    records::{ProcessGroup, RunRecord, start_ticks},
};

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// psql over the stack's Unix socket, as `uid` (None: as this user).
fn psql_over_socket(socket_dir: &Path, port: u16, uid: Option<u32>) -> std::process::Output {
    let psql = PathBuf::from("/usr/lib/postgresql/15/bin/psql");
    let psql = if psql.exists() { psql } else { "psql".into() };
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
            ])
            .arg(&psql);
            c
        }
        None => Command::new(&psql),
    };
    cmd.arg("-h")
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
        .args(["-XAtc", "select 1"])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

#[tokio::test]
async fn another_local_user_cannot_reach_the_trusted_socket() {
    let stack = Stack::builder()
        .provider(ProviderKind::Native)
        .postgres()
        .start()
        .await
        .expect("stack");
    let port = stack.postgres().expect("pg").port;
    let socket_dir = stack.run_dir().join("postgres");
    let mode = std::fs::metadata(&socket_dir)
        .expect("socket dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the socket's folder is private");
    let socket = socket_dir.join(format!(".s.PGSQL.{port}"));
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the socket is private");
    // Records and logs are for this user only.
    let record = harness_engine::home::runs_dir().join(format!("{}.json", stack.run_id()));
    let mode = std::fs::metadata(&record)
        .expect("record")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the run record is private");
    let log = socket_dir.join("postgres.log");
    let mode = std::fs::metadata(&log).expect("log").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the service log is private");
    let runs = harness_engine::home::runs_dir();
    let mode = std::fs::metadata(&runs).expect("runs").permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the records' folder is private");
    if is_root() {
        // The service user (or root) gets in: the socket works and trusts local users...
        let own = psql_over_socket(&socket_dir, port, None);
        assert!(
            own.status.success(),
            "{}",
            String::from_utf8_lossy(&own.stderr)
        );
        // ...so a second uid must not reach it at all.
        let other = psql_over_socket(&socket_dir, port, Some(1));
        let err = String::from_utf8_lossy(&other.stderr);
        assert!(!other.status.success(), "uid 1 reached the socket");
        assert!(err.contains("Permission denied"), "{err}");
    }
    stack.shutdown().await;
}

/// A process in a group of its own, as a service runs.
fn spawn_group_leader() -> std::process::Child {
    Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .expect("spawn sleep")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

fn record(name: &str, group: ProcessGroup, run_dir: PathBuf) -> RunRecord {
    RunRecord {
        run_id: format!("sec-test-{name}-{}", std::process::id()),
        // An owner that is not alive, so the record is an orphan.
        owner_pid: u32::MAX,
        run_dir,
        services: vec![group],
        ..RunRecord::default()
    }
}

#[tokio::test]
async fn a_record_naming_a_live_unrelated_process_leaves_it_alive() {
    let mut other = spawn_group_leader();
    let pid = other.id();
    let start = start_ticks(pid).expect("start time");
    // The recorded id now belongs to a process that started at another time.
    let stale = ProcessGroup {
        name: "postgres".into(),
        pgid: pid,
        start: start + 1,
    };
    let folder = tempfile::tempdir().expect("tempdir");
    std::fs::write(folder.path().join("keep"), "mine").expect("write");
    record("stale", stale, folder.path().to_path_buf())
        .tear_down()
        .await;
    assert!(alive(pid), "the reaper signalled a process it does not own");
    assert!(
        folder.path().join("keep").exists(),
        "the reaper removed a folder outside its run root"
    );

    // The same record with the right start time does stop it: the check is not a no-op.
    let ours = ProcessGroup::of("postgres", pid);
    record("ours", ours, PathBuf::new()).tear_down().await;
    let _ = other.wait();
    assert!(!alive(pid), "the reaper left its own group running");
}

#[tokio::test]
async fn a_record_with_a_foreign_run_dir_deletes_and_kills_nothing() {
    for run_dir in [PathBuf::new(), PathBuf::from("/"), PathBuf::from("/tmp")] {
        let r = record("odd", ProcessGroup::of("none", 1), run_dir.clone());
        assert!(
            r.owned_run_dir().is_none(),
            "{} is not a run folder",
            run_dir.display()
        );
    }
    // A folder of someone else's, named on a bystander's command line.
    let folder = tempfile::tempdir().expect("tempdir");
    std::fs::write(folder.path().join("keep"), "theirs").expect("write");
    let mut bystander = Command::new("sh")
        .arg("-c")
        .arg("sleep 301")
        .arg(folder.path())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pid = bystander.id();
    let mut r = record(
        "foreign",
        ProcessGroup::of("none", pid),
        folder.path().to_path_buf(),
    );
    r.services.clear();
    r.tear_down().await;
    assert!(
        alive(pid),
        "the reaper killed a process that names a foreign folder"
    );
    assert!(
        folder.path().join("keep").exists(),
        "the reaper removed a foreign folder"
    );
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = bystander.wait();
}

#[tokio::test]
async fn a_later_run_sweeps_what_killed_runs_left_on_a_shared_stack() {
    use harness_engine::run::isolation::Shared;
    let stack = Stack::builder()
        .postgres()
        .object_store()
        .start()
        .await
        .expect("stack");
    let pool = stack.postgres().expect("pg").pool().await.expect("pool");
    let s3 = stack.s3().expect("s3").client();
    let me = std::process::id();
    let my_start = start_ticks(me).expect("start");
    // A run that was killed (its pid is beyond the kernel's limit, so it is surely gone)
    // and a run that is alive (this process).
    let dead = "4194399-12345-abcdef-0";
    let live = format!("{me}-{my_start}-abcdef-0");
    for id in [dead, live.as_str()] {
        sqlx::query(&format!("CREATE DATABASE \"h_{}\"", id.replace('-', "_")))
            .execute(&pool)
            .await
            .expect("create database");
        s3.create_bucket()
            .bucket(format!("h-{id}"))
            .send()
            .await
            .expect("create bucket");
    }
    let shared = Shared::connect(stack.endpoints(), true)
        .await
        .expect("connect");
    drop(shared);
    let dbs: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'h\\_%'")
            .fetch_all(&pool)
            .await
            .expect("list");
    assert_eq!(dbs, vec![format!("h_{}", live.replace('-', "_"))]);
    let buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .expect("list buckets")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(buckets, vec![format!("h-{live}")]);
    pool.close().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_killed_runs_commands_are_found_by_their_marker_even_unrecorded() {
    // A run killed right after spawning a command, before it recorded the command's group:
    // only the inherited HARNESS_RUN_DIR says whose the command (and its children) are.
    let run_id = format!("{}-run-sectest", std::process::id());
    let run_dir = harness_engine::home::run_root()
        .expect("run root")
        .join(&run_id);
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut command = Command::new("sh")
        .args(["-c", "sleep 302 & wait"])
        .env("HARNESS_RUN_DIR", &run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let pid = command.id();
    // Let the shell start its child, so there is a grandchild to find too.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let record = RunRecord {
        run_id,
        owner_pid: u32::MAX,
        run_dir: run_dir.clone(),
        session: true,
        ..RunRecord::default()
    };
    record.tear_down().await;
    let _ = command.wait();
    assert!(!alive(pid), "the unrecorded command survived the reaper");
    let left = Command::new("pgrep")
        .args(["-f", "sleep 302"])
        .output()
        .expect("pgrep");
    assert!(left.stdout.is_empty(), "its child survived the reaper");
    assert!(!run_dir.exists(), "the run's folder survived the reaper");
}
