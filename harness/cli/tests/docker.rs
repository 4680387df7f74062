//! The Docker provider end to end through the CLI: the reaper after a SIGKILL removes a
//! run's containers and their volumes; a missing engine or image names its fix; the
//! compose stack can be attached to with the external provider; local images are rebuilt
//! only when their recipe changes; the standalone Cloud Run emulator runs revisions from
//! local images.
//!
//! These tests need a Docker engine with the local images (`harness images build`);
//! `.ci/run` provides both.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use common::harness;

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until the run owned by `owner` in `home` has recorded `n` containers.
fn wait_for_containers(home: &Path, owner: u32, n: usize) -> serde_json::Value {
    common::wait_for_run(home, owner, &format!("{n} containers"), |r| {
        r["containers"].as_array().is_some_and(|c| c.len() == n)
    })
}

fn exists(kind: &str, id: &str) -> bool {
    docker(&[kind, "inspect", id]).status.success()
}

#[test]
fn sigkilled_run_leaves_containers_and_volumes_that_the_next_start_removes() {
    let home = tempfile::tempdir().expect("home");
    let mut child = harness()
        .args(["up", "--provider", "docker", "--services", "postgres,s3"])
        .env("HARNESS_HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness up");
    let owner = child.id();
    let record = wait_for_containers(home.path(), owner, 2);
    let containers: Vec<String> = record["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c[1].as_str().expect("id").to_owned())
        .collect();
    // Postgres keeps its data in an anonymous volume, as the upstream image does.
    let volumes: Vec<String> = containers
        .iter()
        .flat_map(|id| {
            text(&docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", id]).stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!volumes.is_empty(), "postgres should have a data volume");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    for id in &containers {
        assert!(
            exists("container", id),
            "{id} should outlive the killed run"
        );
    }

    // Any next start in the same home reaps; one small service is enough.
    let out = harness()
        .args([
            "up",
            "--provider",
            "docker",
            "--services",
            "s3",
            "--detach",
            "--json",
        ])
        .env("HARNESS_HOME", home.path())
        .output()
        .expect("up");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("removed leftovers of killed run"),
        "{}",
        text(&out.stderr)
    );
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let down = harness()
        .args(["down", up["run_id"].as_str().expect("id")])
        .env("HARNESS_HOME", home.path())
        .output()
        .expect("down");
    assert!(down.status.success(), "{}", text(&down.stderr));
    for id in &containers {
        assert!(
            !exists("container", id),
            "container {id} survived the reaper"
        );
    }
    for v in &volumes {
        assert!(!exists("volume", v), "volume {v} survived the reaper");
    }
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!(
            "label=dev.harness.run={}",
            up["run_id"].as_str().expect("id")
        ),
    ]);
    assert!(
        text(&left.stdout).trim().is_empty(),
        "`harness down` left containers"
    );
}

