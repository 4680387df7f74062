//! Postgres 15 from Debian's packages. The install reuses the binaries in
//! `/usr/lib/postgresql/15/bin` and caches one initdb'd data directory that every start
//! copies instead of running initdb again.

use std::{fs, path::Path, process::Command};

use super::{RuntimeKind, missing_tool, run_logged};
use crate::{
    error::{Error, IoContext},
    fsutil,
    stack::native::user::ServiceUser,
};

pub const VERSION: &str = "15";
/// Where Debian's postgresql-15 puts its binaries; `HARNESS_PG_BIN` overrides it.
pub fn bin_dir() -> std::path::PathBuf {
    std::env::var_os("HARNESS_PG_BIN")
        .map_or_else(|| "/usr/lib/postgresql/15/bin".into(), Into::into)
}
/// The cached data directory inside the install.
pub const TEMPLATE: &str = "template";

pub(super) fn install(staging: &Path, step: &dyn Fn(&str)) -> Result<(String, Vec<String>), Error> {
    let bin = bin_dir();
    if !bin.join("postgres").is_file() || !bin.join("initdb").is_file() {
        return Err(missing_tool(
            RuntimeKind::Postgres,
            &bin.join("postgres").display().to_string(),
            "apt-get install -y postgresql-15",
        ));
    }
    step("initdb a template data directory");
    let user = ServiceUser::for_postgres()?;
    let scratch = crate::home::run_data_root().join(format!("initdb-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).ctx(|| format!("create {}", scratch.display()))?;
    user.give(&scratch)?;
    let data = scratch.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.args([
        "-A",
        "scram-sha-256",
        "--auth-local=trust",
        "-U",
        "postgres",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
        "--wal-segsize=1",
        "--no-instructions",
        "-D",
    ])
    .arg(&data);
    user.apply(&mut cmd);
    let res = run_logged(RuntimeKind::Postgres, &mut cmd, &staging.join("initdb.log"));
    let copied = res.and_then(|()| fsutil::copy_tree(&data, &staging.join(TEMPLATE), None));
    let _ = fs::remove_dir_all(&scratch);
    copied?;
    Ok((
        format!("debian postgresql-15 at {}", bin.display()),
        vec![
            format!("{TEMPLATE}/PG_VERSION"),
            format!("{TEMPLATE}/global/pg_control"),
        ],
    ))
}
