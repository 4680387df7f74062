//! The `harness` command line: argument parsing, then a call into `harness_engine`.

mod scenarios;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use scenarios::{run_scenarios, validate};

use clap::{Parser, Subcommand};
use harness_engine::{
    Error,
    progress::{Progress, ProgressEvent},
    runtimes::{self, RuntimeKind, RuntimeStatus},
    stack::{self, ServiceKind, Stack},
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
        /// Comma-separated services: postgres, s3, neo4j, otel (default: all).
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// Only `native` is available in this build.
        #[arg(long, default_value = "native")]
        provider: String,
        /// Fixed ports, as SERVICE=PORT (repeatable).
        #[arg(long = "port", value_name = "SERVICE=PORT")]
        ports: Vec<String>,
        /// Leave the stack running and return; `harness down` stops it.
        #[arg(long)]
        detach: bool,
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
    /// Run scenario files (folders are searched for *.yaml) on one shared stack.
    Run(RunArgs),
    /// Check scenario files without running anything.
    Validate {
        /// Files or folders.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of scenario files (for editor completion).
    Schema,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Files or folders.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Run only scenarios with one of these tags (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    tag: Vec<String>,
    /// Scenarios run at the same time, each isolated in its own database, bucket and graph label.
    #[arg(long, short = 'j', default_value_t = 4)]
    jobs: usize,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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
    /// Colour in console output (default: when stderr is a terminal).
    #[arg(long)]
    color: Option<bool>,
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
    if let Command::Run(args) = cli.command {
        return runtime.block_on(run_scenarios(args));
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{:?}", miette::Report::msg(format!("failed to {e}")));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn progress() -> Progress {
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
    names.iter().map(|n| RuntimeKind::parse(n.trim())).collect()
}

async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Doctor { json } => doctor(json),
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
            provider,
            ports,
            detach,
            json,
        } => up(&services, &provider, &ports, detach, json).await,
        Command::Status { json } => {
            let runs = stack::list();
            if json {
                print_json(&runs);
            } else if runs.is_empty() {
                println!("no stacks are recorded");
            } else {
                for r in runs {
                    let state = if r.any_service_alive() {
                        "running"
                    } else {
                        "dead"
                    };
                    let mode = if r.detached { "detached" } else { "attached" };
                    let names: Vec<_> = r.services.iter().map(|(n, _)| n.as_str()).collect();
                    println!("{}  {state}  {mode}  {}", r.run_id, names.join(","));
                }
            }
            Ok(())
        }
        Command::Run(_) => unreachable!("`run` is dispatched in main"),
        Command::Validate { paths } => validate(&paths),
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

async fn up(
    services: &[String],
    provider: &str,
    ports: &[String],
    detach: bool,
    json: bool,
) -> Result<(), Error> {
    if provider != "native" {
        return Err(Error::UnknownService {
            name: format!("provider {provider}"),
            known: "native".into(),
        });
    }
    let mut signals = StopSignals::register();
    let mut builder = Stack::builder().progress(progress());
    for kind in kinds(services)? {
        builder = builder.service(kind);
    }
    for spec in ports {
        let (name, port) = spec
            .split_once('=')
            .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
            .ok_or_else(|| Error::Other(format!("read --port `{spec}`: expected SERVICE=PORT")))?;
        builder = builder.port(ServiceKind::parse(name)?, port);
    }
    let stack = builder.start().await?;
    let summary = serde_json::json!({
        "run_id": stack.run_id(),
        "run_dir": stack.run_dir(),
        "services": stack.endpoints(),
    });
    if json {
        print_json(&summary);
    } else {
        println!("stack {} is up:", stack.run_id());
        print_json(stack.endpoints());
    }
    if detach {
        stack.detach()?;
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
    stack.shutdown().await;
    Ok(())
}

/// SIGINT and SIGTERM, registered before the stack starts so that a signal during start-up
/// still ends in a clean shutdown instead of the default action.
struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(&mut self) {
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

fn doctor(json: bool) -> Result<(), Error> {
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
