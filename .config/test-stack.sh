#!/usr/bin/env bash
# nextest setup script (.config/nextest.toml): starts one stack for the whole test run, on
# the run's provider (HARNESS_PROVIDER: native, or docker for .ci/run's Docker pass), and
# hands its run id to the tests as HARNESS_TEST_STACK. The stack is leased to the nextest process: a watcher stops it when
# nextest ends, however it ends, and the next start's reaper does if the watcher was killed.
#
# Only the run id leaves this script. nextest writes setup-script variables into its JUnit
# report, so the endpoints (which hold the passwords) stay in the stack's record.
set -euo pipefail

harness="${CARGO_TARGET_DIR:-$PWD/target}/debug/harness"
if [ ! -x "$harness" ]; then
  echo "test-stack: $harness is not built (cargo nextest builds it with the tests)" >&2
  exit 1
fi
# The nextest process is this script's parent.
summary=$("$harness" up --detach --lease "$PPID" --json --services postgres,s3,neo4j,otel)
run_id=$(printf '%s' "$summary" | python3 -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')
echo "HARNESS_TEST_STACK=$run_id" >>"$NEXTEST_ENV"
echo "test-stack: $run_id (${HARNESS_PROVIDER:-native}) serves the scenario tests of this run"
