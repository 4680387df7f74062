//! Where harness keeps its files: `$HARNESS_HOME` (default `~/.cache/harness`) holds the
//! installed runtimes and the records of running stacks; service data lives in a per-run
//! directory under a per-user run root.
//!
//! Both hold credentials, so both belong to the user running harness and are private:
//! [`ensure_private`] creates them, refuses a folder another user owns, and sets its mode.
//! There is no fallback into a shared temp folder.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use nix::unistd::{Uid, User};

use crate::error::{Error, IoContext};

/// The harness home directory.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("harness");
    }
    user_home().join(".cache").join("harness")
}

/// `$HOME`, else the home folder the password database gives this user.
fn user_home() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    match User::from_uid(Uid::effective()) {
        Ok(Some(user)) => user.dir,
        // No home at all: a per-user folder that `ensure_private` creates or refuses.
        _ => PathBuf::from(format!("/run/user/{}", Uid::effective())),
    }
}

/// Installed runtimes, one folder per `<runtime>-<version>`.
pub fn runtimes_dir() -> PathBuf {
    home().join("runtimes")
}

/// Records of stacks started by any harness process of this user.
pub fn runs_dir() -> PathBuf {
    home().join("runs")
}

/// Parent of every run's service directories: `$HARNESS_RUN_ROOT`, else
/// `/dev/shm/harness-<uid>` where `/dev/shm` exists (service data in memory makes the
/// Postgres data-directory copy about 2.5x faster), else `harness-<uid>` in the temp
/// directory.
pub fn run_data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_RUN_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let name = format!("harness-{}", Uid::effective());
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.join(name);
    }
    std::env::temp_dir().join(name)
}

/// The mode of the run root and of each run folder: private, except that when harness
/// runs as root its Postgres runs as `nobody` and must be able to pass through (not list)
/// them to reach its own 0700 folder.
pub fn run_dir_mode() -> u32 {
    if Uid::effective().is_root() {
        0o711
    } else {
        0o700
    }
}

/// Creates the run root if needed (private, owner-checked) and returns it.
pub fn run_root() -> Result<PathBuf, Error> {
    let root = run_data_root();
    ensure_private(&root, run_dir_mode())?;
    Ok(root)
}

/// Creates `dir` (and its parents) if missing, refuses it when another user owns it, and
/// sets `mode` on it.
pub fn ensure_private(dir: &Path, mode: u32) -> Result<(), Error> {
    std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let meta = std::fs::metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    let me = Uid::effective().as_raw();
    if meta.uid() != me {
        return Err(Error::BadInput(format!(
            "use {}: it belongs to uid {}, not to this user (uid {me}); harness keeps \
             credentials there, so it must be your own (set HARNESS_HOME or HARNESS_RUN_ROOT \
             to a folder of yours)",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .ctx(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// Creates (or truncates) a file only its owner can read: records and logs.
pub fn create_private_file(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .ctx(|| format!("create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_folders_and_files_are_for_their_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        ensure_private(&home, 0o700).expect("create");
        let meta = std::fs::metadata(&home).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o700);
        let file = home.join("record.json");
        create_private_file(&file).expect("create file");
        assert_eq!(
            std::fs::metadata(&file).expect("stat").mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_folder_of_another_user_is_refused() {
        if !Uid::effective().is_root() {
            // Only root can make a folder that belongs to someone else (CI runs as root).
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
        let err = ensure_private(&theirs, 0o700).expect_err("refused");
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    }

    #[test]
    fn the_run_root_is_per_user() {
        if std::env::var_os("HARNESS_RUN_ROOT").is_some() {
            return;
        }
        let root = run_data_root();
        assert!(
            root.to_string_lossy()
                .ends_with(&format!("harness-{}", Uid::effective())),
            "{}",
            root.display()
        );
    }
}
