//! Parser behaviour on small inline files; the malformed corpus lives in `tests/malformed/`.

use harness_scenario::{Action, MatchOp, parse};

fn problems(text: &str) -> String {
    parse("t.yaml", text)
        .expect_err("should be rejected")
        .to_plain()
}

#[test]
fn a_full_scenario_parses_into_types() {
    let text = r#"
name: orders
stack: [postgres, s3]
vars:
  table: orders
  token: { value: abc, secret: true }
steps:
  - name: insert
    sql:
      execute: "insert into ${vars.table} values (1)"
      expect: { affected: 1 }
  - sql:
      query: select id from orders
      expect:
        rows: [{ id: 1 }]
        row_count: { ge: 1 }
      capture: { id: "$[0].id" }
  - http:
      url: "http://127.0.0.1:1/x/${captures.id}"
      expect: { status: 200, json: { "$.ok": true } }
rollbacks:
  - s3: { op: delete, key: a }
"#;
    let s = parse("t.yaml", text).expect("valid");
    assert_eq!(s.steps.len(), 3);
    assert!(s.vars["token"].secret);
    let Action::Sql(q) = &s.steps[1].action else {
        panic!("second step is sql")
    };
    assert!(
        matches!(q.expect.row_count.as_ref().map(|m| &m.op), Some(MatchOp::Ge(n)) if *n == 1.0)
    );
    assert_eq!(s.steps[1].display_name(1), "sql #2");
}

#[test]
fn every_problem_is_reported_at_once() {
    let out = problems(
        "name: x\nstack: [postgress]\nsteps:\n  - htp: {}\n  - sql: { query: 1, expct: {} }\n",
    );
    assert!(
        out.contains("t.yaml:2:9: unknown service `postgress`"),
        "{out}"
    );
    assert!(out.contains("help: did you mean `postgres`?"), "{out}");
    assert!(
        out.contains("t.yaml:4:5: unknown key `htp` in a step"),
        "{out}"
    );
    assert!(out.contains("help: did you mean `http`?"), "{out}");
    assert!(out.contains("t.yaml:5:22: unknown key `expct`"), "{out}");
}

#[test]
fn captures_must_come_from_earlier_steps() {
    let out = problems(
        "name: x\nstack: [postgres]\nsteps:\n  - sql: { query: 'select ${captures.id}' }\n  - sql: { query: 'select 1', capture: { id: '$[0]' } }\n",
    );
    assert!(
        out.contains("t.yaml:4:27: capture `id` is not set yet here"),
        "{out}"
    );
}

#[test]
fn var_cycles_are_named() {
    let out = problems(
        "name: x\nvars:\n  a: '${vars.b}'\n  b: '${vars.a}'\nsteps:\n  - exec: { command: 'true' }\n",
    );
    assert!(out.contains("cycle: `a` → `b` → `a`"), "{out}");
}

#[test]
fn steps_need_their_service_in_the_stack() {
    let out = problems("name: x\nsteps:\n  - cypher: { query: 'RETURN 1' }\n");
    assert!(out.contains("`cypher` step needs neo4j"), "{out}");
}

