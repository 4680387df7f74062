//! Restore drills end to end: RTO and RPO against their objectives, point-in-time targets,
//! what a drill leaves on the server, and the graph restore's consistency check.

mod support;

use std::path::PathBuf;

use harness_engine::run::events::Event;

#[test]
fn a_drill_that_loses_more_than_its_rpo_fails_with_both_numbers() {
    let dir = drill_dir();
    let file = dir.path().join("drill.yaml");
    std::fs::write(
        &file,
        r#"name: a drill whose RPO objective is 1ms
stack: [postgres]
fixtures:
  - sql: _drill.sql
steps:
  - backup:
      postgres: { method: logical }
      writer: { rate: 100, lead: 100ms }
  - exec: { command: "sleep 0.3" }
  - disaster:
      postgres: { truncate: cards }
  - restore:
      postgres: { method: logical }
  - verify:
      postgres: { tables: [decks, cards] }
      rpo_max: 1ms
"#,
    )
    .expect("write");
    let out = support::run_files(&[file], 1).expect("run");
    assert_eq!(out.summary.failed, 1, "{}", out.console);
    let failure = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.clone()),
            _ => None,
        })
        .expect("a failed step");
    assert!(
        failure.message.contains("committed records were lost")
            && failure.message.contains("over the objective of 0.001 s"),
        "{}",
        failure.message
    );
    assert_eq!(failure.expected.as_deref(), Some("RPO ≤ 0.001 s"));
    assert!(
        failure
            .actual
            .as_deref()
            .unwrap_or_default()
            .contains("RPO "),
        "{failure:?}"
    );
}

#[test]
fn a_point_in_time_restore_stops_at_a_restore_point_and_explains_a_target_it_cannot_reach() {
    let dir = drill_dir();
    let drill = |name: &str, before_disaster: &str, target: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
                 - backup: {{ postgres: {{ method: physical }} }}\n{before_disaster}  \
                 - disaster: {{ postgres: {{ drop_table: decks }} }}\n  \
                 - restore: {{ postgres: {{ method: physical, target: {target} }} }}\n  \
                 - sql: {{ query: \"SELECT count(*) AS n FROM decks\", expect: {{ rows: [{{ n: 2 }}] }} }}\n"
            ),
        )
        .expect("write");
        file
    };
    let point = drill(
        "point",
        "  - sql: { query: \"SELECT pg_create_restore_point('before_import')::text AS lsn\" }\n  \
         - sql: { execute: \"INSERT INTO decks VALUES (3, 'imported')\" }\n",
        "{ restore_point: before_import }",
    );
    let never = drill("never", "", "{ restore_point: nightly }");
    let early = drill("early", "", "{ time: \"2001-01-01 00:00:00+00\" }");
    let out = support::run_files(&[point, never, early], 1).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let messages: Vec<String> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 2, "{}", out.console);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("did not come up to restore point nightly")
                && m.contains("recovery ended before configured recovery target was reached")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`target.time` 2001-01-01 00:00:00+00 is before backup")),
        "{messages:?}"
    );
}

