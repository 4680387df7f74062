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
