//! The default object store: VersityGW, an Apache-2.0 S3 gateway over a POSIX folder, built
//! with `go install` at a pinned tag. Chosen for S3 fidelity (versioning with
//! `--versioning-dir`, multipart, presigned URLs, path-style), a one-minute build and a
//! start-up in tens of milliseconds; see `docs/architecture.md`.

use std::{path::Path, process::Command};

use super::{RuntimeKind, go_tool, run_logged};
use crate::error::Error;

pub const VERSION: &str = "1.8.0";
const MODULE: &str = "github.com/versity/versitygw/cmd/versitygw";

/// Path of the binary inside the install.
pub const BINARY: &str = "bin/versitygw";

pub(super) fn install(staging: &Path, step: &dyn Fn(&str)) -> Result<(String, Vec<String>), Error> {
    let go = go_tool(RuntimeKind::S3)?;
    step(&format!(
        "go install {MODULE}@v{VERSION} (about a minute on 2 cores)"
    ));
    run_logged(
        RuntimeKind::S3,
        Command::new(go)
            .args(["install", "-trimpath", &format!("{MODULE}@v{VERSION}")])
            .env("GOBIN", staging.join("bin"))
            .env("CGO_ENABLED", "0"),
        &staging.join("build.log"),
    )?;
    step("verify the binary runs");
    run_logged(
        RuntimeKind::S3,
        Command::new(staging.join(BINARY)).arg("--version"),
        &staging.join("verify.log"),
    )?;
    Ok((
        format!("go module {MODULE}@v{VERSION}"),
        vec![BINARY.to_owned()],
    ))
}