#[test]
fn drills_leave_no_replication_slot_nor_archive_command_on_the_server_and_drop_an_abandoned_slot() {
    let dir = drill_dir();
    let write = |name: &str, body: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n{body}"
            ),
        )
        .expect("write");
        file
    };
    // The server, as processes see it: the stack's, not a restored instance.
    let server = |query: &str, expect: &str| {
        let query = query.replace('\'', "''");
        format!(
            "  - exec: {{ command: 'psql \"$DATABASE_URL\" -tAc \"{query}\"', env_from: [postgres], expect: {{ stdout: {{ matches: '^{expect}$' }} }} }}\n"
        )
    };
    // A killed run's slot: its harness process (a pid above any pid_max) is gone.
    let physical = write(
        "physical",
        &format!(
            "  - sql: {{ query: \"SELECT pg_create_physical_replication_slot('harness_drill_2147483646_killed')::text AS s\" }}\n  \
             - backup: {{ postgres: {{ method: physical }} }}\n{}  \
             - disaster: {{ postgres: {{ drop_table: decks }} }}\n  \
             - restore: {{ postgres: {{ method: physical }} }}\n{}",
            server(
                "SELECT string_agg(slot_name::text, ',') FROM pg_replication_slots WHERE slot_name::text LIKE 'harness_drill_%'",
                "harness_drill_[0-9]+_harness_drill_[a-z0-9_]+\\n?",
            ),
            server("SELECT count(*) FROM pg_replication_slots", "0\\n?"),
        ),
    );
    let backrest = write(
        "backrest",
        &format!(
            "  - backup: {{ postgres: {{ method: pgbackrest }} }}\n{}",
            server("SHOW archive_command", "pgbackrest .*archive-push %p\\n?"),
        ),
    );
    let after = write("after", &server("SHOW archive_command", "/bin/true\\n?"));
    let out = support::run_files(&[physical, backrest, after], 1).expect("run");
    assert_eq!(out.summary.passed, 3, "{}", out.console);
}

#[test]
fn a_logical_restore_after_the_server_was_killed_is_refused_and_the_server_is_back_for_the_next_scenario()
 {
    let dir = drill_dir();
    let killed = dir.path().join("killed.yaml");
    std::fs::write(
        &killed,
        "name: killed\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
         - backup: { postgres: { method: logical } }\n  \
         - disaster: { postgres: { kill: true } }\n  \
         - restore: { postgres: { method: logical } }\n",
    )
    .expect("write");
    let after = dir.path().join("after.yaml");
    std::fs::write(
        &after,
        "name: after\nstack: [postgres]\nfixtures:\n  - sql: _drill.sql\nsteps:\n  \
         - sql: { query: \"SELECT count(*) AS n FROM cards\", expect: { rows: [{ n: 3 }] } }\n",
    )
    .expect("write");
    let out = support::run_files(&[killed, after], 1).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let failure = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                failed_step: Some(f),
                ..
            } => Some(f.failure.message.clone()),
            _ => None,
        })
        .expect("the killed scenario fails");
    assert!(
        failure.contains("the server is down (the disaster killed it)")
            && failure.contains("`method: physical` or `pgbackrest`"),
        "{failure}"
    );
}

#[test]
fn a_drills_rto_rpo_and_phases_are_in_the_console_the_json_report_and_junit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (json, junit) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let out = support::run_files_with_reports(
        &[support::corpus("pass/drill_postgres_logical.yaml")],
        &json,
        &junit,
    )
    .expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    assert!(
        out.console.contains("drill met: RTO ")
            && out.console.contains("(objective 60.000 s): detect ")
            && out.console.contains("committed records lost"),
        "{}",
        out.console
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let drill = &report["scenarios"][0]["drill"];
    assert_eq!(drill["met"], true, "{report}");
    assert_eq!(drill["rto_max_ms"], 60000.0);
    assert!(drill["rto_ms"].as_f64().is_some_and(|v| v > 0.0), "{drill}");
    assert!(drill["lost"].as_u64().is_some_and(|v| v > 0), "{drill}");
    for phase in ["detect", "provision", "restore", "replay", "verify"] {
        assert!(drill["phases_ms"][phase].is_number(), "{phase}: {drill}");
    }
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("<system-out>drill met: RTO "), "{xml}");
}

