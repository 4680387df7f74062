//! Ctrl-C during `harness run`: SIGINT to the whole process group, as a terminal sends it.
//! The run stops its steps, and leaves no process, database, bucket, folder or record
//! behind, whether it started its own stack or attached to one.

mod common;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use common::{alive, harness, harness_home};

/// A scenario whose process serves `dir` and whose step blocks until interrupted, writing
/// the pid of its background child to `dir/child`.
fn blocking_scenario(dir: &Path, stack: &str) -> PathBuf {
    let text = format!(
        r#"name: interrupted
stack: [{stack}]
processes:
  - name: sigint-app
    command: "exec python3 -m http.server $PORT --bind 127.0.0.1 --directory {dir}"
    ready: {{ http: / }}
steps:
  - name: wait forever
    exec:
      command: "sleep 300 & echo $! > {dir}/child; wait"
    timeout: 120s
"#,
        dir = dir.display()
    );
    let file = dir.join("interrupted.yaml");
    std::fs::write(&file, text).expect("write scenario");
    file
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Pids of processes one of whose arguments contains `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// The folder the scenario's process logs into (`proc-*/sigint-app.log` in the run root).
fn process_log_dir() -> Option<PathBuf> {
    let root = PathBuf::from(format!(
        "/dev/shm/harness-{}",
        nix::unistd::Uid::effective()
    ));
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("sigint-app.log").exists())
}

/// Starts `harness run ARGS` in a process group of its own, waits until the scenario's
/// step is running, sends SIGINT to the group, and returns the exit code, the background
/// child's pid, the process-log folder that existed, harness's pid and its stderr.
fn interrupt_run(args: &[&str], dir: &Path) -> Interrupted {
    let child = harness()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn harness run");
    let pid = child.id();
    let child_file = dir.join("child");
    wait_for("the step to start", || {
        std::fs::read_to_string(&child_file).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let background: u32 = std::fs::read_to_string(&child_file)
        .expect("child pid")
        .trim()
        .parse()
        .expect("pid");
    let logs = process_log_dir();
    assert!(alive(background), "the step's child runs before the signal");
    // Straight to the group (procps's `kill -INT -PGID` is not to be trusted with it).
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT to the run's process group");
    let out = child.wait_with_output().expect("harness run exits");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("interrupted"), "{err}");
    Interrupted {
        code: out.status.code(),
        background,
        logs,
        owner: pid,
        stderr: err,
    }
}

struct Interrupted {
    code: Option<i32>,
    background: u32,
    logs: Option<PathBuf>,
    owner: u32,
    stderr: String,
}

/// Names in `dir` that belong to runs of process `owner` (`<owner>-…`).
fn entries_of(dir: &Path, owner: u32) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!("{owner}-")))
        .collect()
}

#[test]
fn ctrl_c_during_a_run_on_its_own_stack_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = blocking_scenario(dir.path(), "postgres");
    let home = harness_home();
    let file_arg = file.display().to_string();
    let Interrupted {
        code,
        background,
        logs,
        owner,
        stderr,
    } = interrupt_run(&["run", &file_arg], dir.path());
    assert_eq!(
        code,
        Some(130),
        "a run stopped by SIGINT exits 130: {stderr}"
    );
    assert!(
        !alive(background),
        "the step's background child outlived the run"
    );
    let served = dir.path().display().to_string();
    assert!(
        processes_naming(&served).is_empty(),
        "the scenario's process outlived the run"
    );
    if let Some(logs) = logs {
        assert!(!logs.exists(), "{} was left behind", logs.display());
    }
    // The stack the run started: no record, no folder, no service process.
    let records = entries_of(&home.join("runs"), owner);
    assert!(records.is_empty(), "the run's record was left: {records:?}");
    let root = PathBuf::from(format!(
        "/dev/shm/harness-{}",
        nix::unistd::Uid::effective()
    ));
    let folders = entries_of(&root, owner);
    assert!(folders.is_empty(), "the run's folder was left: {folders:?}");
    let services = processes_naming(&format!("{}/{owner}-", root.display()));
    assert!(
        services.is_empty(),
        "service processes were left: {services:?}"
    );
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-XAtc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn buckets(s3: &serde_json::Value) -> String {
    let script = "import boto3,sys\n\
        c=boto3.client('s3',endpoint_url=sys.argv[1],aws_access_key_id=sys.argv[2],\
        aws_secret_access_key=sys.argv[3],region_name='us-east-1')\n\
        print(' '.join(b['Name'] for b in c.list_buckets().get('Buckets',[])))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(s3["endpoint_url"].as_str().expect("endpoint"))
        .arg(s3["access_key_id"].as_str().expect("key"))
        .arg(s3["secret_access_key"].as_str().expect("secret"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn ctrl_c_during_a_run_on_an_attached_stack_removes_its_database_and_bucket() {
    let up = harness()
        .args(["up", "--services", "postgres,s3", "--detach", "--json"])
        .output()
        .expect("up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&up.stdout).expect("json");
    let run_id = info["run_id"].as_str().expect("run id").to_owned();
    let url = info["services"]["postgres"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let s3 = info["services"]["s3"].clone();

    let dir = tempfile::tempdir().expect("tempdir");
    let file = blocking_scenario(dir.path(), "postgres, s3");
    let file_arg = file.display().to_string();
    let databases = "select count(*) from pg_database where datname like 'h\\_%'";
    let Interrupted {
        code,
        background,
        logs,
        stderr,
        ..
    } = interrupt_run(&["run", "--attach", &run_id, &file_arg], dir.path());
    let left_db = psql(&url, databases);
    let left_buckets = buckets(&s3);
    let down = harness().args(["down", &run_id]).output().expect("down");

    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        !alive(background),
        "the step's background child outlived the run"
    );
    assert!(
        processes_naming(&dir.path().display().to_string()).is_empty(),
        "the scenario's process outlived the run"
    );
    if let Some(logs) = logs {
        assert!(!logs.exists(), "{} was left behind", logs.display());
    }
    assert_eq!(left_db, "0", "the scenario's database was left");
    assert!(!left_buckets.contains("h-"), "buckets left: {left_buckets}");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
