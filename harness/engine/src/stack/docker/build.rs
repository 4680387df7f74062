//! `harness images build`: builds the local images from the Dockerfiles in `infra/docker/`
//! for machines that cannot pull. The base is Debian bookworm made with debootstrap and
//! `docker import`; each image's build context is its folder plus the runtime files it
//! packages (the same binaries the native provider runs). An image is rebuilt only when
//! the hash of its context changes (kept in the image's `dev.harness.recipe` label).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use sha2::{Digest, Sha256};

use super::images::{self, BASE, ImageSpec};
use crate::{
    error::{Error, IoContext},
    fsutil, home,
    progress::{Progress, ProgressEvent},
    runtimes::{self, RuntimeKind},
};

/// The label holding the hash of the context an image was built from.
pub const RECIPE_LABEL: &str = "dev.harness.recipe";

/// What to build.
pub struct BuildOptions {
    /// The folder holding one folder of Dockerfile and files per image.
    pub docker_dir: PathBuf,
    /// The images to build (default: every service image).
    pub only: Vec<ImageSpec>,
    /// Binaries of the sample apps, for their images.
    pub app_binaries: Vec<(ImageSpec, PathBuf)>,
    /// Rebuild even when the recipe is unchanged.
    pub force: bool,
}

/// What happened to one image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Built {
    pub image: String,
    pub recipe: String,
    /// False when an image of the same recipe was already there.
    pub rebuilt: bool,
    pub seconds: f64,
}

/// The `infra/docker` folder: `HARNESS_DOCKER_DIR`, else `infra/docker` under the current
/// folder, else the one this harness was built from.
pub fn default_docker_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_DOCKER_DIR") {
        return dir.into();
    }
    let here = PathBuf::from("infra/docker");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/docker")
}

fn step(progress: &Progress, image: &str, text: String) {
    progress(&ProgressEvent::InstallStep {
        runtime: image.to_owned(),
        step: text,
    });
}

