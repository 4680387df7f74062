//! The `harness` command line: argument parsing, then a call into `harness_engine`.

mod emulate;
mod init;
mod partition;
mod scenarios;
mod supabase;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use scenarios::{run_scenarios, validate};

use clap::{Parser, Subcommand};
use harness_engine::{
    Error,
    progress::{Progress, ProgressEvent},
    runtimes::{self, RuntimeKind, RuntimeStatus},
    stack::{self, ProviderKind, ServiceKind, Stack},
};

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Local-to-cloud simulation and test harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set a project up to test itself with harness: a first scenario, the nextest wiring
    /// (in a Cargo package), a CI workflow and .gitignore lines.
    Init {
        /// The project's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Replace files harness init writes when they are there already.
        #[arg(long)]
        force: bool,
    },
    /// Check each runtime and provider and say how to fix what is missing.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Install the runtimes into $HARNESS_HOME/runtimes.
    Runtimes {
        #[command(subcommand)]
        command: RuntimesCommand,
    },
    /// Bring the stack up.
    Up {
        /// Comma-separated services: postgres, s3, neo4j, otel, and the emulators cloud-run
        /// and supabase (which brings postgres and s3)
        /// (default: the four runtimes).
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// cloud-run: the image map of the Cloud Run emulator (as `harness emulate
        /// cloud-run --images`).
        #[arg(long, value_name = "FILE")]
        cloud_run_images: Option<PathBuf>,
        /// native (child processes), docker (containers through testcontainers), or
        /// external (attach to a stack someone else started; needs --from).
        #[arg(long, env = "HARNESS_PROVIDER", default_value = "native")]
        provider: String,
        /// external: an endpoints file, or a compose file with an `x-harness` key.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// external: allow endpoints that are not on this machine.
        #[arg(long)]
        allow_remote: bool,
        /// docker: the image of a service, as SERVICE=IMAGE (repeatable).
        #[arg(long = "image", value_name = "SERVICE=IMAGE")]
        images: Vec<String>,
        /// Fixed ports, as SERVICE=PORT (repeatable); `faults=PORT` for the fault control API,
        /// `cloud-run=PORT` for the Cloud Run emulator's API.
        #[arg(long = "port", value_name = "SERVICE=PORT")]
        ports: Vec<String>,
        /// Leave the stack running and return; `harness down` stops it.
        #[arg(long)]
        detach: bool,
        /// With --detach: stop the stack when the process PID ends (a test runner's, for
        /// one stack per test run); a watcher process does it.
        #[arg(long, value_name = "PID", requires = "detach")]
        lease: Option<u32>,
        /// Print the endpoints as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the stacks recorded on this machine.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop detached stacks (all of them, or one by run id).
    Down { run_id: Option<String> },
    /// The watcher of a leased stack (started by `harness up --lease`).
    #[command(hide = true)]
    WatchLease { run_id: String },
    /// Run scenario files (folders are searched for *.yaml) on one shared stack.
    Run(RunArgs),
    /// Rehearse restore drills: run the scenarios that back up and restore (each file must
    /// have a `backup` or `restore` step), on a stack harness starts or on an external
    /// target, whose data a drill destroys only when the target file allows it and
    /// `--i-understand-this-destroys-data` is given.
    Drill(DrillArgs),
    /// Check scenario files without running anything; lint warnings (such as a captured
    /// value pasted into SQL) are printed and do not fail the check.
    Validate {
        /// Files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        /// Treat lint warnings as errors (exit 2, as for an invalid file).
        #[arg(long)]
        strict: bool,
    },
    /// Print the JSON Schema of scenario files (for editor completion).
    Schema,
    /// Serve an emulated control plane on 127.0.0.1 on its own, until Ctrl-C.
    Emulate {
        #[command(subcommand)]
        command: EmulateCommand,
    },
    /// Images for the Docker provider.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Subcommand)]
enum EmulateCommand {
    /// Toxiproxy's HTTP control API (`/proxies`, `/proxies/{name}/toxics`, `/reset`,
    /// `/version`) over harness's seeded fault proxies, for toxiproxy-cli and the Toxiproxy
    /// client libraries. Prints its URL on stdout.
    Toxiproxy {
        /// The API's port on 127.0.0.1 (0: a free one).
        #[arg(long, default_value_t = 8474)]
        port: u16,
        /// Seed of every random choice the proxies make (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Proxies to create first: a Toxiproxy config file (a JSON list of
        /// `{name, listen, upstream, enabled}`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Cloud Run's Admin API (the v1 surface `gcloud run` uses: services, revisions,
    /// routes, configurations, jobs, executions, tasks) over real instances of each
    /// revision, with an ingress per service on 127.0.0.1. Prints the environment that
    /// points gcloud at it (or, with --json, its endpoint).
    CloudRun(emulate::CloudRunArgs),
    /// Supabase's gateway (Auth at /auth/v1 and PostgREST's REST surface at /rest/v1) over
    /// a Postgres of its own, for supabase-js and supabase-py. Prints the URL and keys.
    Supabase(supabase::SupabaseArgs),
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build the local images from infra/docker (no registry needed): the services', and
    /// the sample apps' when run inside the project.
    Build {
        /// Comma-separated: postgres, s3, neo4j, otel, sample-api, sample-ingest (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Rebuild even when nothing changed.
        #[arg(long)]
        force: bool,
        /// The folder of Dockerfiles (default: ./infra/docker).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Show which image each service would run, and whether it is on this machine.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Run only scenarios with one of these tags (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    tag: Vec<String>,
    /// Run one machine's share of the files (after `--tag`), deterministic by file:
    /// `count:K/N` deals them round-robin in path order, `hash:K/N` by a hash of each path
    /// (a bare `K/N` is `count:`); the N shares are disjoint and cover every file.
    #[arg(long, value_name = "count:K/N|hash:K/N")]
    partition: Option<partition::Partition>,
    /// Scenarios run at the same time, each isolated in its own database, bucket and graph
    /// label; 0 means one per CPU.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report here: each scenario's steps on a timeline, and a
    /// restore drill's writer, disaster and recovery time.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Seed for `${fake.*}` values (default: random, printed so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep a failed scenario's database, bucket and graph label for inspection.
    #[arg(long)]
    keep: bool,
    /// Write snapshots instead of failing when they differ.
    #[arg(long)]
    update_snapshots: bool,
    /// Trace harness's own run: `stdout` or `otlp` (to the stack's collector).
    #[arg(long, value_name = "EXPORTER")]
    trace: Option<String>,
    /// Run on a stack started with `harness up --detach` instead of starting one.
    #[arg(long, value_name = "RUN_ID")]
    attach: Option<String>,
    /// The provider of the stack this run starts: native or docker (default:
    /// HARNESS_PROVIDER, else native).
    #[arg(long)]
    provider: Option<String>,
    /// Colour in console output (default: when stderr is a terminal).
    #[arg(long)]
    color: Option<bool>,
}

#[derive(clap::Args)]
struct DrillArgs {
    #[command(flatten)]
    run: RunArgs,
    /// An external target instead of a stack harness starts: an endpoints file (as `harness
    /// up --provider external --from`) whose Postgres `database` the drills act on, with a
    /// `destroy: { postgres: [DATABASE] }` allow-list of what they may destroy.
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,
    /// With --target: let the drills destroy what the target file's `destroy` names.
    #[arg(long)]
    i_understand_this_destroys_data: bool,
    /// With --target: allow endpoints that are not on this machine.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(Subcommand)]
enum RuntimesCommand {
    Install {
        /// Comma-separated runtimes: postgres, s3, neo4j, otel (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Reinstall even when an install is present.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Paths and log lines in messages must not be wrapped mid-token.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().width(10_000).build())
    }));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let cli = match cli.command {
        Command::Run(args) => return runtime.block_on(run_scenarios(args)),
        Command::Drill(d) => {
            return runtime.block_on(scenarios::run_drills(
                d.run,
                d.target,
                d.i_understand_this_destroys_data,
                d.allow_remote,
            ));
        }
        command => Cli { command },
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

pub(crate) fn progress() -> Progress {
    Arc::new(|event: &ProgressEvent| match event {
        ProgressEvent::InstallStep { runtime, step } => eprintln!("  installing {runtime}: {step}"),
        ProgressEvent::Installed {
            runtime,
            version,
            elapsed,
        } => eprintln!(
            "  installed {runtime} {version} in {:.1}s",
            elapsed.as_secs_f64()
        ),
        ProgressEvent::WaitingForLock { path } => {
            eprintln!("  waiting for another harness install to finish ({path})")
        }
        ProgressEvent::ServiceStarting { service } => eprintln!("  starting {service}"),
        ProgressEvent::ServiceReady { service, elapsed } => {
            eprintln!("  {service} ready in {:.2}s", elapsed.as_secs_f64())
        }
        ProgressEvent::Reaped { run_id } => eprintln!("  removed leftovers of killed run {run_id}"),
        ProgressEvent::Building { package } => {
            eprintln!("  building {package} (cargo build -p {package})")
        }
    })
}

fn kinds(names: &[String]) -> Result<Vec<RuntimeKind>, Error> {
    if names.is_empty() {
        return Ok(RuntimeKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            RuntimeKind::parse(n.trim()).map_err(|e| match e {
                Error::UnknownRuntime { name, known } => Error::UnknownService { name, known },
                other => other,
            })
        })
        .collect()
}

/// Prints an error as one `error:` line (plus the lines it carries, such as a log tail),
/// then what to do about it.
pub(crate) fn report(e: &Error) {
    eprintln!("error: {e}");
    if let Some(hint) = e.hint() {
        eprintln!("  help: {hint}");
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Doctor { json } => doctor(json).await,
        Command::Init { dir, force } => {
            let written = init::init(&dir, force)?;
            for f in &written.files {
                println!("wrote {}", dir.join(f).display());
            }
            println!();
            println!("next:");
            println!("  harness runtimes install        # once per machine");
            if written.cargo {
                println!(
                    "  cargo nextest run --test scenarios   # each file in scenarios/ is a test"
                );
            } else {
                println!("  harness run scenarios/");
            }
            println!("  then start your service under `processes` in scenarios/smoke.yaml");
            Ok(())
        }
        Command::Runtimes {
            command: RuntimesCommand::Install { only, force },
        } => {
            let installed = runtimes::ensure(&kinds(&only)?, force, &progress()).await?;
            for i in installed {
                println!(
                    "{} {} at {}",
                    i.kind.name(),
                    i.manifest.version,
                    i.dir.display()
                );
            }
            Ok(())
        }
        Command::Up {
            services,
            cloud_run_images,
            provider,
            from,
            allow_remote,
            images,
            ports,
            detach,
            lease,
            json,
        } => {
            let provider = ProviderKind::parse(&provider)?;
            if provider == ProviderKind::External {
                return attach_external(from.as_deref(), allow_remote, json).await;
            }
            if from.is_some() {
                return Err(Error::BadInput(
                    "read --from: it names the stack to attach to, so it needs --provider external"
                        .into(),
                ));
            }
            up(
                &services,
                cloud_run_images.as_deref(),
                provider,
                &images,
                &ports,
                Detach {
                    detach,
                    lease: lease.map(stack::lease::Lease::of).transpose()?,
                },
                json,
            )
            .await
        }
        Command::WatchLease { run_id } => {
            stack::lease::watch(&run_id).await?;
            Ok(())
        }
        Command::Images { command } => images_command(command).await,
        Command::Emulate {
            command: EmulateCommand::Toxiproxy { port, seed, config },
        } => emulate::toxiproxy(port, seed, config.as_deref()).await,
        Command::Emulate {
            command: EmulateCommand::CloudRun(args),
        } => emulate::cloud_run(args).await,
        Command::Emulate {
            command: EmulateCommand::Supabase(args),
        } => supabase::emulate(args).await,
        Command::Status { json } => {
            let runs = stack::list();
            if json {
                print_json(&runs);
            } else if runs.is_empty() {
                println!("no stacks are recorded");
            } else {
                for r in runs {
                    let state = if r.alive().await { "running" } else { "dead" };
                    let mode = if r.detached { "detached" } else { "attached" };
                    let names = service_names(&r.endpoints);
                    println!(
                        "{}  {state}  {mode}  {}  {}",
                        r.run_id,
                        r.provider.name(),
                        names.join(",")
                    );
                }
            }
            Ok(())
        }
        Command::Run(_) | Command::Drill(_) => {
            unreachable!("`run` and `drill` are dispatched in main")
        }
        Command::Validate { paths, strict } => validate(&paths, strict),
        Command::Schema => {
            print_json(&harness_scenario::json_schema());
            Ok(())
        }
        Command::Down { run_id } => {
            let stopped = stack::down(run_id.as_deref()).await?;
            if stopped.is_empty() {
                println!("no detached stack was running");
            }
            for id in stopped {
                println!("stopped {id}");
            }
            Ok(())
        }
    }
}

fn service_names(e: &stack::Endpoints) -> Vec<&'static str> {
    [
        ("postgres", e.postgres.is_some()),
        ("s3", e.s3.is_some()),
        ("neo4j", e.neo4j.is_some()),
        ("otel", e.otel.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, present)| present.then_some(n))
    .collect()
}

/// `harness up --provider external --from FILE`: check the stack answers and record it.
async fn attach_external(from: Option<&Path>, allow_remote: bool, json: bool) -> Result<(), Error> {
    let from = from.ok_or_else(|| {
        Error::BadInput(
            "attach: --provider external needs --from FILE (an endpoints file, or a compose \
             file with an `x-harness` key such as infra/compose/compose.yaml)"
                .into(),
        )
    })?;
    let record = stack::external::attach(from, allow_remote).await?;
    if json {
        print_json(&serde_json::json!({
            "run_id": record.run_id,
            "provider": "external",
            "services": record.endpoints,
        }));
    } else {
        println!(
            "attached to the external stack as {} ({}); run scenarios on it with \
             `harness run --attach {}`; `harness down {}` forgets it and stops nothing",
            record.run_id,
            service_names(&record.endpoints).join(", "),
            record.run_id,
            record.run_id
        );
    }
    Ok(())
}

async fn images_command(command: ImagesCommand) -> Result<(), Error> {
    use stack::docker::{build, images};
    match command {
        ImagesCommand::Build { only, force, from } => {
            let wanted: Vec<images::ImageSpec> = if only.is_empty() {
                images::ALL.to_vec()
            } else {
                only.iter()
                    .map(|n| {
                        images::ALL
                            .into_iter()
                            .find(|s| s.name == n.trim())
                            .ok_or_else(|| Error::UnknownService {
                                name: n.clone(),
                                known: images::ALL.map(|s| s.name).join(", "),
                            })
                    })
                    .collect::<Result<_, _>>()?
            };
            let (apps, services): (Vec<_>, Vec<_>) = wanted
                .into_iter()
                .partition(|s| s.name.starts_with("sample-"));
            let mut app_binaries = Vec::new();
            if !apps.is_empty() {
                let builds = harness_engine::run::processes::Builds::new(
                    std::env::var_os("HARNESS_BIN_DIR").map(PathBuf::from),
                );
                for app in apps {
                    if !Path::new("fixtures/apps").is_dir() {
                        eprintln!(
                            "  skipping {}: run `harness images build` from the project's folder to build the sample apps",
                            app.name
                        );
                        continue;
                    }
                    eprintln!("  building {} (cargo build -p {})", app.name, app.name);
                    let bin = builds
                        .binary(Path::new("."), app.name)
                        .await
                        .map_err(|e| Error::Other(e.message().to_owned()))?;
                    app_binaries.push((app, bin));
                }
            }
            let options = build::BuildOptions {
                docker_dir: from.unwrap_or_else(build::default_docker_dir),
                only: services,
                app_binaries,
                force,
            };
            for b in build::build(options, &progress()).await? {
                println!(
                    "{}  {}  recipe {}  {:.1}s",
                    b.image,
                    if b.rebuilt { "built" } else { "up to date" },
                    b.recipe,
                    b.seconds
                );
            }
            Ok(())
        }
        ImagesCommand::List { json } => {
            let docker = stack::docker::connect().await?;
            let mut rows = Vec::new();
            for spec in images::ALL {
                let mut present = Vec::new();
                for image in [spec.upstream, spec.local] {
                    if images::present(&docker, image).await? && !present.contains(&image) {
                        present.push(image);
                    }
                }
                let chosen = spec.resolve(&docker, None).await.ok();
                rows.push(serde_json::json!({
                    "name": spec.name, "upstream": spec.upstream, "local": spec.local,
                    "env": spec.env, "present": present, "runs": chosen,
                }));
            }
            if json {
                print_json(&rows);
            } else {
                for r in &rows {
                    println!(
                        "{:<14} runs {:<46} (upstream {}, local {}, override {})",
                        r["name"].as_str().unwrap_or_default(),
                        r["runs"].as_str().unwrap_or("nothing: missing"),
                        r["upstream"].as_str().unwrap_or_default(),
                        r["local"].as_str().unwrap_or_default(),
                        r["env"].as_str().unwrap_or_default(),
                    );
                }
            }
            Ok(())
        }
    }
}

/// Whether `harness up` returns leaving the stack running, and for whom.
struct Detach {
    detach: bool,
    lease: Option<stack::lease::Lease>,
}

async fn up(
    services: &[String],
    cloud_run_images: Option<&std::path::Path>,
    provider: ProviderKind,
    images: &[String],
    ports: &[String],
    detach: Detach,
    json: bool,
) -> Result<(), Error> {
    let Detach { detach, lease } = detach;
    let mut signals = StopSignals::register();
    let mut builder = Stack::builder().progress(progress()).provider(provider);
    let (want_cloud_run, runtimes, image_map) =
        emulate::cloud_run_wanted(services, cloud_run_images)?;
    let (want_supabase, runtimes) = supabase::wanted(&runtimes);
    if !(want_cloud_run && runtimes.is_empty()) {
        for kind in kinds(&runtimes)? {
            builder = builder.service(kind);
        }
    }
    for spec in images {
        let (name, image) = spec
            .split_once('=')
            .filter(|(_, i)| !i.is_empty())
            .ok_or_else(|| {
                Error::BadInput(format!("read --image `{spec}`: expected SERVICE=IMAGE"))
            })?;
        builder = builder.image(ServiceKind::parse(name)?, image);
    }
    let mut faults_port = 0;
    let mut cloud_run_port = 0;
    let mut supabase_port = 0;
    for spec in ports {
        let (name, port) = spec
            .split_once('=')
            .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
            .ok_or_else(|| Error::Other(format!("read --port `{spec}`: expected SERVICE=PORT")))?;
        if name == "faults" {
            faults_port = port;
            continue;
        }
        if emulate::is_cloud_run(name) {
            cloud_run_port = port;
            continue;
        }
        if name == "supabase" {
            supabase_port = port;
            continue;
        }
        builder = builder.port(ServiceKind::parse(name)?, port);
    }
    let mut stack = builder.start().await?;
    let mut services = serde_json::to_value(stack.endpoints()).unwrap_or_default();
    // An attached stack serves the fault control API from this process; a detached one
    // from a process of its own, recorded with the stack so that `harness down` stops it.
    if detach {
        let started = emulate::detached(
            stack.endpoints(),
            stack.run_dir(),
            faults_port,
            scenarios::rand_seed(),
        )
        .await;
        match started.and_then(|(pid, endpoint)| stack.adopt("faults", pid).map(|()| endpoint)) {
            Ok(endpoint) => {
                if let Some(map) = services.as_object_mut() {
                    map.insert("faults".into(), endpoint);
                }
            }
            Err(e) => {
                stack.shutdown().await;
                return Err(e);
            }
        }
    }
    let faults = if detach {
        None
    } else {
        let seed = scenarios::rand_seed();
        match emulate::StackFaults::start(stack.endpoints(), faults_port, seed).await {
            Ok(f) => Some(f),
            Err(e) => {
                stack.shutdown().await;
                return Err(e);
            }
        }
    };
    if let (Some(f), Some(map)) = (&faults, services.as_object_mut()) {
        map.insert("faults".into(), f.endpoint().await);
    }
    // The Cloud Run emulator: in this process for an attached stack, as a process of its
    // own (recorded with the stack) for a detached one.
    let mut cloud_run = None;
    if want_cloud_run {
        match emulate::cloud_run_beside(
            &mut stack,
            detach,
            cloud_run_port,
            cloud_run_images,
            image_map,
        )
        .await
        {
            Ok((c, endpoint)) => {
                cloud_run = c;
                if let Some(map) = services.as_object_mut() {
                    map.insert("cloud_run".into(), endpoint);
                }
            }
            Err(e) => {
                drop(faults);
                stack.shutdown().await;
                return Err(e);
            }
        }
    }
    // The Supabase emulator, the same way.
    let mut supabase = None;
    if want_supabase {
        match supabase::beside(&mut stack, detach, supabase_port).await {
            Ok((s, endpoint)) => {
                supabase = s;
                if let Some(map) = services.as_object_mut() {
                    map.insert("supabase".into(), endpoint);
                }
            }
            Err(e) => {
                drop(faults);
                if let Some(c) = cloud_run {
                    c.shutdown().await;
                }
                stack.shutdown().await;
                return Err(e);
            }
        }
    }
    let summary = serde_json::json!({
        "run_id": stack.run_id(),
        "provider": stack.provider().name(),
        "run_dir": stack.run_dir(),
        "services": services,
    });
    if json {
        print_json(&summary);
    } else {
        println!("stack {} is up:", stack.run_id());
        print_json(&services);
    }
    if detach {
        if let Some(lease) = lease {
            stack.lease(lease);
        }
        let record = stack.detach()?;
        if lease.is_some() {
            emulate::watch_lease(&record)?;
        }
        if !json {
            println!(
                "detached; stop it with `harness down {}`",
                summary["run_id"].as_str().unwrap_or_default()
            );
        }
        return Ok(());
    }
    if !json {
        eprintln!("press Ctrl-C to stop");
    }
    signals.wait().await;
    eprintln!("stopping");
    drop(faults);
    if let Some(c) = cloud_run {
        c.shutdown().await;
    }
    if let Some(s) = supabase {
        s.shutdown().await;
    }
    stack.shutdown().await;
    Ok(())
}

/// SIGINT and SIGTERM, registered before the stack starts so that a signal during start-up
/// still ends in a clean shutdown instead of the default action.
pub(crate) struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(crate) fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    pub(crate) async fn wait(&mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.interrupt) => {}
            _ = recv(&mut self.terminate) => {}
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: could not encode JSON: {e}"),
    }
}

async fn doctor(json: bool) -> Result<(), Error> {
    let mut rows = Vec::new();
    for kind in RuntimeKind::ALL {
        let (state, detail, fix) = match runtimes::status(kind, true) {
            RuntimeStatus::Installed(i) => ("ok", i.dir.display().to_string(), String::new()),
            RuntimeStatus::Missing => ("missing", String::new(), kind.fix_command()),
            RuntimeStatus::Corrupt(why) => {
                ("corrupt", why, format!("{} --force", kind.fix_command()))
            }
        };
        rows.push(serde_json::json!({
            "runtime": kind.name(), "version": kind.version(), "state": state,
            "detail": detail, "fix": fix,
        }));
    }
    for (tool, fix) in runtimes::toolchain_checks() {
        rows.push(serde_json::json!({
            "runtime": tool.0, "version": "", "state": if tool.1 { "ok" } else { "missing" },
            "detail": "build tool", "fix": if tool.1 { "" } else { fix },
        }));
    }
    rows.push(serde_json::json!({
        "runtime": "provider:native", "version": "", "state": "ok", "detail": "", "fix": "",
    }));
    rows.push(match stack::docker::connect().await {
        Ok(_) => serde_json::json!({
            "runtime": "provider:docker", "version": "", "state": "ok", "detail": "", "fix": "",
        }),
        Err(e) => serde_json::json!({
            "runtime": "provider:docker", "version": "", "state": "missing",
            "detail": e.to_string().lines().next().unwrap_or_default(),
            "fix": "see `harness images list`; the Docker engine and images are needed only for --provider docker",
        }),
    });
    if json {
        print_json(&rows);
    } else {
        for r in &rows {
            let fix = r["fix"].as_str().unwrap_or_default();
            println!(
                "{:<18} {:<9} {:<8} {}{}",
                r["runtime"].as_str().unwrap_or_default(),
                r["version"].as_str().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default(),
                r["detail"].as_str().unwrap_or_default(),
                if fix.is_empty() {
                    String::new()
                } else {
                    format!("  fix: {fix}")
                }
            );
        }
    }
    Ok(())
}
