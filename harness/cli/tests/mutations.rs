//! Mutation check for the scenario library: each broken variant of the sample platform
//! (`SAMPLE_BROKEN`, see `fixtures/apps/api/README.md`) is run against the scenario meant to
//! catch it, and that scenario must FAIL at the named step. A scenario that cannot fail does
//! not count as coverage (`docs/coverage.md`).

use std::process::Command;

fn run_broken(variant: &str, scenario: &str) -> (Option<i32>, serde_json::Value, String) {
    run_with(&[("SAMPLE_BROKEN", variant)], scenario)
}

fn run_with(env: &[(&str, &str)], scenario: &str) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_harness"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!("../../scenarios/{scenario}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.args(["run", &path]);
    // A variable of harness's own (such as the collector's configuration) shapes the stack,
    // so that run starts one.
    let shapes_stack = env.iter().any(|(k, _)| k.starts_with("HARNESS_"));
    if let Some(id) = shared_stack(&path).filter(|_| !shapes_stack) {
        cmd.args(["--attach", &id]);
    }
    let out = cmd
        .arg("--json")
        .env("HARNESS_BIN_DIR", bin_dir)
        .arg(&report)
        .envs(env.iter().copied())
        .output()
        .expect("run harness");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (out.status.code(), json, stderr)
}

/// The test run's stack (`.config/test-stack.sh`), when the scenario can share it: it
/// takes no stack service away, and the stack has every service it needs.
fn shared_stack(scenario: &str) -> Option<String> {
    let id = std::env::var("HARNESS_TEST_STACK").ok()?;
    harness_engine::run::session::can_share_recorded(&[scenario.into()], &id).then_some(id)
}

fn assert_caught(variant: &str, scenario: &str, step: &str) {
    let (code, report, stderr) = run_broken(variant, scenario);
    assert_eq!(
        code,
        Some(1),
        "{scenario} must fail with SAMPLE_BROKEN={variant}:\n{stderr}"
    );
    let s = &report["scenarios"][0];
    assert_eq!(s["status"], "failed", "{stderr}");
    assert_eq!(
        s["failed_step"]["step"], step,
        "{scenario} must fail at `{step}` with SAMPLE_BROKEN={variant}:\n{stderr}"
    );
}

macro_rules! caught {
    ($($test:ident: $variant:literal in $scenario:literal at $step:literal;)*) => {$(
        #[test]
        fn $test() {
            assert_caught($variant, $scenario, $step);
        }
    )*};
}

caught! {
    crash_on_start_fails_health: "crash_on_start" in "platform/health.yaml" at "start process api";
    crashing_v2_fails_revisions: "crash_on_start" in "platform_revisions.yaml" at "v2 takes over all traffic";
    failing_route_fails_canary: "config_500" in "platform_canary.yaml" at "v2 is promoted after its canary";
    leaked_secret_fails_version: "leak_secret" in "platform/version.yaml" at "version metadata carries no credential";
    leaked_secret_fails_browser_config: "leak_secret" in "platform/browser_config.yaml" at "only the public keys are served";
    rls_bypass_fails_rls: "rls_bypass" in "platform/rls.yaml" at "grace lists only her own deck";
    unsafe_v2_migration_fails_rollback: "v2_breaks_v1" in "platform_rollback_schema.yaml" at "after rolling back, v1 can still write";
    graph_500_fails_degradation: "graph_500" in "platform_graph_degrades.yaml" at "with the graph down, the answer degrades instead of failing";
    silent_api_fails_telemetry: "no_telemetry" in "platform/telemetry.yaml" at "its span reached the collector with service name and version";
    purged_versions_fail_artifact_recovery: "purge_on_replace" in "platform/artifact_recovery.yaml" at "recover - read the previous version";
    hanging_readiness_fails_postgres_paused: "ready_hangs" in "platform/postgres_paused.yaml" at "readiness goes red while Postgres is frozen";
    untimed_store_fails_store_slow: "no_store_timeout" in "platform/store_slow.yaml" at "the upload fails cleanly within the api's timeout";
    critical_telemetry_fails_collector_down: "telemetry_critical" in "platform/collector_down.yaml" at "the api keeps serving while its telemetry cannot be sent";
    service_role_key_in_the_browser_fails_supabase_browser_config: "browser_service_role" in "platform/supabase_browser_config.yaml" at "the browser config holds the project URL and the publishable key only";
    open_policy_fails_supabase_rls: "policy_using_true" in "platform/supabase_rls.yaml" at "the api lists grace only her own deck";
    unpoliced_table_fails_the_rls_check: "table_without_policy" in "platform/supabase_rls.yaml" at "no user-scoped table lets a caller reach another user's rows";
    cross_user_storage_fails_supabase_storage: "storage_cross_user" in "platform/supabase_storage.yaml" at "grace cannot read ada's export";
    silent_ingest_fails_ingest: "no_telemetry" in "platform_ingest.yaml" at "the job's run span reached the collector";
}

#[test]
fn an_unversioned_collector_config_fails_the_versioning_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let custom = dir.path().join("collector.yaml");
    let versioned =
        std::fs::read_to_string("../../infra/otel/collector.yaml").expect("versioned config");
    std::fs::write(&custom, format!("{versioned}# a local tweak\n")).expect("write config");
    let custom = custom.to_string_lossy().into_owned();
    let (code, report, stderr) = run_with(
        &[("HARNESS_OTEL_CONFIG", &custom)],
        "collector_config_versioned.yaml",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        report["scenarios"][0]["failed_step"]["step"],
        "the running collector uses exactly the versioned configuration",
        "{stderr}"
    );
}
