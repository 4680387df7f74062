//! `harness run` and `harness validate`: argument handling and output around
//! `harness_engine::run`.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use harness_engine::{
    Error,
    report::{
        Fanout, console::Console, html::HtmlReport, json::JsonReport, junit::JunitReport,
        trace::TraceReport,
    },
    run::{
        Reporter, RunOptions,
        session::{SessionError, StackSource, load_paths, run_loaded},
    },
    stack::ProviderKind,
};
use harness_scenario::{Diagnostics, Service, Severity};

use crate::{RunArgs, progress};

/// Prints each problem of each file on its own, with its excerpt.
fn print_diagnostics(all: &[Diagnostics]) {
    for d in all {
        for p in d.reports() {
            eprintln!("{:?}", miette::Report::new(p));
        }
    }
}

/// The error that ends a command whose files' problems were printed: one line that counts
/// them.
fn reported(all: &[Diagnostics]) -> Error {
    let problems: usize = all.iter().map(|d| d.problems.len()).sum();
    Error::Reported {
        problems: format!(
            "{} file{} invalid ({problems} problem{}); nothing was started",
            all.len(),
            if all.len() == 1 { " is" } else { "s are" },
            if problems == 1 { "" } else { "s" }
        ),
        code: harness_engine::ExitCode::BadInput,
    }
}

fn fail(e: &Error) -> ExitCode {
    crate::report(e);
    ExitCode::from(e.exit_code() as u8)
}

/// Parses every file, then lints the valid ones: warnings are printed, and with `strict`
/// they make their files invalid.
pub fn validate(paths: &[std::path::PathBuf], strict: bool) -> Result<(), Error> {
    let loaded = match load_paths(paths) {
        Ok(loaded) => loaded,
        Err(SessionError::Invalid(d)) => {
            print_diagnostics(&d);
            return Err(reported(&d));
        }
        Err(SessionError::Env(e)) => return Err(e),
    };
    let mut linted = Vec::new();
    for l in &loaded {
        let mut warnings = harness_scenario::lint(&l.scenario);
        if warnings.is_empty() {
            println!("ok  {}", l.path.display());
            continue;
        }
        if strict {
            for w in &mut warnings {
                w.severity = Severity::Error;
            }
        } else {
            let n = warnings.len();
            let plural = if n == 1 { "" } else { "s" };
            println!("ok  {} ({n} warning{plural})", l.path.display());
        }
        linted.push(Diagnostics::new(l.source.clone(), warnings));
    }
    if linted.is_empty() {
        return Ok(());
    }
    if strict {
        print_diagnostics(&linted);
        return Err(reported(&linted));
    }
    let warnings: usize = linted.iter().map(|d| d.problems.len()).sum();
    let files = linted.len();
    print_diagnostics(&linted);
    eprintln!(
        "warning: {warnings} lint warning{} in {files} file{}; `--strict` treats them as errors",
        if warnings == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" }
    );
    Ok(())
}

pub async fn run_scenarios(args: RunArgs) -> ExitCode {
    run_with(args, None).await
}

/// What `harness drill` adds to a run.
struct DrillRun {
    /// The external target's endpoints and what the drills may do to it.
    target: Option<(
        harness_engine::stack::Endpoints,
        harness_engine::drills::Target,
    )>,
}

/// `harness drill`: the scenarios that back up and restore, on a stack harness starts or on
/// an external target.
pub async fn run_drills(
    args: RunArgs,
    target: Option<PathBuf>,
    confirmed: bool,
    allow_remote: bool,
) -> ExitCode {
    let Some(file) = target else {
        if confirmed || allow_remote {
            return fail(&Error::BadInput(
                "--i-understand-this-destroys-data and --allow-remote go with --target FILE: \
                 without a target the drills act on a stack harness starts"
                    .into(),
            ));
        }
        return run_with(args, Some(DrillRun { target: None })).await;
    };
    if args.attach.is_some() || args.provider.is_some() {
        return fail(&Error::BadInput(
            "--target is the stack of the drills: leave out --attach and --provider".into(),
        ));
    }
    let target = match drill_target(&file, confirmed, allow_remote).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    run_with(
        args,
        Some(DrillRun {
            target: Some(target),
        }),
    )
    .await
}

/// Reads a drill's target file: the endpoints (checked as the external provider checks
/// them) and the `destroy` allow-list.
async fn drill_target(
    file: &std::path::Path,
    confirmed: bool,
    allow_remote: bool,
) -> Result<
    (
        harness_engine::stack::Endpoints,
        harness_engine::drills::Target,
    ),
    Error,