#[test]
fn schema_is_generated_from_the_types() {
    let schema = harness_scenario::json_schema();
    let props = &schema["properties"];
    for key in [
        "name",
        "steps",
        "steady_state",
        "rollbacks",
        "mocks",
        "fixtures",
        "vars",
    ] {
        assert!(props.get(key).is_some(), "schema lacks `{key}`");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}

#[test]
fn fuzz_seeds_are_valid_scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds exists") {
        let path = entry.expect("readable entry").path();
        let text = std::fs::read_to_string(&path).expect("readable seed");
        if let Err(d) = parse("seed.yaml", &text) {
            panic!("{} is rejected:\n{}", path.display(), d.to_plain());
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected at least 3 seeds, found {seen}");
}

#[test]
fn committed_schema_matches_the_types() {
    let committed = include_str!("../../../docs/scenario.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(committed).expect("committed schema is JSON");
    assert!(
        committed == harness_scenario::json_schema(),
        "docs/scenario.schema.json is stale; regenerate it with `cargo run -p harness-cli -- schema > docs/scenario.schema.json`"
    );
}

/// The keys the decoder accepts for a type are the properties its JSON Schema lists.
fn schema_keys<T: schemars::JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T).to_value();
    let mut keys: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    // Externally tagged enums: one object per variant, each with its one key.
    for variants in ["oneOf", "anyOf"] {
        for v in schema[variants].as_array().into_iter().flatten() {
            keys.extend(
                v["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone()),
            );
            keys.extend(
                v["enum"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_owned)),
            );
        }
    }
    keys.extend(
        schema["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned)),
    );
    keys.sort();
    keys
}

fn derived<T: harness_scenario::Keys>() -> Vec<String> {
    let mut keys: Vec<String> = T::KEYS.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn every_model_types_keys_are_its_schemas_properties() {
    use harness_scenario::*;
    macro_rules! same {
        ($($t:ty),*) => {$(
            assert_eq!(derived::<$t>(), schema_keys::<$t>(), "{}", stringify!($t));
            assert!(!<$t as Keys>::KEYS.is_empty(), "{}", stringify!($t));
        )*};
    }
    same!(
        Scenario,
        Fixture,
        S3Fixture,
        Mock,
        MockRequest,
        MockResponse,
        Process,
        Ready,
        DetailedVar,
        DetailedCapture,
        Http,
        HttpExpect,
        Sql,
        RowsExpect,
        S3,
        S3Op,
        S3Expect,
        Cypher,
        Eventually,
        Exec,
        ExecExpect,
        Snapshot,
        Telemetry,
        TelemetryExpect,
        Signal
    );
    // The renamed field is known by its YAML name.
    assert!(Telemetry::KEYS.contains(&"where"));
    // A step's own keys are those beside the kind.
    assert_eq!(Step::KEYS, ["name", "timeout"]);
}

#[test]
fn every_step_kind_is_in_the_schema() {
    let schema = harness_scenario::json_schema().to_string();
    for kind in harness_scenario::step_kinds() {
        assert!(
            schema.contains(&format!("\"{kind}\"")),
            "schema lacks {kind}"
        );
    }
}

#[test]
fn the_drill_kinds_are_typed_and_their_old_placeholder_keys_are_errors() {
    // `backup` and `restore` were reserved, with free-form arguments; now they are typed.
    let text = "name: r\nsteps:\n  - backup: { postgres: { method: logical, jobs: 2 }, writer: { rate: 10 } }\n";
    let s = parse("t.yaml", text).expect("a typed backup step");
    let Action::Backup(b) = &s.steps[0].action else {
        panic!("a backup step: {:?}", s.steps[0].action)
    };
    assert_eq!(b.postgres.as_ref().and_then(|p| p.jobs), Some(2));
    assert_eq!(b.writer.as_ref().map(|w| w.rate), Some(10));
    let p = problems("name: r\nsteps:\n  - backup: { store: postgres }\n");
    assert!(
        p.contains("t.yaml:3:15") && p.contains("unknown key `store` in a `backup` step"),
        "{p}"
    );
    let p =
        problems("name: r\nsteps:\n  - disaster: { postgres: { drop_table: a, truncate: b } }\n");
    assert!(
        p.contains("needs exactly one of `drop_table`, `truncate`"),
        "{p}"
    );
    let p = problems("name: r\nsteps:\n  - restore: { postgres: { method: logcal } }\n");
    assert!(p.contains("did you mean `logical`?"), "{p}");
}

#[test]
fn a_physical_restore_takes_a_recovery_target_and_the_logical_options_stay_logical() {
    use harness_scenario::kinds::restore::PitrTarget;
    let text = "name: r\nsteps:\n  - backup: { postgres: { method: physical } }\n  - restore: { postgres: { method: physical, target: { time: \"${captures.t}\" } } }\n  - restore: { postgres: { method: physical, target: end_of_wal } }\n";
    let text = text.replace("${captures.t}", "2026-12-01 10:00:00+00");
    let s = parse("t.yaml", &text).expect("a physical drill");
    let target = |i: usize| match &s.steps[i].action {
        Action::Restore(r) => r.postgres.as_ref().and_then(|p| p.target.clone()),
        other => panic!("a restore step: {other:?}"),
    };
    assert!(matches!(target(1), Some(PitrTarget::Time(_))));
    assert!(matches!(target(2), Some(PitrTarget::EndOfWal)));
    let p = problems(
        "name: r\nsteps:\n  - backup: { postgres: { method: physical, exclude_tables: [a] } }\n",
    );
    assert!(
        p.contains("t.yaml:3:61") && p.contains("`exclude_tables` goes with the `logical` method"),
        "{p}"
    );
    let p = problems(
        "name: r\nsteps:\n  - restore: { postgres: { method: logical, target: end_of_wal } }\n",
    );
    assert!(
        p.contains("a recovery target goes with the `physical` and `pgbackrest` methods"),
        "{p}"
    );
    let p = problems(
        "name: r\nsteps:\n  - restore: { postgres: { method: physical, target: before_disastr } }\n",
    );
    assert!(p.contains("did you mean `before_disaster`?"), "{p}");
    let p = problems(
        "name: r\nsteps:\n  - restore: { postgres: { method: physical, target: { time: a, lsn: b } } }\n",
    );
    assert!(
        p.contains("exactly one of `time`, `lsn` and `restore_point`"),
        "{p}"
    );
    let p = problems("name: r\nsteps:\n  - backup: { postgres: { method: physicl } }\n");
    assert!(p.contains("did you mean `physical`?"), "{p}");
    let p = problems(
        "name: r\nsteps:\n  - restore: { postgres: { method: physical, into: instance } }\n",
    );
    assert!(p.contains("`into` goes with the `logical` method"), "{p}");
    let p = problems(
        "name: r\nsteps:\n  - restore: { postgres: { method: logical, into: instanse } }\n",
    );
    assert!(p.contains("did you mean `instance`?"), "{p}");
}

#[test]
fn a_pgbackrest_backup_takes_a_type_only_pgbackrest_takes_and_runs_its_scenario_alone() {
    use harness_scenario::kinds::backup::{BackrestType, PgMethod};
    let text = "name: r\nsteps:\n  - backup: { postgres: { method: pgbackrest } }\n  - backup: { postgres: { method: pgbackrest, type: diff } }\n  - restore: { postgres: { method: pgbackrest, target: { restore_point: p } } }\n";
    let s = parse("t.yaml", text).expect("a pgBackRest drill");
    let backup = |i: usize| match &s.steps[i].action {
        Action::Backup(b) => b.postgres.clone().expect("postgres"),
        other => panic!("a backup step: {other:?}"),
    };
    assert_eq!(backup(0).method, PgMethod::Pgbackrest);
    assert_eq!(backup(0).kind, None);
    assert_eq!(backup(1).kind, Some(BackrestType::Diff));
    // The server's archive_command is every database's: the scenario runs alone.
    assert!(s.faults_stack_processes());
    let p =
        problems("name: r\nsteps:\n  - backup: { postgres: { method: physical, type: full } }\n");
    assert!(
        p.contains("t.yaml:3:51")
            && p.contains("a backup `type` goes with the `pgbackrest` method"),
        "{p}"
    );
    let p = problems(
        "name: r\nsteps:\n  - backup: { postgres: { method: pgbackrest, type: incremental } }\n",
    );
    assert!(p.contains("unknown pgBackRest backup type"), "{p}");
    let p = problems("name: r\nsteps:\n  - backup: { postgres: { method: pgbakrest } }\n");
    assert!(p.contains("did you mean `pgbackrest`?"), "{p}");
}

#[test]
fn supabase_references_name_the_emulators_fields_and_start_it() {
    let s = parse(
        "t.yaml",
        "name: s\nstack: [postgres]\nsteps:\n  - http: { url: \"${supabase.url}/rest/v1/notes\", headers: { apikey: \"${supabase.anon_key}\" } }\n",
    )
    .expect("a scenario through the emulator");
    assert!(s.uses_supabase);
    let s = parse(
        "t.yaml",
        "name: s\nsteps:\n  - http: { url: \"http://127.0.0.1:1/\" }\n",
    )
    .expect("a scenario without it");
    assert!(!s.uses_supabase);
    let p = problems(
        "name: s\nstack: [postgres]\nsteps:\n  - http: { url: \"${supabase.anon_kye}\" }\n",
    );
    assert!(
        p.contains("t.yaml:4:") && p.contains("did you mean `anon_key`?"),
        "{p}"
    );
    let p = problems("name: s\nstack: [s3]\nsteps:\n  - http: { url: \"${supabase.url}\" }\n");
    assert!(
        p.contains("add `postgres` to the scenario's `stack`"),
        "{p}"
    );
}

#[test]
fn a_disaster_that_kills_or_corrupts_the_server_runs_its_scenario_alone() {
    let s = parse(
        "t.yaml",
        "name: k\nsteps:\n  - disaster: { postgres: { kill: true } }\n",
    )
    .expect("a kill");
    assert!(s.faults_stack_processes());
    let s = parse(
        "t.yaml",
        "name: c\nsteps:\n  - disaster: { postgres: { corrupt: cards } }\n",
    )
    .expect("a corruption");
    assert!(s.faults_stack_processes());
    let s = parse(
        "t.yaml",
        "name: d\nsteps:\n  - disaster: { postgres: { drop_table: cards } }\n",
    )
    .expect("a drop");
    assert!(!s.faults_stack_processes());
    let p = problems("name: k\nsteps:\n  - disaster: { postgres: { kill: false } }\n");
    assert!(p.contains("`kill: false` does nothing"), "{p}");
    let p =
        problems("name: k\nsteps:\n  - disaster: { postgres: { kill: true, corrupt: cards } }\n");
    assert!(
        p.contains("needs exactly one of `drop_table`, `truncate`, `kill`, `corrupt`"),
        "{p}"
    );
    let p = problems("name: k\nsteps:\n  - disaster: { postgres: { corrupt: \"Cards;\" } }\n");
    assert!(p.contains("a table name is lowercase letters"), "{p}");
}

#[test]
fn a_graph_drill_names_neo4j_and_its_disaster_says_exactly_what_it_deletes() {
    let text = "name: g\nstack: [neo4j]\nsteps:\n  - backup: { neo4j: { method: offline } }\n  - disaster: { neo4j: { delete_label: Card } }\n  - restore: { neo4j: { method: offline, check: false } }\n  - verify: { neo4j: {} }\n";
    let s = parse("t.yaml", text).expect("a graph drill");
    let Action::Disaster(d) = &s.steps[1].action else {
        panic!("a disaster step")
    };
    assert_eq!(
        d.neo4j.as_ref().and_then(|n| n.delete_label.as_deref()),
        Some("Card")
    );
    let Action::Restore(r) = &s.steps[2].action else {
        panic!("a restore step")
    };
    assert_eq!(r.neo4j.as_ref().and_then(|n| n.check), Some(false));
    let p = problems("name: g\nsteps:\n  - disaster: { neo4j: { wipe: true, delete_label: A } }\n");
    assert!(
        p.contains("needs exactly one of `wipe`, `delete_label`"),
        "{p}"
    );
    let p = problems("name: g\nsteps:\n  - backup: { neo4j: { method: online } }\n");
    assert!(p.contains("unknown graph backup method"), "{p}");
    // A writer commits to whichever store the backup names.
    let s = parse(
        "t.yaml",
        "name: g\nstack: [neo4j]\nsteps:\n  - backup: { neo4j: { method: offline }, writer: { rate: 20 } }\n  - verify: { neo4j: {}, rpo_max: 1s }\n",
    )
    .expect("a graph drill with a writer");
    let Action::Backup(b) = &s.steps[0].action else {
        panic!("a backup step")
    };
    assert_eq!(b.writer.as_ref().map(|w| w.rate), Some(20));
    let p = problems(
        "name: g\nsteps:\n  - backup: { neo4j: { method: offline }, s3: { method: mirror } }\n",
    );
    assert!(
        p.contains("names exactly one store: `postgres`, `s3` or `neo4j`"),
        "{p}"
    );
}

#[test]
fn an_x_kind_keeps_its_arguments_apart_from_expect_and_capture() {
    let text = "name: x\nsteps:\n  - x-deploy:\n      image: api\n      expect: { json: { $.revision: r1 } }\n      capture: { rev: $.revision }\n";
    let s = parse("t.yaml", text).expect("valid");
    let Action::Extension(x) = &s.steps[0].action else {
        panic!("an extension step")
    };
    assert_eq!(x.kind, "x-deploy");
    assert_eq!(x.args, serde_json::json!({ "image": "api" }));
    assert!(x.json.contains_key("$.revision"));
    assert_eq!(s.steps[0].action.captures(), ["rev"]);
    // `expect` of an `x-` kind takes `json` only, with did-you-mean.
    let p = problems("name: x\nsteps:\n  - x-a: { expect: { jsn: {} } }\n");
    assert!(p.contains("did you mean `json`?"), "{p}");
}

#[test]
fn merge_keys_share_a_block_and_problems_point_into_the_anchor() {
    let text = r#"name: merged
processes:
  - &api
    name: api
    command: "exec python3 -m http.server $PORT --bind 127.0.0.1"
    env: &env { APP_MODE: test, APP_REGION: eu }
  - <<: *api
    name: api-2
    env: { <<: *env, APP_REGION: us }
steps:
  - http: { url: "${processes.api-2.url}/" }
"#;
    let s = parse("t.yaml", text).expect("valid");
    let second = &s.processes[1];
    assert_eq!(second.name, "api-2");
    assert!(
        second.command.is_some(),
        "the command comes from the anchor"
    );
    assert_eq!(second.env["APP_MODE"], "test");
    assert_eq!(second.env["APP_REGION"], "us", "the map's own key wins");

    // A bad value inside the anchor is reported where it is written, once per use.
    let p = problems(
        "name: m\nprocesses:\n  - &p\n    name: a\n    command: \"true\"\n    timeout: 5\n  - <<: *p\n    name: b\nsteps:\n  - exec: { command: \"true\" }\n",
    );
    assert!(p.contains("t.yaml:6:14"), "{p}");
    // Merging something that is not a map.
    let p = problems("name: m\n<<: 3\nsteps:\n  - exec: { command: \"true\" }\n");
    assert!(
        p.contains("t.yaml:2:5: `<<` merges maps; this is an integer"),
        "{p}"
    );
}
