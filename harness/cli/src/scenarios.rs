//! `harness run` and `harness validate`: argument handling and output around
//! `harness_engine::run`.

use std::{io::IsTerminal, process::ExitCode};

use harness_engine::{
    Error,
    report::{Fanout, console::Console, json::JsonReport, junit::JunitReport, trace::TraceReport},
    run::{
        Reporter, RunOptions,
        session::{SessionError, StackSource, load_paths, run_loaded},
    },
    stack::ProviderKind,
};
use harness_scenario::{Diagnostics, Service};

use crate::{RunArgs, progress};

fn print_diagnostics(all: &[Diagnostics]) {
    for d in all {
        eprintln!(
            "{:?}",
            miette::Report::new(Diagnostics::new(d.source.clone(), d.problems.clone()))
        );
    }
    let problems: usize = all.iter().map(|d| d.problems.len()).sum();
    eprintln!(
        "error: {} file{} invalid ({problems} problem{}); nothing was started",
        all.len(),
        if all.len() == 1 { " is" } else { "s are" },
        if problems == 1 { "" } else { "s" }
    );
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("{:?}", miette::Report::msg(format!("failed to {e}")));
    ExitCode::from(e.exit_code() as u8)
}

pub fn validate(paths: &[std::path::PathBuf]) -> Result<(), Error> {
    match load_paths(paths) {
        Ok(loaded) => {
            for l in &loaded {
                println!("ok  {}", l.path.display());
            }
            Ok(())
        }
        Err(SessionError::Invalid(d)) => {
            print_diagnostics(&d);
            Err(Error::BadInput("validate scenarios".into()))
        }
        Err(SessionError::Env(e)) => Err(e),
    }
}

pub async fn run_scenarios(args: RunArgs) -> ExitCode {
    let scenarios = match load_paths(&args.paths) {
        Ok(s) => s,
        Err(SessionError::Invalid(d)) => {
            print_diagnostics(&d);
            return ExitCode::from(2);
        }
        Err(SessionError::Env(e)) => return fail(&e),
    };
    let scenarios: Vec<_> = if args.tag.is_empty() {
        scenarios
    } else {
        scenarios
            .into_iter()
            .filter(|l| l.scenario.tags.iter().any(|t| args.tag.contains(t)))
            .collect()
    };
    if scenarios.is_empty() {
        return fail(&Error::BadInput(format!(
            "select scenarios: none has a tag in {}",
            args.tag.join(", ")
        )));
    }
    let trace = args.trace.as_deref();
    if let Some(t) = trace
        && t != "stdout"
        && t != "otlp"
    {
        return fail(&Error::BadInput(format!(
            "read --trace `{t}`: expected `stdout` or `otlp`"
        )));
    }
    let seed = args.seed.unwrap_or_else(rand_seed);
    eprintln!(
        "running {} scenario(s), {} at a time, seed {seed}",
        scenarios.len(),
        args.jobs.max(1)
    );
    let options = RunOptions {
        jobs: args.jobs,
        seed,
        keep: args.keep,
        update_snapshots: args.update_snapshots,
        progress: progress(),
        ..RunOptions::default()
    };
    let source = match (args.attach, args.provider.as_deref()) {
        (Some(id), _) => StackSource::Attach(id),
        (None, Some(p)) => match ProviderKind::parse(p) {
            Ok(p) => StackSource::StartWith(p),
            Err(e) => return fail(&e),
        },
        (None, None) => StackSource::Start,
    };
    let extra: &[Service] = if trace == Some("otlp") {
        &[Service::Otel]
    } else {
        &[]
    };
    let color = args
        .color
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    let (junit, json) = (args.junit.clone(), args.json.clone());
    let make =
        move |endpoints: &harness_engine::stack::Endpoints| -> Result<Box<dyn Reporter>, Error> {
            let mut reporters: Vec<Box<dyn Reporter>> =
                vec![Box::new(Console::new(Box::new(std::io::stderr()), color))];
            if let Some(path) = junit {
                reporters.push(Box::new(JunitReport::new(path)));
            }
            if let Some(path) = json {
                reporters.push(Box::new(JsonReport::new(path)));
            }
            match trace {
                Some("stdout") => reporters.push(Box::new(TraceReport::stdout())),
                Some("otlp") => {
                    let otel = endpoints.otel.as_ref().ok_or_else(|| {
                        Error::Other("trace to the collector: the stack has none".into())
                    })?;
                    let r = TraceReport::otlp(&otel.otlp_http)
                        .map_err(|e| Error::Other(format!("set up tracing: {e}")))?;
                    reporters.push(Box::new(r));
                }
                _ => {}
            }
            Ok(Box::new(Fanout::new(reporters)))
        };
    match run_loaded(scenarios, &source, options, progress(), extra, make).await {
        Ok(summary) => {
            if let Some(run_id) = &summary.kept_stack {
                eprintln!(
                    "kept stack {run_id} with the failed scenarios' data for inspection; \
                     `harness status --json` shows its endpoints, `harness down {run_id}` stops it"
                );
            }
            ExitCode::from(summary.exit_code() as u8)
        }
        Err(SessionError::Invalid(d)) => {
            print_diagnostics(&d);
            ExitCode::from(2)
        }
        Err(SessionError::Env(e)) => fail(&e),
    }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
}
