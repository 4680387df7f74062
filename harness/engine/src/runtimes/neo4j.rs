//! Neo4j Community 5.26 LTS from Maven Central, run by the small launcher kept in
//! `infra/neo4j/` (an embedded DBMS with Bolt on 127.0.0.1), built with Maven.

use std::{fs, path::Path, process::Command};

use super::{RuntimeKind, find_tool, missing_tool, run_logged};
use crate::error::{Error, IoContext};

pub const VERSION: &str = "5.26.16";
const POM: &str = include_str!("../../assets/neo4j/pom.xml");
const LAUNCHER: &str = include_str!("../../assets/neo4j/Launcher.java");

/// The launcher's jar inside the install; its dependencies sit beside it in `lib/`.
pub const LAUNCHER_JAR: &str = "lib/harness-neo4j-launcher.jar";
/// The launcher's main class.
pub const MAIN_CLASS: &str = "dev.harness.neo4j.Launcher";

/// The Java runtime: `JAVA_HOME`, then Java 17, then whatever `java` is on PATH.
pub fn java() -> Option<std::path::PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = Path::new(&home).join("bin/java");
        if p.is_file() {
            return Some(p);
        }
    }
    find_tool("java", &["/usr/lib/jvm/java-17-openjdk-amd64/bin/java"])
}

/// The first 8 hex digits of the SHA-256 of the launcher's source and build file.
pub(super) fn launcher_digest() -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("{POM}\0{LAUNCHER}"));
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

pub(super) fn install(staging: &Path, step: &dyn Fn(&str)) -> Result<(String, Vec<String>), Error> {
    let fix = "apt-get install -y maven openjdk-17-jdk-headless";
    let mvn = find_tool("mvn", &[]).ok_or_else(|| missing_tool(RuntimeKind::Neo4j, "mvn", fix))?;
    let java = java().ok_or_else(|| missing_tool(RuntimeKind::Neo4j, "java", fix))?;
    let work = staging.join("build");
    let src = work.join("src/main/java/dev/harness/neo4j");
    fs::create_dir_all(&src).ctx(|| format!("create {}", src.display()))?;
    fs::write(work.join("pom.xml"), POM).ctx(|| "write pom.xml".to_owned())?;
    fs::write(src.join("Launcher.java"), LAUNCHER).ctx(|| "write Launcher.java".to_owned())?;
    step(&format!(
        "mvn package (org.neo4j:neo4j:{VERSION} and its dependencies)"
    ));
    run_logged(
        RuntimeKind::Neo4j,
        Command::new(mvn)
            .args(["-q", "-B", "package", "-DskipTests"])
            .current_dir(&work),
        &staging.join("build.log"),
    )?;
    fs::rename(work.join("target/lib"), staging.join("lib")).ctx(|| "move lib".to_owned())?;
    fs::rename(
        work.join("target/harness-neo4j-launcher-1.0.0.jar"),
        staging.join(LAUNCHER_JAR),
    )
    .ctx(|| "move launcher jar".to_owned())?;
    let _ = fs::remove_dir_all(&work);
    step("verify the launcher loads");
    // Without its environment the launcher exits 2 after loading every class it needs.
    let out = Command::new(java)
        .arg("-cp")
        .arg(format!("{}/lib/*", staging.display()))
        .arg(MAIN_CLASS)
        .env_remove("HARNESS_NEO4J_HOME")
        .output()
        .ctx(|| "run the launcher".to_owned())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("missing environment variable HARNESS_NEO4J_HOME") {
        return Err(Error::Install {
            runtime: "neo4j".to_owned(),
            message: format!("the launcher did not load: {}", stderr.trim()),
            log: String::new(),
        });
    }
    let mut files = vec![LAUNCHER_JAR.to_owned()];
    let mut jars: Vec<String> = fs::read_dir(staging.join("lib"))
        .ctx(|| "list lib".to_owned())?
        .filter_map(|e| e.ok())
        .map(|e| format!("lib/{}", e.file_name().to_string_lossy()))
        .filter(|p| p.starts_with("lib/neo4j-kernel") || p.starts_with("lib/neo4j-bolt"))
        .collect();
    jars.sort();
    files.extend(jars);
    Ok((
        format!("maven org.neo4j:neo4j:{VERSION} via infra/neo4j"),
        files,
    ))
}

/// The JVM flags the launcher runs with; the class-data-sharing archive is made with the
/// same ones (a different GC or compiler setting would make the JVM ignore it).
pub const JVM_FLAGS: [&str; 4] = [
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xms64m",
    "-Xmx512m",
];

