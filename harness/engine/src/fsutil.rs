//! Small filesystem helpers shared by the installers and the native provider.

use std::{
    fs,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext};

/// Copies a directory tree, keeping permission bits, and optionally hands every copied
/// entry to `owner` (uid, gid).
pub fn copy_tree(src: &Path, dst: &Path, owner: Option<(u32, u32)>) -> Result<(), Error> {
    let meta = fs::metadata(src).ctx(|| format!("read {}", src.display()))?;
    fs::create_dir_all(dst).ctx(|| format!("create {}", dst.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .ctx(|| format!("chmod {}", dst.display()))?;
    chown(dst, owner)?;
    for entry in fs::read_dir(src).ctx(|| format!("list {}", src.display()))? {
        let entry = entry.ctx(|| format!("list {}", src.display()))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .ctx(|| format!("stat {}", from.display()))?;
        if kind.is_dir() {
            copy_tree(&from, &to, owner)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).ctx(|| format!("readlink {}", from.display()))?;
            std::os::unix::fs::symlink(target, &to).ctx(|| format!("symlink {}", to.display()))?;
        } else {
            fs::copy(&from, &to).ctx(|| format!("copy {}", from.display()))?;
            chown(&to, owner)?;
        }
    }
    Ok(())
}

/// Hands a directory tree (symbolic links themselves, not what they point at) to `uid`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .ctx(|| format!("chown {}", path.display()))?;
    if fs::symlink_metadata(path)
        .ctx(|| format!("stat {}", path.display()))?
        .is_dir()
    {
        for entry in fs::read_dir(path).ctx(|| format!("list {}", path.display()))? {
            let entry = entry.ctx(|| format!("list {}", path.display()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), Error> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .ctx(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Hex SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut file = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .ctx(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `lines` lines of a log file, indented for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 16 * 1024;
    let Ok(mut file) = fs::File::open(path) else {
        return "    (no log was written)".to_owned();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
    let mut text = String::new();
    let mut raw = Vec::new();
    if file.read_to_end(&mut raw).is_ok() {
        text = String::from_utf8_lossy(&raw).into_owned();
    }
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return "    (the log is empty)".to_owned();
    }
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("x.log");
        fs::write(&log, "a\nb\n\nc\nd\n").expect("write");
        assert_eq!(tail(&log, 2), "    c\n    d");
        assert_eq!(
            tail(&dir.path().join("none"), 2),
            "    (no log was written)"
        );
    }

    #[test]
    fn copy_tree_keeps_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).expect("mkdir");
        fs::write(src.join("sub/f"), "x").expect("write");
        fs::set_permissions(&src, fs::Permissions::from_mode(0o700)).expect("chmod");
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst, None).expect("copy");
        assert_eq!(fs::read_to_string(dst.join("sub/f")).expect("read"), "x");
        assert_eq!(fs::metadata(&dst).expect("stat").mode() & 0o777, 0o700);
    }
}
