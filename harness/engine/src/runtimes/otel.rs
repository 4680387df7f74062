//! The OpenTelemetry Collector, built with the official collector builder from the manifest
//! committed in `infra/otel/` (OTLP receiver, batch processor, file and debug exporters,
//! health_check extension). The committed go.mod/go.sum pin every module, so the build does
//! not resolve test-only modules the registry does not serve.

use std::{fs, path::Path, process::Command};

use super::{RuntimeKind, go_tool, run_logged};
use crate::error::{Error, IoContext};

pub const VERSION: &str = "0.165.0";
const BUILDER: &str = "go.opentelemetry.io/collector/cmd/builder";
const MANIFEST: &str = include_str!("../../assets/otel/builder-config.yaml");
const GO_MOD: &str = include_str!("../../assets/otel/go.mod");
const GO_SUM: &str = include_str!("../../assets/otel/go.sum");

/// Path of the binary inside the install.
pub const BINARY: &str = "bin/harness-otelcol";

pub(super) fn install(staging: &Path, step: &dyn Fn(&str)) -> Result<(String, Vec<String>), Error> {
    let go = go_tool(RuntimeKind::Otel)?;
    let work = staging.join("build");
    fs::create_dir_all(&work).ctx(|| format!("create {}", work.display()))?;
    step(&format!("go install {BUILDER}@v{VERSION}"));
    run_logged(
        RuntimeKind::Otel,
        Command::new(&go)
            .args(["install", &format!("{BUILDER}@v{VERSION}")])
            .env("GOBIN", &work)
            .env("CGO_ENABLED", "0"),
        &staging.join("builder.log"),
    )?;
    fs::write(work.join("builder-config.yaml"), MANIFEST).ctx(|| "write manifest".to_owned())?;
    step("generate the collector sources");
    run_logged(
        RuntimeKind::Otel,
        Command::new(work.join("builder"))
            .args([
                "--config",
                "builder-config.yaml",
                "--skip-get-modules",
                "--skip-compilation",
            ])
            .current_dir(&work),
        &staging.join("generate.log"),
    )?;
    let src = work.join("build");
    fs::write(src.join("go.mod"), GO_MOD).ctx(|| "write go.mod".to_owned())?;
    fs::write(src.join("go.sum"), GO_SUM).ctx(|| "write go.sum".to_owned())?;
    step("compile the collector (one to two minutes on 2 cores)");
    run_logged(
        RuntimeKind::Otel,
        Command::new(&go)
            .args(["build", "-mod=mod", "-trimpath", "-o"])
            .arg(staging.join(BINARY))
            .arg(".")
            .current_dir(&src)
            .env("CGO_ENABLED", "0"),
        &staging.join("build.log"),
    )?;
    let _ = fs::remove_dir_all(&work);
    step("verify the binary runs");
    run_logged(
        RuntimeKind::Otel,
        Command::new(staging.join(BINARY)).arg("--version"),
        &staging.join("verify.log"),
    )?;
    Ok((
        format!("collector builder v{VERSION} with infra/otel/builder-config.yaml"),
        vec![BINARY.to_owned()],
    ))
}
