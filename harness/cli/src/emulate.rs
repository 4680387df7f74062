//! `harness emulate …`: the emulated control planes on their own, and the fault control API
//! that an attached `harness up` serves beside its stack (`services.faults`).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use harness_engine::{
    Error,
    emulators::cloud_run::{self, CloudRun, images::ImageMap},
    faults::api::{Control, ControlServer, TOXIPROXY_API},
    run::faults::proxy_names,
    stack::Endpoints,
};
use serde_json::{Value, json};

use crate::StopSignals;

/// `harness emulate toxiproxy`: Toxiproxy's control API on 127.0.0.1 until Ctrl-C, with the
/// proxies of a Toxiproxy config file (`--config`, as `toxiproxy-server -config`) made first.
pub async fn toxiproxy(port: u16, seed: Option<u64>, config: Option<&Path>) -> Result<(), Error> {
    let mut signals = StopSignals::register();
    let seed = seed.unwrap_or_else(crate::scenarios::rand_seed);
    let control = Control::new(seed);
    if let Some(file) = config {
        populate(&control, file).await?;
    }
    let server = serve(&control, port).await?;
    // The address alone on stdout, for scripts that asked for port 0.
    println!("{}", server.url());
    eprintln!(
        "Toxiproxy {TOXIPROXY_API} control API on {} (seed {seed}); press Ctrl-C to stop",
        server.url()
    );
    signals.wait().await;
    drop(server);
    if let Err(e) = control.reset().await {
        eprintln!("warning: {e}");
    }
    Ok(())
}

async fn serve(control: &Arc<Control>, port: u16) -> Result<ControlServer, Error> {
    control
        .serve(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| {
            Error::Other(format!(
                "could not serve the fault control API on 127.0.0.1:{port}: {e}"
            ))
        })
}

/// A Toxiproxy config file: a JSON list of `{name, listen, upstream, enabled}`.
async fn populate(control: &Control, file: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::BadInput(format!("read {}: {e}", file.display())))?;
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        Error::BadInput(format!(
            "read {}: expected a JSON list of proxies ({e})",
            file.display()
        ))
    })?;
    for (i, p) in list.iter().enumerate() {
        let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let at = format!("{} (proxy {})", file.display(), i + 1);
        if field("name").is_empty() || field("upstream").is_empty() {
            return Err(Error::BadInput(format!(
                "read {at}: a proxy needs `name` and `upstream`"
            )));
        }
        let listen = match field("listen") {
            "" => "127.0.0.1:0",
            l => l,
        };
        let enabled = p.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        control
            .create(field("name"), listen, field("upstream"), enabled)
            .await
            .map_err(|e| Error::BadInput(format!("read {at}: {e}")))?;
    }
    Ok(())
}

/// The fault control API of an attached `harness up`: a proxy in front of each port of each
/// service, named as in scenarios (`postgres`, `neo4j.bolt_url`, …), and the API itself.
pub struct StackFaults {
    pub control: Arc<Control>,
    pub server: ControlServer,
}

impl StackFaults {
    pub async fn start(endpoints: &Endpoints, port: u16, seed: u64) -> Result<Self, Error> {
        let control = Control::new(seed);
        let all = serde_json::to_value(endpoints).unwrap_or(Value::Null);
        if let Value::Object(services) = &all {
            for (service, endpoint) in services {
                for (upstream, name) in proxy_names(service, endpoint) {
                    control
                        .create(&name, "127.0.0.1:0", &format!("127.0.0.1:{upstream}"), true)
                        .await
                        .map_err(|e| {
                            Error::Other(format!("could not front {service} with a proxy: {e}"))
                        })?;
                }
            }
        }
        let server = serve(&control, port).await?;
        Ok(StackFaults { control, server })
    }

    /// `services.faults` in `harness up --json`.
    pub async fn endpoint(&self) -> Value {
        json!({
            "url": self.server.url(),
            "host": "127.0.0.1",
            "port": self.server.addr.port(),
            "api": format!("toxiproxy {TOXIPROXY_API}"),
            "proxies": self.control.list().await,
        })
    }
}