/// A drill of `decks` and `cards`, with `extra` steps just before its restore; its
/// verdict's RTO and restore phase, in milliseconds.
fn drill_rto(extra: &str) -> (f64, f64) {
    let dir = drill_dir();
    let file = dir.path().join("drill.yaml");
    std::fs::write(
        &file,
        format!(
            r#"name: a drill
stack: [postgres]
fixtures:
  - sql: _drill.sql
steps:
  - backup:
      postgres: {{ method: logical, jobs: 1 }}
  - disaster:
      postgres: {{ drop_table: cards }}
{extra}
  - restore:
      postgres: {{ method: logical }}
  - verify:
      postgres: {{ tables: [decks, cards] }}
"#
        ),
    )
    .expect("write");
    let dir2 = tempfile::tempdir().expect("tempdir");
    let json = dir2.path().join("r.json");
    let out =
        support::run_files_with_reports(&[file], &json, &dir2.path().join("r.xml")).expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let drill = &report["scenarios"][0]["drill"];
    (
        drill["rto_ms"].as_f64().expect("rto"),
        drill["phases_ms"]["restore"]
            .as_f64()
            .expect("restore phase"),
    )
}

#[test]
fn a_latency_fault_on_the_restore_path_makes_the_rto_longer_by_at_least_the_delay() {
    let (rto, restore) = drill_rto("");
    // 200 ms on every chunk the server sends to the restore's tools (through the scenario's
    // proxy of Postgres, which a network fault on it brings in).
    let (slow_rto, slow_restore) = drill_rto("  - fault: { target: postgres, latency: 200ms }");
    assert!(
        slow_restore >= restore + 200.0,
        "restore phase {restore} ms, with 200 ms of latency {slow_restore} ms"
    );
    assert!(
        slow_rto >= rto + 200.0,
        "RTO {rto} ms, with 200 ms of latency {slow_rto} ms"
    );
}

/// The graph restore's consistency check reads its own copy of the backup while the fresh
/// DBMS starts on another: a store the checker refuses still fails the restore with the
/// checker's findings, and the DBMS started beside it does not outlive the failure.
#[tokio::test]
async fn a_graph_backup_the_checker_refuses_fails_the_restore_and_leaves_no_dbms() {
    use harness_engine::{
        drills::{Provider, neo4j},
        stack::{Fault, ServiceKind, Stack},
    };
    let mut stack = Stack::builder().neo4j().start().await.expect("stack");
    let graph = stack.neo4j().expect("neo4j").graph().expect("graph");
    graph
        .run(neo4rs::query(
            "UNWIND range(1, 200) AS i CREATE (:Card {n: i})-[:NEXT]->(:Card {n: -i})",
        ))
        .await
        .expect("create");
    stack
        .fault(ServiceKind::Neo4j, Fault::Stop)
        .await
        .expect("stop");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("backup");
    neo4j::copy_store(&stack.run_dir().join("neo4j").join("data"), &path)
        .await
        .expect("copy");
    stack.shutdown().await;
    // Every node record of the copy overwritten: the files are there, their content is not.
    let nodes = walk(&path)
        .into_iter()
        .find(|p| p.ends_with("databases/neo4j/neostore.nodestore.db"))
        .expect("the copy has a node store");
    let len = std::fs::metadata(&nodes).expect("stat").len() as usize;
    std::fs::write(&nodes, vec![0xA5u8; len]).expect("overwrite");
    let backup = neo4j::Backup {
        id: "corrupted".into(),
        path,
        graph: Default::default(),
        bytes: 0,
        took: std::time::Duration::ZERO,
        downtime: std::time::Duration::ZERO,
    };
    let dir = tmp.path().join("restored");
    let err = match neo4j::restore(&backup, &dir, true, &Provider::Native, None).await {
        Ok(_) => panic!("a store with garbage for its nodes was restored"),
        Err(e) => e,
    };
    assert!(err.contains("not consistent"), "{err}");
    let marker = format!("-Dharness.run={}", dir.display());
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(
        left.is_empty(),
        "a DBMS outlived the failed restore: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A fresh folder with the drill corpus's fixture (`_drill.sql`) in it.
fn drill_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        support::corpus("pass/_drill.sql"),
        dir.path().join("_drill.sql"),
    )
    .expect("copy");
    dir
}
