//! `fault` steps in a run: the decisions of the scenario's fault proxies reach the run's
//! events (and so the JSON report), and the same seed makes the same ones.

mod support;

use harness_engine::{
    faults::Decision,
    run::{RunOptions, events::Event},
};

/// Eight connections, one after the other, through a latency that applies to half of them.
const SCENARIO: &str = r#"name: a fault that applies to half the connections
stack: [postgres]
steps:
  - fault: { target: postgres, latency: 5ms, toxicity: 0.5 }
  - name: eight connections through the proxy
    exec:
      command: "for i in 1 2 3 4 5 6 7 8; do psql \"${faults.postgres.url}\" -tAc 'select 1' || exit 1; done"
"#;

fn decisions(seed: u64) -> Vec<Decision> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("half.yaml");
    std::fs::write(&file, SCENARIO).expect("write");
    let out = support::run_files_with(
        &[file],
        1,
        RunOptions {
            seed,
            ..RunOptions::default()
        },
    )
    .expect("run");
    assert_eq!(out.summary.passed, 1, "{}", out.console);
    out.events
        .into_iter()
        .find_map(|e| match e {
            Event::ScenarioFinished {
                fault_decisions, ..
            } => Some(fault_decisions),
            _ => None,
        })
        .expect("the scenario finished")
}

#[test]
fn the_runs_events_carry_the_fault_decisions_and_the_seed_replays_them() {
    let a = decisions(11);
    let b = decisions(11);
    let c = decisions(12);
    let choices = |d: &[Decision]| d.iter().map(|d| d.choice.clone()).collect::<Vec<_>>();
    assert_eq!(a.len(), 8, "one decision per connection: {a:?}");
    assert!(a.iter().all(|d| d.proxy == "postgres"), "{a:?}");
    assert_eq!(a, b, "the same seed made other decisions");
    assert_ne!(choices(&a), choices(&c), "another seed changed nothing");
    let applied = a.iter().filter(|d| d.choice == "applies").count();
    assert!((1..8).contains(&applied), "{:?}", choices(&a));
}