/// The fault control API of a detached stack: `harness emulate toxiproxy` as a process of
/// its own (its own process group, its log in the run folder), with a proxy in front of each
/// service port. Returns its pid, for the stack's record, and `services.faults`.
pub async fn detached(
    endpoints: &Endpoints,
    run_dir: &Path,
    port: u16,
    seed: u64,
) -> Result<(u32, Value), Error> {
    let all = serde_json::to_value(endpoints).unwrap_or(Value::Null);
    let mut config = Vec::new();
    if let Value::Object(services) = &all {
        for (service, endpoint) in services {
            for (upstream, name) in proxy_names(service, endpoint) {
                config.push(json!({
                    "name": name,
                    "listen": "127.0.0.1:0",
                    "upstream": format!("127.0.0.1:{upstream}"),
                }));
            }
        }
    }
    let file = run_dir.join("faults.json");
    let io = |what: &str, e: std::io::Error| Error::Other(format!("{what}: {e}"));
    std::fs::write(&file, serde_json::to_vec(&config).unwrap_or_default())
        .map_err(|e| io(&format!("write {}", file.display()), e))?;
    let (pid, url) = announced(
        &[
            "emulate",
            "toxiproxy",
            "--port",
            &port.to_string(),
            "--seed",
            &seed.to_string(),
            "--config",
        ],
        &file,
        &run_dir.join("faults.log"),
        "the fault control API",
        |line| line.starts_with("http://127.0.0.1:"),
    )
    .await?;
    let proxies = reqwest::Client::new()
        .get(format!("{url}/proxies"))
        .send()
        .await
        .map_err(|e| Error::Other(format!("ask the fault control API for its proxies: {e}")))?
        .json::<Value>()
        .await
        .map_err(|e| Error::Other(format!("read the fault control API's proxies: {e}")))?;
    let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    Ok((
        pid,
        json!({
            "url": url,
            "host": "127.0.0.1",
            "port": port,
            "api": format!("toxiproxy {TOXIPROXY_API}"),
            "proxies": proxies,
        }),
    ))
}

#[derive(clap::Args)]
pub struct CloudRunArgs {
    /// The API's port on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 8181)]
    port: u16,
    /// The project it serves (the v1 namespace).
    #[arg(long, default_value = "demo")]
    project: String,
    /// The region it serves.
    #[arg(long, default_value = "us-central1")]
    region: String,
    /// Where revisions run: `native` (host processes from the image map) or `docker` (an
    /// image the map does not have runs from the local Docker image of that reference, as a
    /// container on the host network; mapped `cargo:` packages with an image run from it).
    #[arg(long, default_value = "native")]
    provider: String,
    /// The image map: which program runs for each image reference (YAML or JSON,
    /// `images: {REF: {command | cargo, env}}`).
    #[arg(long, value_name = "FILE")]
    images: Option<PathBuf>,
    /// Values of secrets that revisions reference (`--set-secrets VAR=NAME:VERSION`): a
    /// file of `NAME=VALUE` lines. Never printed or reported.
    #[arg(long, value_name = "FILE")]
    secrets: Option<PathBuf>,
    /// Seed of the traffic split and generated names (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds an instance beyond a revision's minimum may stay idle before it is stopped.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Where instance logs and events.jsonl go (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Print the endpoint and the gcloud environment as one JSON object.
    #[arg(long)]
    json: bool,
}