/// The class-data-sharing archive of a start of the launcher (AppCDS), for the Java runtime
/// that made it: the classes Neo4j loads as it starts, already parsed and verified, which
/// takes about a third off the start. Keyed by the `java` binary's path and size, so another
/// JDK makes its own.
pub fn cds_archive(dir: &Path) -> Option<std::path::PathBuf> {
    let java = java()?;
    let real = fs::canonicalize(&java).unwrap_or(java);
    let size = fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("{}:{size}", real.display()));
    let key: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Some(dir.join("cds").join(format!("launcher-{key}.jsa")))
}

/// Makes [`cds_archive`] when it is missing: one start of the launcher on a throwaway store,
/// ended as soon as it is ready (the JVM writes the archive as it exits). A failure leaves no
/// archive, and the launcher starts without one, as before; so it is reported, not fatal.
pub fn ensure_cds(dir: &Path, step: &dyn Fn(&str)) -> Result<(), String> {
    let Some(archive) = cds_archive(dir) else {
        return Ok(());
    };
    // A try that failed is not repeated at every start (`harness runtimes install --force`
    // tries again).
    let failed = archive.with_extension("failed");
    if archive.is_file() || failed.is_file() {
        return Ok(());
    }
    let result = make_cds(dir, &archive, step);
    if let Err(e) = &result {
        let _ = fs::write(&failed, e);
    }
    result
}

fn make_cds(dir: &Path, archive: &Path, step: &dyn Fn(&str)) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let java = java().ok_or("no Java runtime")?;
    step("class-data-sharing archive of the launcher's start (once per JDK)");
    let cds_dir = archive.parent().ok_or("no archive folder")?;
    fs::create_dir_all(cds_dir).map_err(|e| format!("create {}: {e}", cds_dir.display()))?;
    let work = cds_dir.join(format!(".store-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let partial = cds_dir.join(format!(".partial-{}.jsa", std::process::id()));
    let port = crate::stack::ports::free_port().map_err(|e| e.to_string())?;
    let mut child = Command::new(&java)
        .arg(format!("-XX:ArchiveClassesAtExit={}", partial.display()))
        .args(JVM_FLAGS)
        .arg("-cp")
        .arg(format!("{}/lib/*", dir.display()))
        .arg(MAIN_CLASS)
        .env("HARNESS_NEO4J_HOME", work.join("data"))
        .env("HARNESS_NEO4J_BOLT_PORT", port.to_string())
        .env("HARNESS_NEO4J_PASSWORD", crate::secret::random_id(16))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("start the launcher: {e}"))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let ready = child.stdout.take().is_some_and(|out| {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("HARNESS_NEO4J_READY"))
    });
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = child
        .wait()
        .map_err(|e| format!("wait for the launcher: {e}"));
    let _ = fs::remove_dir_all(&work);
    let status = status?;
    if !ready || !partial.is_file() {
        let _ = fs::remove_file(&partial);
        return Err(format!(
            "the launcher {} and wrote no archive ({status})",
            if ready { "started" } else { "did not start" }
        ));
    }
    fs::rename(&partial, archive).map_err(|e| format!("move the archive into place: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the installed runtime (`harness runtimes install`, as `.ci/run` does first).
    #[test]
    fn the_install_makes_a_class_data_sharing_archive_the_launcher_starts_from() {
        let dir = RuntimeKind::Neo4j.dir();
        let archive = cds_archive(&dir).expect("a Java runtime");
        assert!(
            archive.is_file(),
            "runtimes install makes {}",
            archive.display()
        );
        // `-Xshare:on` makes an archive that does not fit this JDK and classpath an error;
        // the launcher's own class must come from it.
        let out = Command::new(java().expect("java"))
            .arg("-Xshare:on")
            .arg(format!("-XX:SharedArchiveFile={}", archive.display()))
            .arg("-Xlog:class+load=info")
            .args(JVM_FLAGS)
            .arg("-cp")
            .arg(format!("{}/lib/*", dir.display()))
            .arg(MAIN_CLASS)
            .env_remove("HARNESS_NEO4J_HOME")
            .output()
            .expect("java");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            stderr.contains("missing environment variable HARNESS_NEO4J_HOME"),
            "the launcher ran: {stderr}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("dev.harness.neo4j.Launcher")
                    && l.contains("shared objects file")),
            "the launcher's class is loaded from the archive"
        );
    }
}
