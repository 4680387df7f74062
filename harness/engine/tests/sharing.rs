//! Sharing a stack: which files may attach to the test run's stack, and how the scenarios of
//! one run share the stack it started when one of them takes a service away.

mod support;

use harness_engine::run::events::{Event, Phase};

/// Which files may run on the test run's shared stack (`.config/test-stack.sh`): one that
/// kills, pauses or restarts a stack service, or breaks the server every database shares,
/// starts its own; so does one that needs a service the shared stack lacks.
#[test]
fn only_files_that_take_no_service_away_share_a_stack() {
    use harness_engine::{
        run::session::{can_share_stack, load_paths},
        stack::Endpoints,
    };
    let full: Endpoints = serde_json::from_value(serde_json::json!({
        "postgres": {"host": "127.0.0.1", "port": 1, "user": "u", "password": "p",
                     "database": "d", "url": "postgres://u:p@127.0.0.1:1/d"},
        "s3": {"endpoint_url": "http://127.0.0.1:2", "region": "us-east-1",
               "access_key_id": "a", "secret_access_key": "s"},
    }))
    .expect("endpoints");
    let can = |rel: &str, e: &Endpoints| {
        can_share_stack(&load_paths(&[support::corpus(rel)]).expect("load"), e)
    };
    assert!(can("pass/drill_s3.yaml", &full));
    assert!(can("pass/drill_postgres_logical.yaml", &full));
    // A fault on a scenario's own process leaves the stack alone.
    assert!(can("pass/fault_process_restart.yaml", &full));
    for alone in [
        "pass/fault_process_kill_start_pause.yaml",
        "pass/fault_http.yaml",
        "pass/drill_postgres_killed.yaml",
        "pass/drill_postgres_corrupt.yaml",
        "pass/drill_pgbackrest.yaml",
    ] {
        assert!(!can(alone, &full), "{alone} takes a service away");
    }
    assert!(
        !can("pass/drill_s3.yaml", &Endpoints::default()),
        "a stack without the file's services cannot serve it"
    );
}

/// On a run's own stack, a scenario that takes a service away runs alone only among the
/// scenarios that use that service: one on another service goes on beside it, one on the
/// same service waits until it is over.
#[test]
fn a_service_taken_away_holds_back_only_the_scenarios_that_use_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write scenario");
        p
    };
    let files = [
        write(
            "a_pauses_s3.yaml",
            "name: the object store is frozen for a while\nstack: [s3]\nsteps:\n  \
             - name: freeze\n    fault: { target: s3, pause: true }\n  \
             - name: frozen\n    exec: { command: [sleep, \"4\"] }\n  \
             - name: thaw\n    fault: { target: s3, unpause: true }\n",
        ),
        write(
            "b_postgres.yaml",
            "name: postgres only\nstack: [postgres]\nsteps:\n  \
             - name: a moment\n    exec: { command: [sleep, \"1\"] }\n  \
             - name: postgres answers\n    sql: { query: \"select 1 as one\", expect: { rows: [{ one: 1 }] } }\n",
        ),
        write(
            "c_s3.yaml",
            "name: the object store in use\nstack: [s3]\nsteps:\n  \
             - name: an object is written\n    s3: { op: put, key: k.txt, body: \"x\", content_type: text/plain }\n",
        ),
    ];
    let out = support::run_files(&files, 3).expect("run");
    assert_eq!(out.summary.passed, 3, "{}", out.console);
    // Where each scenario's steps ended, in the order events came.
    let at = |scenario: usize, step: usize| {
        out.events
            .iter()
            .position(|e| {
                matches!(e, Event::StepFinished { scenario: s, index, phase: Phase::Steps, .. }
                    if *s == scenario && *index == step)
            })
            .unwrap_or_else(|| panic!("scenario {scenario} step {step}: {:?}", out.events))
    };
    let (frozen, thawed) = (at(0, 0), at(0, 2));
    let postgres = at(1, 1);
    assert!(
        frozen < postgres && postgres < thawed,
        "the postgres scenario ran while the object store was frozen: {frozen} < {postgres} < {thawed}"
    );
    let object = at(2, 0);
    assert!(
        object < frozen || object > thawed,
        "the object store's user waited for the freeze to end: {object} outside {frozen}..{thawed}"
    );
}
