//! `harness drill`: restore drills from the CLI, on a stack harness starts and on an external
//! target. A second local stack (`harness up --detach`) stands in for staging: a drill
//! against it refuses every destructive step before touching anything unless the target
//! file's allow-list names the database and `--i-understand-this-destroys-data` is given,
//! and the target's data is unchanged.

mod common;

use std::{path::Path, process::Command};

use common::{DownOnDrop, harness};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `psql -c SQL` on the staging stand-in's database `db`; its output.
fn psql(pg: &serde_json::Value, db: &str, sql: &str) -> String {
    let out = Command::new(harness_engine::runtimes::postgres_bin_dir().join("psql"))
        .args(["-qtAX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGHOST", pg["host"].as_str().expect("host"))
        .env("PGPORT", pg["port"].to_string())
        .env("PGUSER", pg["user"].as_str().expect("user"))
        .env("PGPASSWORD", pg["password"].as_str().expect("password"))
        .env("PGDATABASE", db)
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

const DRILL: &str = r#"name: the decks table is dropped and restored from a logical backup
stack: [postgres]
steps:
  - name: backup
    backup:
      postgres: { method: logical }
  - name: drop decks
    disaster:
      postgres: { drop_table: decks }
  - name: restore
    restore:
      postgres: { method: logical }
  - name: verify
    verify:
      postgres: { tables: [decks] }
"#;

const PHYSICAL_REHEARSAL: &str = r#"name: the target's base backup and WAL restore in a fresh instance
stack: [postgres]
steps:
  - name: backup
    backup:
      postgres: { method: physical }
  - name: restore, elsewhere
    restore:
      postgres: { method: physical }
  - name: verify
    verify:
      postgres: { tables: [decks] }
      expect:
        json:
          $.tables.decks.rows: 3
"#;

/// A target file for the stand-in's database `app`, with `destroy` as given.
fn target(dir: &Path, up: &serde_json::Value, destroy: &str) -> std::path::PathBuf {
    let mut pg = up["services"]["postgres"].clone();
    pg["database"] = "app".into();
    let mut doc = serde_json::json!({"postgres": pg});
    if !destroy.is_empty() {
        doc["destroy"] = serde_json::from_str(destroy).expect("destroy json");
    }
    let file = dir.join(format!("target-{}.json", destroy.len()));
    std::fs::write(&file, doc.to_string()).expect("write target");
    file
}

#[test]
fn a_drill_on_an_external_target_destroys_nothing_without_the_allow_list_and_the_flag() {
    let out = harness()
        .args(["up", "--services", "postgres", "--detach", "--json"])
        .output()
        .expect("harness up");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let _down = DownOnDrop(up["run_id"].as_str().expect("run id").to_owned());
    let pg = &up["services"]["postgres"];
    psql(pg, "postgres", "CREATE DATABASE app");
    psql(
        pg,
        "app",
        "CREATE TABLE decks (id int PRIMARY KEY, title text); \
         INSERT INTO decks VALUES (1, 'chemistry'), (2, 'graphs'), (3, 'french')",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let drill = dir.path().join("drill.yaml");
    std::fs::write(&drill, DRILL).expect("write drill");
    let run = |target: &Path, extra: &[&str]| {
        let out = harness()
            .arg("drill")
            .arg(&drill)
            .arg("--target")
            .arg(target)
            .args(extra)
            .output()
            .expect("harness drill");
        (out.status.code(), text(&out.stderr))
    };
    let rows = || psql(pg, "app", "SELECT count(*) FROM decks");

    // No allow-list, no flag: the disaster refuses, naming both; the backup (read-only) ran.
    let (code, err) = run(&target(dir.path(), &up, ""), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("refused: this `disaster` step would destroy database app of the target")
            && err.contains("`destroy: { postgres: [app] }` in the target file")
            && err.contains("`--i-understand-this-destroys-data`")
            && err.contains("nothing was"),
        "{err}"
    );
    assert!(err.contains("PASS") && err.contains("backup"), "{err}");
    assert_eq!(rows(), "3");

    // The flag without the allow-list, and the allow-list without the flag: refused still.
    let (code, err) = run(
        &target(dir.path(), &up, ""),
        &["--i-understand-this-destroys-data"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`destroy: { postgres: [app] }`") && !err.contains("`--i-understand"),
        "{err}"
    );
    assert_eq!(rows(), "3");
    let allowed = target(dir.path(), &up, r#"{"postgres": ["app"]}"#);
    let (code, err) = run(&allowed, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("needs `--i-understand-this-destroys-data`"),
        "{err}"
    );
    assert_eq!(rows(), "3");
    // Another database in the allow-list does not count.
    let other = target(dir.path(), &up, r#"{"postgres": ["something_else"]}"#);
    let (code, _) = run(&other, &["--i-understand-this-destroys-data"]);
    assert_eq!(code, Some(1));
    assert_eq!(rows(), "3");

    // A drill that destroys nothing runs without either: a physical backup of the target,
    // restored into a fresh local instance and verified there.
    let rehearsal = dir.path().join("rehearsal.yaml");
    std::fs::write(&rehearsal, PHYSICAL_REHEARSAL).expect("write rehearsal");
    let out = harness()
        .arg("drill")
        .arg(&rehearsal)
        .arg("--target")
        .arg(target(dir.path(), &up, ""))
        .output()
        .expect("harness drill");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("drill met"), "{err}");
    assert_eq!(rows(), "3");

    // Both: the drill destroys the table, restores the database and verifies it.
    let (code, err) = run(&allowed, &["--i-understand-this-destroys-data"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("drill met"), "{err}");
    assert_eq!(rows(), "3");
    assert_eq!(
        psql(
            pg,
            "app",
            "SELECT string_agg(title, ',' ORDER BY id) FROM decks"
        ),
        "chemistry,graphs,french"
    );
    // The scenario's own database was dropped as usual; the target's databases remain.
    assert_eq!(
        psql(
            pg,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'h\\_%'"
        ),
        "0"
    );
}

#[test]
fn a_target_off_this_machine_needs_allow_remote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("staging.json");
    std::fs::write(
        &file,
        r#"{"postgres": {"host": "10.20.30.40", "port": 5432, "user": "app", "password": "x",
            "database": "app", "url": "postgres://app:x@10.20.30.40:5432/app"},
            "destroy": {"postgres": ["app"]}}"#,
    )
    .expect("write");
    let drill = dir.path().join("drill.yaml");
    std::fs::write(&drill, DRILL).expect("write drill");
    let out = harness()
        .arg("drill")
        .arg(&drill)
        .arg("--target")
        .arg(&file)
        .arg("--i-understand-this-destroys-data")
        .output()
        .expect("harness drill");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--allow-remote"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_file_without_a_drill_is_not_run_by_harness_drill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain.yaml");
    std::fs::write(
        &file,
        "name: plain\nsteps:\n  - exec: { command: \"true\" }\n",
    )
    .expect("write");
    let out = harness()
        .arg("drill")
        .arg(&file)
        .output()
        .expect("harness drill");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("not a drill") && err.contains("plain.yaml"),
        "{err}"
    );
}

#[test]
fn harness_drill_runs_the_library_drills_on_a_stack_it_starts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/platform");
    let out = harness()
        .arg("drill")
        .arg(root.join("drill_relational_logical.yaml"))
        .arg(root.join("drill_relational_pitr.yaml"))
        .arg(root.join("drill_artifact_store.yaml"))
        .output()
        .expect("harness drill");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("drill met").count(), 3, "{err}");
}

const BUCKET_DRILL: &str = r#"name: the artifact bucket is emptied and restored from its mirror
stack: [s3]
steps:
  - name: backup
    backup:
      s3: { method: mirror }
  - name: empty the bucket
    disaster:
      s3: { delete_all: true }
  - name: restore
    restore:
      s3: { method: mirror }
  - name: verify
    verify:
      s3: {}
      expect:
        json:
          $.objects: { len: 3 }
"#;

#[test]
fn a_drill_on_an_external_bucket_destroys_nothing_without_the_allow_list_and_the_flag() {
    let out = harness()
        .args(["up", "--services", "s3", "--detach", "--json"])
        .output()
        .expect("harness up");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let _down = DownOnDrop(up["run_id"].as_str().expect("run id").to_owned());
    let endpoint: harness_engine::stack::S3Endpoint =
        serde_json::from_value(up["services"]["s3"].clone()).expect("s3 endpoint");
    let client = endpoint.client();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        client
            .create_bucket()
            .bucket("artifacts")
            .send()
            .await
            .expect("create bucket");
        for (key, body) in [
            ("exports/a.txt", "alpha"),
            ("exports/b.txt", "bravo"),
            ("c.txt", "charlie"),
        ] {
            client
                .put_object()
                .bucket("artifacts")
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(
                    body.as_bytes(),
                ))
                .send()
                .await
                .expect("put");
        }
    });
    // Every object's key and body, as the target holds them.
    let contents = || {
        rt.block_on(async {
            let list = client
                .list_objects_v2()
                .bucket("artifacts")
                .send()
                .await
                .expect("list");
            let mut all = Vec::new();
            for o in list.contents() {
                let key = o.key().unwrap_or_default().to_owned();
                let body = client
                    .get_object()
                    .bucket("artifacts")
                    .key(&key)
                    .send()
                    .await
                    .expect("get")
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes();
                all.push(format!("{key}={}", String::from_utf8_lossy(&body)));
            }
            all.sort();
            all.join(",")
        })
    };
    let before = contents();
    assert_eq!(
        before,
        "c.txt=charlie,exports/a.txt=alpha,exports/b.txt=bravo"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let drill = dir.path().join("drill.yaml");
    std::fs::write(&drill, BUCKET_DRILL).expect("write drill");
    let file = |destroy: &str| {
        let mut s3 = up["services"]["s3"].clone();
        s3["bucket"] = "artifacts".into();
        let mut doc = serde_json::json!({"s3": s3});
        if !destroy.is_empty() {
            doc["destroy"] = serde_json::from_str(destroy).expect("destroy json");
        }
        let path = dir
            .path()
            .join(format!("bucket-target-{}.json", destroy.len()));
        std::fs::write(&path, doc.to_string()).expect("write target");
        path
    };
    let run = |target: &Path, extra: &[&str]| {
        let out = harness()
            .arg("drill")
            .arg(&drill)
            .arg("--target")
            .arg(target)
            .args(extra)
            .output()
            .expect("harness drill");
        (out.status.code(), text(&out.stderr))
    };

    let (code, err) = run(&file(""), &["--i-understand-this-destroys-data"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("refused: this `disaster` step would destroy bucket artifacts of the target")
            && err.contains("`destroy: { s3: [artifacts] }` in the target file")
            && err.contains("nothing was"),
        "{err}"
    );
    assert_eq!(contents(), before);
    let allowed = file(r#"{"s3": ["artifacts"]}"#);
    let (code, err) = run(&allowed, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("needs `--i-understand-this-destroys-data`"),
        "{err}"
    );
    assert_eq!(contents(), before);
    // A graph cannot be destroyed on a target: the file says so before anything runs.
    let (code, err) = run(
        &file(r#"{"s3": ["artifacts"], "neo4j": ["graph"]}"#),
        &["--i-understand-this-destroys-data"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`destroy.neo4j`"), "{err}");

    // Both: the bucket is emptied, put back from the mirror and verified object by object.
    let (code, err) = run(&allowed, &["--i-understand-this-destroys-data"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("drill met"), "{err}");
    assert_eq!(contents(), before);
}