/// Builds the base image when missing, then each requested image whose recipe changed.
pub async fn build(options: BuildOptions, progress: &Progress) -> Result<Vec<Built>, Error> {
    let docker = super::connect().await?;
    let cli = runtimes::find_tool("docker", &["/usr/bin/docker", "/usr/local/bin/docker"])
        .ok_or_else(|| Error::DockerUnavailable {
            detail: "the `docker` command is not installed".into(),
            fix: "apt-get install -y docker.io".into(),
        })?;
    let logs = home::home().join("images");
    fs::create_dir_all(&logs).ctx(|| format!("create {}", logs.display()))?;
    if !images::present(&docker, BASE).await? {
        let started = Instant::now();
        step(progress, BASE, "debootstrap bookworm (about 30 s)".into());
        let (cli, logs) = (cli.clone(), logs.clone());
        tokio::task::spawn_blocking(move || build_base(&cli, &logs))
            .await
            .map_err(|e| Error::Other(e.to_string()))??;
        progress(&ProgressEvent::Installed {
            runtime: BASE.to_owned(),
            version: "bookworm".into(),
            elapsed: started.elapsed(),
        });
    }
    let base_id = docker
        .inspect_image(BASE)
        .await
        .map_err(|e| Error::Docker(format!("inspect {BASE}: {e}")))?
        .id
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut wanted: Vec<(ImageSpec, Option<PathBuf>)> =
        options.only.iter().map(|s| (*s, None)).collect();
    wanted.extend(
        options
            .app_binaries
            .iter()
            .map(|(s, p)| (*s, Some(p.clone()))),
    );
    for (spec, binary) in wanted {
        let started = Instant::now();
        let staging = tempdir(&logs, spec.name)?;
        let result = stage(
            &options.docker_dir,
            spec,
            binary.as_deref(),
            &staging,
            progress,
        )
        .await
        .and_then(|()| recipe(&staging, &base_id));
        let recipe = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let existing = docker.inspect_image(spec.local).await.ok();
        let previous_id = existing.as_ref().and_then(|i| i.id.clone());
        let current = existing.and_then(|i| i.config?.labels?.get(RECIPE_LABEL).cloned());
        let rebuilt = options.force || current.as_deref() != Some(recipe.as_str());
        if rebuilt {
            step(progress, spec.local, format!("docker build ({})", spec.dir));
            let (cli, staging2, log) = (
                cli.clone(),
                staging.clone(),
                logs.join(format!("{}.log", spec.name)),
            );
            let (tag, label) = (spec.local.to_owned(), format!("{RECIPE_LABEL}={recipe}"));
            let result = tokio::task::spawn_blocking(move || {
                docker_build(&cli, &staging2, &tag, &label, &log)
            })
            .await
            .map_err(|e| Error::Other(e.to_string()))?;
            if let Err(e) = result {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
            // The image this one replaced is left without a tag; remove it unless a
            // container still uses it (the engine refuses then, which is fine).
            let new_id = docker
                .inspect_image(spec.local)
                .await
                .ok()
                .and_then(|i| i.id);
            if let Some(old) = previous_id.filter(|old| Some(old) != new_id.as_ref()) {
                let _ = docker
                    .remove_image(
                        &old,
                        None::<testcontainers::bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            }
        }
        let _ = fs::remove_dir_all(&staging);
        out.push(Built {
            image: spec.local.to_owned(),
            recipe: recipe[..16].to_owned(),
            rebuilt,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(out)
}

fn tempdir(root: &Path, name: &str) -> Result<PathBuf, Error> {
    let dir = root.join(format!("context-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// Copies the image's folder and the runtime files it packages into `staging`.
async fn stage(
    docker_dir: &Path,
    spec: ImageSpec,
    binary: Option<&Path>,
    staging: &Path,
    progress: &Progress,
) -> Result<(), Error> {
    let src = docker_dir.join(spec.dir);
    if !src.join("Dockerfile").is_file() {
        return Err(Error::BadInput(format!(
            "find the Dockerfile of {}: {} has none (set HARNESS_DOCKER_DIR to the project's infra/docker)",
            spec.name,
            src.display()
        )));
    }
    fsutil::copy_tree(&src, staging, None)?;
    let runtime = match spec.name {
        "s3" => Some((RuntimeKind::S3, runtimes::S3_BINARY, "versitygw")),
        "otel" => Some((RuntimeKind::Otel, runtimes::OTEL_BINARY, "otelcol")),
        "neo4j" => Some((RuntimeKind::Neo4j, "lib", "lib")),
        _ => None,
    };
    if let Some((kind, from, to)) = runtime {
        let installed = runtimes::ensure(&[kind], false, progress).await?;
        let from = installed[0].path(from);
        copy_any(&from, &staging.join(to))?;
    }
    if spec.name == "otel" {
        copy_any(
            &docker_dir.join("../otel/collector.yaml"),
            &staging.join("collector.yaml"),
        )?;
    }
    if spec.name == "sample-api" {
        // The api reads its migrations from disk; the image carries them.
        copy_any(
            &docker_dir.join("../../fixtures/apps/api/migrations"),
            &staging.join("migrations"),
        )?;
    }
    if let Some(bin) = binary {
        copy_any(bin, &staging.join(spec.name))?;
    }
    Ok(())
}

fn copy_any(from: &Path, to: &Path) -> Result<(), Error> {
    if from.is_dir() {
        fsutil::copy_tree(from, to, None)
    } else {
        fs::copy(from, to)
            .map(|_| ())
            .ctx(|| format!("copy {} to {}", from.display(), to.display()))
    }
}

/// The hash of every file in the context (path and content) and of the base image.
fn recipe(staging: &Path, base_id: &str) -> Result<String, Error> {
    let mut files = Vec::new();
    collect(staging, staging, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    hash.update(base_id.as_bytes());
    for rel in files {
        hash.update(rel.as_bytes());
        hash.update(fsutil::sha256_file(&staging.join(&rel))?.as_bytes());
    }
    Ok(format!("{:x}", hash.finalize()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let path = entry.ctx(|| format!("list {}", dir.display()))?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn docker_build(
    cli: &Path,
    context: &Path,
    tag: &str,
    label: &str,
    log: &Path,
) -> Result<(), Error> {
    let file = crate::home::create_private_file(log)?;
    let err = file.try_clone().ctx(|| "dup log".to_owned())?;
    let status = Command::new(cli)
        .args(["build", "--network", "host", "--build-arg"])
        .arg(format!("BASE={BASE}"))
        .args(["--label", label, "-t", tag])
        .arg(context)
        // The classic builder works with every engine and needs no buildx plugin.
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .ctx(|| format!("run {} build", cli.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Docker(format!(
            "build {tag} ({status}); last lines of {}:\n{}",
            log.display(),
            fsutil::tail(log, 15)
        )))
    }
}

/// The Debian mirror apt uses here (`HARNESS_DEBIAN_MIRROR` overrides it).
fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("HARNESS_DEBIAN_MIRROR") {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.flatten() {
            texts.extend(fs::read_to_string(e.path()).ok());
        }
    }
    texts.extend(fs::read_to_string("/etc/apt/sources.list").ok());
    for text in texts {
        for line in text.lines().map(str::trim) {
            let url = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ")
                    .and_then(|r| r.split_whitespace().find(|w| w.starts_with("http")))
            });
            if let Some(url) = url.filter(|u| u.ends_with("/debian") || u.ends_with("/debian/")) {
                return url.to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

fn build_base(cli: &Path, logs: &Path) -> Result<(), Error> {
    let debootstrap =
        runtimes::find_tool("debootstrap", &["/usr/sbin/debootstrap"]).ok_or_else(|| {
            Error::DockerUnavailable {
                detail: format!("{BASE} is missing and `debootstrap` is not installed to make it"),
                fix: "apt-get install -y debootstrap (then run `harness images build` as root)"
                    .into(),
            }
        })?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Error::DockerUnavailable {
            detail: format!("{BASE} is missing and debootstrap needs root to make it"),
            fix: "run `sudo harness images build` once".into(),
        });
    }
    let root = logs.join("debian-rootfs");
    let _ = fs::remove_dir_all(&root);
    let log = logs.join("debian-base.log");
    let result = (|| {
        let file = crate::home::create_private_file(&log)?;
        let err = file.try_clone().ctx(|| "dup log".to_owned())?;
        let status = Command::new(debootstrap)
            .args(["--variant=minbase", "bookworm"])
            .arg(&root)
            .arg(debian_mirror())
            .stdout(file)
            .stderr(err)
            .status()
            .ctx(|| "run debootstrap".to_owned())?;
        if !status.success() {
            return Err(Error::Docker(format!(
                "debootstrap ({status}); last lines of {}:\n{}",
                log.display(),
                fsutil::tail(&log, 15)
            )));
        }
        for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            if let Ok(entries) = fs::read_dir(root.join(cache)) {
                for e in entries.flatten() {
                    if e.path().is_file() {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        let script = format!(
            "tar -C '{}' -c . | '{}' import -c 'CMD [\"/bin/bash\"]' - {BASE}",
            root.display(),
            cli.display()
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .ctx(|| "run docker import".to_owned())?;
        if !out.status.success() {
            return Err(Error::Docker(format!(
                "docker import {BASE}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&root);
    result
}