> {
    use harness_engine::stack::external;
    let endpoints = external::load(file)?;
    external::guard(&endpoints, allow_remote)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::BadInput(format!("read {}: {e}", file.display())))?;
    let doc: serde_json::Value = harness_scenario::yaml::parse(&text)
        .ok()
        .flatten()
        .map(|n| n.to_json())
        .unwrap_or_default();
    let database = endpoints.postgres.as_ref().map(|pg| pg.database.clone());
    let bucket = match &doc["s3"]["bucket"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(b) => Some(b.clone()),
        _ => {
            return Err(Error::BadInput(format!(
                "{}: `s3.bucket` is the name of the bucket the drills act on",
                file.display()
            )));
        }
    };
    if bucket.is_some() && endpoints.s3.is_none() {
        return Err(Error::BadInput(format!(
            "{}: `s3.bucket` needs the rest of `s3` (endpoint_url, region, access_key_id, secret_access_key)",
            file.display()
        )));
    }
    if database.is_none() && bucket.is_none() {
        return Err(Error::BadInput(format!(
            "{}: a drill target needs `postgres` (the database the drills act on) or `s3` with a `bucket`",
            file.display()
        )));
    }
    let destroy = &doc["destroy"];
    if !destroy.is_null() && !destroy.is_object() {
        return Err(Error::BadInput(format!(
            "{}: `destroy` is a map of store to names, such as `destroy: {{ postgres: [{}] }}`",
            file.display(),
            database.as_deref().unwrap_or("app")
        )));
    }
    let names = |store: &str, what: &str| -> Result<Vec<String>, Error> {
        let bad = || {
            Error::BadInput(format!(
                "{}: `destroy.{store}` lists {what} names",
                file.display()
            ))
        };
        match &destroy[store] {
            serde_json::Value::Null => Ok(Vec::new()),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
                .collect(),
            _ => Err(bad()),
        }
    };
    let allowed = names("postgres", "database")?;
    let allowed_buckets = names("s3", "bucket")?;
    if let Some(unknown) = destroy
        .as_object()
        .and_then(|m| m.keys().find(|k| !["postgres", "s3"].contains(&k.as_str())))
    {
        return Err(Error::BadInput(format!(
            "{}: `destroy.{unknown}`: a drill destroys only in `postgres` (databases) and `s3` (buckets) on an external target; a graph backup stops its DBMS, which only a stack harness starts allows",
            file.display()
        )));
    }
    external::check(&endpoints, std::time::Duration::from_secs(30)).await?;
    let target = harness_engine::drills::Target {
        database,
        bucket,
        allowed,
        allowed_buckets,
        confirmed,
    };
    Ok((endpoints, target))
}

async fn run_with(args: RunArgs, drill: Option<DrillRun>) -> ExitCode {
    let scenarios = match load_paths(&args.paths) {
        Ok(s) => s,
        Err(SessionError::Invalid(d)) => {
            print_diagnostics(&d);
            return fail(&reported(&d));
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
            "no scenario has a tag in {}; drop `--tag`, or give a scenario `tags: [{}]`",
            args.tag.join(", "),
            args.tag[0]
        )));
    }
    let scenarios = match args.partition {
        None => scenarios,
        Some(p) => {
            let share = p.select(scenarios, |l| l.path.as_path());
            if share.is_empty() {
                eprintln!("partition {p}: no scenario falls in this share; nothing to run");
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "partition {p}: {} scenario file(s) of this share",
                share.len()
            );
            share
        }
    };
    if drill.is_some() {
        let without: Vec<&str> = scenarios
            .iter()
            .filter(|l| {
                !l.scenario.steps.iter().any(|st| {
                    matches!(
                        st.action,
                        harness_scenario::Action::Backup(_) | harness_scenario::Action::Restore(_)
                    )
                })
            })
            .map(|l| l.source.name.as_str())
            .collect();
        if !without.is_empty() {
            return fail(&Error::BadInput(format!(
                "not a drill (no `backup` or `restore` step): {}; run it with `harness run`",
                without.join(", ")
            )));
        }
    }
    let trace = args.trace.as_deref();
    if let Some(t) = trace
        && t != "stdout"
        && t != "otlp"
    {
        return fail(&Error::BadInput(format!(
            "--trace takes `stdout` or `otlp`, not `{t}`"
        )));
    }
    let seed = args.seed.unwrap_or_else(rand_seed);
    let jobs = match args.jobs {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut signals = crate::StopSignals::register();
    let cancel = harness_engine::run::CancellationToken::new();
    let (target_endpoints, drill_target) = match drill.and_then(|d| d.target) {
        Some((e, t)) => (Some(e), Some(t)),
        None => (None, None),
    };
    let options = RunOptions {
        cancel: cancel.clone(),
        jobs,
        seed,
        keep: args.keep,
        update_snapshots: args.update_snapshots,
        progress: progress(),
        drill_target,
        ..RunOptions::default()
    };
    let source = match (target_endpoints, args.attach, args.provider.as_deref()) {
        (Some(e), _, _) => StackSource::Endpoints(Box::new(e)),
        (None, attach, provider) => match (attach, provider) {
            (Some(id), _) => StackSource::Attach(id),
            (None, Some(p)) => match ProviderKind::parse(p) {
                Ok(p) => StackSource::StartWith(p),
                Err(e) => return fail(&e),
            },
            (None, None) => StackSource::Start,
        },
    };
    let extra: &[Service] = if trace == Some("otlp") {
        &[Service::Otel]
    } else {
        &[]
    };
    let color = args
        .color
        .unwrap_or_else(|| std::io::stderr().is_terminal());
    let (junit, json, html) = (args.junit.clone(), args.json.clone(), args.report.clone());
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
            if let Some(path) = html {
                reporters.push(Box::new(HtmlReport::new(path)));
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
    // The first SIGINT/SIGTERM stops the steps and lets every scenario clean up; a second
    // one stops at once (the stack's guards still stop its services).
    let signalled = async {
        signals.wait().await;
        eprintln!(
            "interrupted: stopping the running steps and cleaning up (signal again to stop at once)"
        );
        cancel.cancel();
        signals.wait().await;
    };
    let outcome = tokio::select! {
        outcome = run_loaded(scenarios, &source, options, progress(), extra, make) => outcome,
        () = signalled => return ExitCode::from(harness_engine::ExitCode::Interrupted as u8),
    };
    match outcome {
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
            fail(&reported(&d))
        }
        Err(SessionError::Env(e)) => fail(&e),
    }
}

pub(crate) fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000)
}