#[test]
fn a_missing_image_names_the_fix_and_starts_nothing() {
    let home = tempfile::tempdir().expect("home");
    let out = harness()
        .args(["up", "--provider", "docker", "--services", "postgres,s3"])
        .env("HARNESS_HOME", home.path())
        .env("HARNESS_IMAGE_POSTGRES", "harness.local/not-built:0")
        .output()
        .expect("up");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("harness.local/not-built:0 is not on this machine"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: `docker pull harness.local/not-built:0`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Images are checked before anything starts.
    let runs = std::fs::read_dir(home.path().join("runs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(runs, 0, "a run was recorded");
}

#[test]
fn a_missing_engine_names_the_fix() {
    let out = harness()
        .args(["up", "--provider", "docker", "--services", "postgres"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("up");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("reach the Docker engine"), "{stderr}");
    assert!(stderr.contains("fix: start the Docker engine"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_provider_is_bad_input() {
    let out = harness()
        .args(["up", "--provider", "kubernetes"])
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("known providers are native, docker, external"));
}

#[test]
fn external_endpoints_off_this_machine_are_refused_without_allow_remote() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("endpoints.yaml");
    std::fs::write(
        &file,
        "postgres: { host: 10.1.2.3, port: 5432, password: x }\n",
    )
    .expect("write");
    let out = harness()
        .args(["up", "--provider", "external", "--from"])
        .arg(&file)
        .output()
        .expect("up");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("10.1.2.3:5432 is not a loopback address"),
        "{stderr}"
    );
}

fn compose() -> Option<Vec<String>> {
    if Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| vec!["docker-compose".into()])
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_compose_stack_is_attached_with_the_external_provider_and_never_stopped_by_it() {
    let compose = compose().expect("docker compose (v2) or docker-compose (v1) is installed");
    let file = repo().join("infra/compose/compose.yaml");
    let data = tempfile::tempdir().expect("data");
    let home = tempfile::tempdir().expect("home");
    let project = format!("harness-test-{}", std::process::id());
    // Free ports, so that this test runs beside anything else.
    let ports: Vec<String> = (0..6)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
                .to_string()
        })
        .collect();
    let password = format!("pw{}", std::process::id() * 7919);
    let mut env: Vec<(String, String)> = vec![
        ("HARNESS_COMPOSE_PASSWORD".into(), password.clone()),
        (
            "HARNESS_COMPOSE_DATA".into(),
            data.path().display().to_string(),
        ),
        ("HARNESS_COMPOSE_POSTGRES_PORT".into(), ports[0].clone()),
        ("HARNESS_COMPOSE_S3_PORT".into(), ports[1].clone()),
        ("HARNESS_COMPOSE_NEO4J_PORT".into(), ports[2].clone()),
        ("HARNESS_COMPOSE_OTLP_GRPC_PORT".into(), ports[3].clone()),
        ("HARNESS_COMPOSE_OTLP_HTTP_PORT".into(), ports[4].clone()),
        ("HARNESS_COMPOSE_OTEL_HEALTH_PORT".into(), ports[5].clone()),
    ];
    // The images the Docker provider would run here: upstream where pulled, else local.
    let list = harness()
        .args(["images", "list", "--json"])
        .output()
        .expect("images list");
    assert!(list.status.success(), "{}", text(&list.stderr));
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    for row in list.as_array().expect("rows") {
        if let Some(image) = row["runs"].as_str() {
            let var = row["env"].as_str().expect("env").to_owned();
            env.push((var, image.to_owned()));
        }
    }
    let stack = ComposeStack {
        command: compose,
        project: project.clone(),
        file: file.clone(),
        env: env.clone(),
    };
    let run_compose = |args: &[&str]| stack.run(args);
    let up = run_compose(&["up", "-d"]);
    assert!(up.status.success(), "compose up: {}", text(&up.stderr));

    let mut attach = harness();
    attach
        .args(["up", "--provider", "external", "--json", "--from"])
        .arg(&file)
        .env("HARNESS_HOME", home.path());
    for (k, v) in &env {
        attach.env(k, v);
    }
    let attached = attach.output().expect("attach");
    {
        assert!(attached.status.success(), "{}", text(&attached.stderr));
        let record: serde_json::Value = serde_json::from_slice(&attached.stdout).expect("json");
        let run_id = record["run_id"].as_str().expect("id").to_owned();
        assert_eq!(record["services"]["postgres"]["port"].to_string(), ports[0]);

        // A scenario runs on the attached stack, through every service it uses.
        let run = harness()
            .args(["run", "--attach", &run_id])
            .arg(repo().join("scenarios/postgres_orders.yaml"))
            .arg(repo().join("scenarios/s3_versions.yaml"))
            .arg(repo().join("scenarios/neo4j_prerequisites.yaml"))
            .env("HARNESS_HOME", home.path())
            .output()
            .expect("run");
        assert!(run.status.success(), "{}", text(&run.stderr));

        let down = harness()
            .args(["down", &run_id])
            .env("HARNESS_HOME", home.path())
            .output()
            .expect("down");
        assert!(down.status.success(), "{}", text(&down.stderr));
        // Forgetting the record stops nothing of someone else's stack.
        let ps = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]);
        assert_eq!(
            text(&ps.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count(),
            4,
            "the compose stack must keep running after `harness down`"
        );
    }
}

/// A compose project that is taken down with its volumes however the test ends.
struct ComposeStack {
    command: Vec<String>,
    project: String,
    file: PathBuf,
    env: Vec<(String, String)>,
}

impl ComposeStack {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run compose")
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v"]);
    }
}

#[test]
fn images_build_skips_an_image_whose_recipe_did_not_change() {
    let run = || {
        harness()
            .args(["images", "build", "--only", "s3"])
            .current_dir(repo())
            .output()
            .expect("images build")
    };
    let first = run();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = run();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("harness.local/versitygw:1.8.0  up to date"),
        "{}",
        text(&second.stdout)
    );
}