/// `harness emulate cloud-run`: until Ctrl-C; then every instance and task is stopped.
pub async fn cloud_run(a: CloudRunArgs) -> Result<(), Error> {
    let docker = match a.provider.as_str() {
        "native" => false,
        "docker" => true,
        other => {
            return Err(Error::BadInput(format!(
                "--provider {other}: the Cloud Run emulator runs revisions on `native` (host processes from the image map) or `docker` (local images, and the map)"
            )));
        }
    };
    if docker {
        harness_engine::stack::docker::connect().await?;
    }
    let mut signals = StopSignals::register();
    // What a killed emulator or run left goes first; this one's containers are recorded,
    // so that the next start removes them if it is killed in turn.
    let _ = harness_engine::stack::reaper::reap().await;
    let groups = if docker {
        Some(harness_engine::stack::records::Groups::create()?.with_containers())
    } else {
        None
    };
    let seed = a.seed.unwrap_or_else(crate::scenarios::rand_seed);
    let log_dir = match a.log_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("harness-cloud-run-{}", std::process::id())),
    };
    let mut cfg = cloud_run::Config::new(log_dir.clone());
    cfg.project = a.project;
    cfg.region = a.region;
    cfg.seed = seed;
    cfg.port = a.port;
    cfg.idle_timeout = Duration::from_secs(a.idle_timeout);
    if let Some(file) = &a.images {
        cfg.images = ImageMap::load(file)?;
    }
    if let Some(file) = &a.secrets {
        cfg.secrets = read_secrets(file)?;
    }
    if let Some(g) = &groups {
        let bin_dir = std::env::var_os("HARNESS_BIN_DIR").map(PathBuf::from);
        cfg.builds = Some(Arc::new(
            harness_engine::run::processes::Builds::new(bin_dir).in_containers(Some(g.run_id())),
        ));
        cfg.groups = Some(g.clone());
    }
    let started = CloudRun::start(cfg).await;
    let emulator = match started {
        Ok(e) => e,
        Err(e) => {
            if let Some(g) = &groups {
                g.finish();
            }
            return Err(e);
        }
    };
    let gcloud_dir = log_dir.join("gcloud");
    let env = emulator.gcloud_env(&gcloud_dir);
    if a.json {
        let env: BTreeMap<_, _> = env.into_iter().collect();
        println!(
            "{}",
            json!({
                "url": emulator.url(),
                "endpoint": emulator.endpoint(),
                "project": emulator.project(),
                "region": emulator.region(),
                "seed": seed,
                "log_dir": log_dir,
                "gcloud_env": env,
            })
        );
    } else {
        for (k, v) in &env {
            println!("export {k}={v}");
        }
    }
    eprintln!(
        "Cloud Run emulator on {} (project {}, region {}, seed {seed}); logs in {}.\nPoint gcloud at it with the exports above; press Ctrl-C to stop",
        emulator.url(),
        emulator.project(),
        emulator.region(),
        log_dir.display()
    );
    signals.wait().await;
    eprintln!("stopping every instance …");
    emulator.shutdown().await;
    if let Some(g) = &groups {
        // Whatever a stop did not reach (a container whose CLI was killed) goes by label.
        let _ = harness_engine::stack::docker::remove_run(&g.run_id()).await;
        g.finish();
    }
    Ok(())
}

fn read_secrets(file: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::BadInput(format!("read {}: {e}", file.display())))?;
    let mut all = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            Error::BadInput(format!(
                "read {}:{}: expected NAME=VALUE",
                file.display(),
                i + 1
            ))
        })?;
        all.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(all)
}

/// `services.cloud_run` of `harness up --json`.
fn cloud_run_endpoint(
    url: &str,
    endpoint: &str,
    project: &str,
    region: &str,
    log_dir: &Path,
    env: Value,
) -> Value {
    json!({
        "url": url,
        "endpoint": endpoint,
        "project": project,
        "region": region,
        "log_dir": log_dir,
        "gcloud_env": env,
    })
}

/// `cloud-run` (or `cloud_run`) among `--services`: the Cloud Run emulator.
pub fn is_cloud_run(name: &str) -> bool {
    matches!(name.trim(), "cloud-run" | "cloud_run")
}

/// Whether `harness up --services` asks for the Cloud Run emulator, the runtimes it asks for,
/// and the emulator's image map, read before anything starts so that a bad one costs nothing.
pub fn cloud_run_wanted(
    services: &[String],
    images: Option<&Path>,
) -> Result<(bool, Vec<String>, Option<ImageMap>), Error> {
    let wanted = services.iter().any(|s| is_cloud_run(s));
    let runtimes = services
        .iter()
        .filter(|s| !is_cloud_run(s))
        .cloned()
        .collect();
    if images.is_some() && !wanted {
        return Err(Error::BadInput(
            "read --cloud-run-images: it is the Cloud Run emulator's image map, so add cloud-run to --services".into(),
        ));
    }
    let map = images.map(ImageMap::load).transpose()?;
    Ok((wanted, runtimes, map))
}

/// The Cloud Run emulator beside a stack of `harness up`: in this process for an attached
/// stack, as a process of its own, recorded with the stack, for a detached one. Returns the
/// in-process emulator (attached) and `services.cloud_run`.
pub async fn cloud_run_beside(
    stack: &mut harness_engine::stack::Stack,
    detach: bool,
    port: u16,
    images_file: Option<&Path>,
    images: Option<ImageMap>,
) -> Result<(Option<CloudRun>, Value), Error> {
    if detach {
        let (pid, endpoint) = cloud_run_detached(stack.run_dir(), port, images_file).await?;
        stack.adopt("cloud-run", pid)?;
        Ok((None, endpoint))
    } else {
        let (c, endpoint) = cloud_run_attached(stack.run_dir(), port, images).await?;
        Ok((Some(c), endpoint))
    }
}

