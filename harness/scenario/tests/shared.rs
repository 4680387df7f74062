//! A folder's shared defaults (`_defaults.yaml`) and the `env_from` shorthand; the malformed
//! cases with their reports are in `tests/malformed/shared/` and `tests/malformed/`.

use harness_scenario::{Action, Fixture, Scenario, Service, Source, parse, parse_files};

const SHARED: &str = r#"# shared by the folder
stack: [postgres]
tags: [platform]
vars:
  region: eu
  greeting: hello
fixtures:
  - sql: fixtures/schema.sql
processes:
  - name: api
    cargo: sample-api
    args: [serve]
    env:
      DATABASE_URL: "${scenario.database_url}"
      LOG: info
    ready: { http: /healthz }
  - name: worker
    command: ["python3", "worker.py"]
defaults:
  http:
    base_url: "${processes.api.url}"
    headers: { accept: application/json, x-team: core }
"#;

fn with_shared(own: &str, shared: &str) -> Result<(Scenario, Source), String> {
    parse_files(
        "dir/s.yaml",
        own.as_bytes(),
        Some(("dir/_defaults.yaml", shared.as_bytes())),
    )
    .map_err(|d| d.to_plain())
}

#[test]
fn a_scenario_inherits_every_shared_section() {
    let own = "name: s\nsteps:\n  - http: { url: /healthz }\n";
    let (s, _) = with_shared(own, SHARED).expect("valid");
    assert_eq!(s.stack, vec![Service::Postgres]);
    assert_eq!(s.tags, vec!["platform"]);
    assert_eq!(s.vars["region"].value, "eu");
    assert!(matches!(&s.fixtures[0], Fixture::Sql(p) if p == "fixtures/schema.sql"));
    let names: Vec<&str> = s.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    assert_eq!(s.processes[0].cargo.as_deref(), Some("sample-api"));
    assert_eq!(
        s.defaults.http.base_url.as_ref().map(|t| t.text.as_str()),
        Some("${processes.api.url}")
    );
}