#[test]
fn on_the_docker_provider_the_sample_api_runs_from_its_image() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/docker/api_in_container.yaml");
    let run = |provider: &str| {
        harness()
            .args(["run", "--provider", provider])
            .arg(&file)
            .output()
            .expect("run")
    };
    let docker = run("docker");
    assert!(docker.status.success(), "{}", text(&docker.stderr));
    // The same file natively: the api is a host process, so the last step must fail.
    let native = run("native");
    assert_eq!(native.status.code(), Some(1), "{}", text(&native.stderr));
    assert!(
        text(&native.stderr).contains("the api is a container from harness.local/sample-api"),
        "{}",
        text(&native.stderr)
    );
}

#[test]
fn a_start_in_another_harness_home_leaves_this_homes_containers_alone() {
    let (home_a, home_b) = (
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    );
    let mut owner = harness()
        .args(["up", "--provider", "docker", "--services", "s3"])
        .env("HARNESS_HOME", home_a.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn harness up");
    let record = wait_for_containers(home_a.path(), owner.id(), 1);
    let id = record["containers"][0][1].as_str().expect("id").to_owned();
    // A start in home B sweeps the containers no record of home B claims; A's are not B's.
    let other = harness()
        .args([
            "up",
            "--provider",
            "docker",
            "--services",
            "s3",
            "--detach",
            "--json",
        ])
        .env("HARNESS_HOME", home_b.path())
        .output()
        .expect("up");
    assert!(other.status.success(), "{}", text(&other.stderr));
    let survived = exists("container", &id);
    let _ = harness()
        .arg("down")
        .env("HARNESS_HOME", home_b.path())
        .output();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("interrupt");
    let _ = owner.wait();
    assert!(survived, "a start in another home removed {id}");
    assert!(
        !exists("container", &id),
        "Ctrl-C must remove the container"
    );
}

/// The containers of this `HARNESS_HOME`'s Cloud Run instances.
fn instance_containers() -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        "label=dev.harness.service",
        "--filter",
        "name=harness-cr-hello-",
    ]);
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn the_standalone_cloud_run_emulator_runs_local_images_on_the_docker_provider() {
    use common::cloud_run::{Emulator, version};
    // A local image of a Perl server (the debian-base image has Perl), built here.
    let context = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images/docker");
    let built = docker(&[
        "build",
        "-q",
        "-t",
        "harness.local/test-hello:dev",
        context.to_str().expect("path"),
    ]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let home = tempfile::tempdir().expect("home");
    let mut emu = Emulator::start_in(Some(home.path()), &["--provider", "docker"]);
    emu.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=harness.local/test-hello:dev",
        "--set-env-vars=APP_VERSION=d1",
    ]);
    let svc = emu.describe("hello");
    let rev = svc["status"]["latestReadyRevisionName"]
        .as_str()
        .expect("ready revision")
        .to_owned();
    let url = svc["status"]["url"].as_str().expect("url").to_owned();
    // Served by the container, with the contract's environment.
    let v = version(&url);
    assert_eq!(v["version"], "d1", "{v}");
    assert_eq!(v["revision"], rev.as_str());
    assert_eq!(v["service"], "hello");
    let running = instance_containers();
    assert_eq!(running.len(), 1, "one instance container: {running:?}");
    let labels = text(
        &docker(&[
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &running[0],
        ])
        .stdout,
    );
    assert!(labels.contains("cloud-run:harness-cr-hello-"), "{labels}");
    // Neither the map nor the engine has this one: Cloud Run's missing-image failure.
    let err = emu.fails(&["run", "deploy", "hello", "--image=harness.local/nothere:v1"]);
    assert!(
        err.contains("Image 'harness.local/nothere:v1' not found.")
            && err.contains("no local image"),
        "{err}"
    );
    // The failed revision left the traffic alone.
    assert_eq!(version(&url)["revision"], rev.as_str());
    // Killed with no chance to clean up: its container outlives it ...
    emu.kill();
    assert_eq!(
        instance_containers().len(),
        1,
        "the container outlives a SIGKILL"
    );
    // ... until the next start reaps the run it recorded.
    let mut next = Emulator::start_in(Some(home.path()), &["--provider", "docker"]);
    // `docker ps` may still list a container the engine is removing for a moment.
    let mut left = instance_containers();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        left = instance_containers();
    }
    assert!(left.is_empty(), "the next start removed {left:?}");
    // A normal stop removes its instances' containers too.
    next.ok(&[
        "run",
        "deploy",
        "hello",
        "--image=harness.local/test-hello:dev",
    ]);
    assert_eq!(instance_containers().len(), 1);
    next.stop();
    assert!(instance_containers().is_empty());
    let runs: Vec<_> = std::fs::read_dir(home.path().join("runs"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "records or folders left: {runs:?}");
}