/// The Cloud Run emulator of an attached `harness up`, in this process; its logs in the
/// stack's run folder.
pub async fn cloud_run_attached(
    run_dir: &Path,
    port: u16,
    images: Option<ImageMap>,
) -> Result<(CloudRun, Value), Error> {
    let log_dir = run_dir.join("cloud-run");
    let mut cfg = cloud_run::Config::new(log_dir.clone());
    cfg.port = port;
    cfg.seed = crate::scenarios::rand_seed();
    if let Some(map) = images {
        cfg.images = map;
    }
    let c = CloudRun::start(cfg).await?;
    let env: BTreeMap<_, _> = c.gcloud_env(&log_dir.join("gcloud")).into_iter().collect();
    let endpoint = cloud_run_endpoint(
        &c.url(),
        &c.endpoint(),
        c.project(),
        c.region(),
        &log_dir,
        json!(env),
    );
    Ok((c, endpoint))
}

/// The Cloud Run emulator of a detached `harness up`: `harness emulate cloud-run` as a
/// process of its own (its own process group, its log in the run folder). Returns its pid,
/// for the stack's record, and `services.cloud_run`.
pub async fn cloud_run_detached(
    run_dir: &Path,
    port: u16,
    images: Option<&Path>,
) -> Result<(u32, Value), Error> {
    let log_dir = run_dir.join("cloud-run");
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| Error::Other(format!("create the Cloud Run emulator's folder: {e}")))?;
    let port = port.to_string();
    let mut args = vec!["emulate", "cloud-run", "--json", "--port", &port];
    if let Some(f) = images.and_then(Path::to_str) {
        args.extend(["--images", f]);
    }
    args.push("--log-dir");
    let (pid, line) = announced(
        &args,
        &log_dir,
        &run_dir.join("cloud-run.log"),
        "the Cloud Run emulator",
        |line| serde_json::from_str::<Value>(line).is_ok(),
    )
    .await?;
    let info: Value = serde_json::from_str(&line).unwrap_or_default();
    let field = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
    Ok((
        pid,
        cloud_run_endpoint(
            &field("url"),
            &field("endpoint"),
            &field("project"),
            &field("region"),
            &log_dir,
            info["gcloud_env"].clone(),
        ),
    ))
}

/// Starts `harness ARGS PATH` as a process of its own (its own process group, stdin closed,
/// stderr in `log`) and waits for the first line it prints, which `ok` must accept. Returns
/// its pid and that line; on failure it is killed and the error quotes its log.
/// Starts the watcher that stops a leased stack when its holder ends, in a session of its
/// own with no terminal or pipe of the caller's (a test runner waits for those to close).
pub(crate) fn watch_lease(record: &harness_engine::stack::records::RunRecord) -> Result<(), Error> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Other(format!("find the harness binary: {e}")))?;
    let log = std::fs::File::create(record.run_dir.join("lease.log"))
        .map_err(|e| Error::Other(format!("create the lease watcher's log: {e}")))?;
    std::process::Command::new(exe)
        .args(["watch-lease", &record.run_id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Other(format!("start the lease watcher: {e}")))?;
    Ok(())
}

pub(crate) async fn announced(
    args: &[&str],
    path: &Path,
    log: &Path,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<(u32, String), Error> {
    use tokio::io::AsyncBufReadExt;
    let io = |doing: &str, e: std::io::Error| Error::Other(format!("{doing}: {e}"));
    let file =
        std::fs::File::create(log).map_err(|e| io(&format!("create the log of {what}"), e))?;
    let exe = std::env::current_exe().map_err(|e| io("find the harness binary", e))?;
    let mut child = tokio::process::Command::new(exe)
        .args(args)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(file)
        .process_group(0)
        .spawn()
        .map_err(|e| io(&format!("start {what}"), e))?;
    let pid = child.id().unwrap_or_default();
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => {
            let mut out = tokio::io::BufReader::new(out);
            tokio::time::timeout(Duration::from_secs(10), out.read_line(&mut line)).await
        }
        None => Ok(Ok(0)),
    };
    let line = line.trim().to_owned();
    if !matches!(read, Ok(Ok(n)) if n > 0) || !ok(&line) {
        let _ = child.kill().await;
        let said = std::fs::read_to_string(log).unwrap_or_default();
        return Err(Error::Other(format!(
            "{what} did not start: {}",
            said.trim()
        )));
    }
    Ok((pid, line))
}