#[test]
fn the_files_own_values_win_and_same_named_entries_merge_key_by_key() {
    let own = r#"
name: s
stack: [s3, postgres]
tags: [slow]
vars: { greeting: hi }
fixtures:
  - sql: fixtures/data.sql
processes:
  - name: extra
    command: "sleep 60"
  - name: api
    env: { LOG: debug, APP_VERSION: "2.0.0" }
defaults:
  http:
    headers: { x-team: payments }
steps:
  - http: { url: /healthz }
"#;
    let (s, _) = with_shared(own, SHARED).expect("valid");
    assert_eq!(s.stack, vec![Service::Postgres, Service::S3], "each once");
    assert_eq!(s.tags, vec!["platform", "slow"]);
    assert_eq!(s.vars["greeting"].value, "hi");
    assert_eq!(s.vars["region"].value, "eu");
    let fixtures: Vec<String> = s
        .fixtures
        .iter()
        .map(|f| match f {
            Fixture::Sql(p) => p.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(fixtures, ["fixtures/schema.sql", "fixtures/data.sql"]);
    // `api` keeps its place and its shared keys; `env` is merged entry by entry.
    let names: Vec<&str> = s.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api", "worker", "extra"]);
    let api = &s.processes[0];
    assert_eq!(api.cargo.as_deref(), Some("sample-api"));
    assert_eq!(api.args, ["serve"]);
    assert_eq!(api.env["LOG"], "debug");
    assert_eq!(api.env["APP_VERSION"], "2.0.0");
    assert_eq!(api.env["DATABASE_URL"], "${scenario.database_url}");
    let headers = &s.defaults.http.headers;
    assert_eq!(headers["x-team"].text, "payments");
    assert_eq!(headers["accept"].text, "application/json");
}

#[test]
fn a_problem_in_an_inherited_block_is_reported_in_the_shared_file() {
    // The shared process reads a var only this scenario would declare; the reference is
    // checked in the scenario that inherits it, and reported where it is written.
    let shared =
        "processes:\n  - name: api\n    command: \"serve\"\n    env: { KEY: \"${vars.key}\" }\n";
    let own = "name: s\nsteps:\n  - exec: { command: \"true\" }\n";
    let plain = with_shared(own, shared).expect_err("unknown var");
    assert!(
        plain.starts_with("dir/_defaults.yaml:4:18: unknown var `key`"),
        "{plain}"
    );
    let d = parse_files(
        "dir/s.yaml",
        own.as_bytes(),
        Some(("dir/_defaults.yaml", shared.as_bytes())),
    )
    .expect_err("invalid");
    let rendered = d.render();
    assert!(rendered.contains("[dir/_defaults.yaml:4:18]"), "{rendered}");
    assert!(
        rendered.contains("env: { KEY:"),
        "the excerpt is the shared file's: {rendered}"
    );
}

#[test]
fn the_scenarios_own_problems_keep_their_positions() {
    let own = "name: s\nsteps:\n  - http: { url: /healthz, expect: { status: 999 } }\n";
    let plain = with_shared(own, SHARED).expect_err("bad status");
    assert!(plain.starts_with("dir/s.yaml:3:"), "{plain}");
    assert!(!plain.contains("_defaults"), "{plain}");
}

#[test]
fn an_inherited_process_reports_its_location_in_the_shared_file() {
    let own = "name: s\nsteps:\n  - exec: { command: \"true\" }\n";
    let (s, source) = with_shared(own, SHARED).expect("valid");
    assert_eq!(
        source.location(s.processes[0].span),
        "dir/_defaults.yaml:10:5"
    );
    assert_eq!(source.location(s.steps[0].span), "dir/s.yaml:3:5");
}

#[test]
fn an_empty_shared_file_changes_nothing() {
    let own = "name: s\nsteps:\n  - exec: { command: \"true\" }\n";
    let (s, _) = with_shared(own, "# nothing shared yet\n").expect("valid");
    assert!(s.processes.is_empty() && s.stack.is_empty());
}

#[test]
fn env_from_gives_the_usual_names_and_env_wins() {
    let text = r#"
name: s
stack: [postgres, s3, neo4j, otel]
processes:
  - name: app
    command: "serve"
    env_from: [postgres, s3, neo4j, otel]
    env: { DATABASE_URL: "postgres://elsewhere" }
steps:
  - exec:
      command: "psql -c 'select 1'"
      env_from: [postgres]
"#;
    let s = parse("t.yaml", text).expect("valid");
    let env = &s.processes[0].env;
    assert_eq!(env["DATABASE_URL"], "postgres://elsewhere", "env wins");
    assert_eq!(env["PGPASSWORD"], "${stack.postgres.password}");
    assert_eq!(env["PGDATABASE"], "${scenario.database}");
    assert_eq!(env["AWS_ENDPOINT_URL"], "${stack.s3.endpoint_url}");
    assert_eq!(env["S3_BUCKET"], "${scenario.bucket}");
    assert_eq!(env["NEO4J_URI"], "${stack.neo4j.bolt_url}");
    assert_eq!(env["NEO4J_LABEL"], "${scenario.graph_label}");
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "${stack.otel.otlp_http}"
    );
    assert_eq!(s.processes[0].env_from.len(), 4);
    let Action::Exec(e) = &s.steps[0].action else {
        panic!("exec")
    };
    assert_eq!(e.env["DATABASE_URL"].text, "${scenario.database_url}");
    assert_eq!(e.env["PGHOST"].text, "${stack.postgres.host}");
    assert!(!e.env.contains_key("AWS_REGION"));
}

#[test]
fn every_env_from_value_is_a_reference_the_validator_accepts() {
    // One process per service, each with only that service in the stack: every value
    // env_from writes must name a field that service has.
    for service in Service::ALL {
        let name = service.name();
        let text = format!(
            "name: s\nstack: [{name}]\nprocesses:\n  - name: app\n    command: serve\n    env_from: [{name}]\n    env:\n{}steps:\n  - exec: {{ command: \"true\" }}\n",
            service
                .env()
                .iter()
                .map(|(k, v)| format!("      X_{k}: \"{v}\"\n"))
                .collect::<String>()
        );
        parse("t.yaml", &text).unwrap_or_else(|d| panic!("{name}: {}", d.to_plain()));
    }
}
