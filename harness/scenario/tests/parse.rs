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
