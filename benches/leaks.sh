#!/usr/bin/env bash
# Leak trial: start a stack with every chosen service and a running scenario, end the run in
# each way (normal exit, a panic, SIGINT, SIGTERM, SIGKILL followed by the next start), and
# count what is left: processes, containers, volumes, databases, buckets, graph labels,
# folders and run records. Each ending is tried on a stack the run starts itself and on a
# shared stack it attaches to. Prints one line per ending and exits 1 if anything leaked.
#
#   LEAK_RUNS=3 LEAK_SERVICES=fast|all LEAK_PROVIDER=native|docker bash benches/leaks.sh
#
# Needs what `bash .ci/run --setup-only` installs. It must run alone: it counts everything
# harness has on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${LEAK_RUNS:-3}"
SERVICES="${LEAK_SERVICES:-fast}"
PROVIDER="${LEAK_PROVIDER:-native}"
ENDINGS="${LEAK_ENDINGS:-normal panic sigint sigterm sigkill}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harness-ci/target}"
export HARNESS_HOME="${HARNESS_HOME:-$HOME/.cache/harness}"
export HARNESS_BIN_DIR="$CARGO_TARGET_DIR/debug"
harness="$CARGO_TARGET_DIR/debug/harness"
[ -x "$harness" ] || cargo build -q -p harness-cli
run_root="${HARNESS_RUN_ROOT:-/dev/shm/harness-$(id -u)}"

case "$SERVICES" in
  fast) stack="postgres, s3, otel"; up_services="postgres,s3,otel" ;;
  all) stack="postgres, s3, otel, neo4j"; up_services="postgres,s3,otel,neo4j" ;;
  *) echo "LEAK_SERVICES must be fast or all" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The scenario: a process (the system under test), a write to every store, then a step that
# runs until the run is ended (or returns at once for the normal and panic endings).
scenario() { # $1 file, $2 the last step's command
  cat >"$1" <<EOF
name: leak trial
stack: [$stack]
processes:
  - name: leak-app
    command: "exec python3 -m http.server \$PORT --bind 127.0.0.1 --directory $work"
    ready: { http: / }
steps:
  - name: write
    sql: { execute: "create table leak_trial (id int)" }
  - name: put
    s3: { op: put, key: leak/object, body: "x" }
  - name: work
    exec: { command: "$2" }
    timeout: 120s
EOF
}
scenario "$work/quick.yaml" "true"
scenario "$work/blocking.yaml" "echo started > $work/started; sleep 300 & wait"
if [ "$SERVICES" = all ]; then
  printf '  - name: graph\n    cypher: { query: "CREATE (:`${scenario.graph_label}` {n: 1})" }\n' \
    >>"$work/quick.yaml"
fi

# The shared stack attached runs use.
shared=$("$harness" up --provider "$PROVIDER" --services "$up_services" --detach --json 2>/dev/null)
shared_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])' <<<"$shared")
echo "$shared" >"$work/shared.json"
cleanup_shared() { "$harness" down "$shared_id" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup_shared EXIT

count() { # what is left on the machine and on the shared stack, as "name=count ..."
  python3 - "$work/shared.json" "$run_root" "$HARNESS_HOME/runs" "$shared_id" "$work" <<'EOF'
import json, os, subprocess, sys
shared, root, runs, shared_id, work = sys.argv[1:]
s = json.load(open(shared))["services"]
left = {}
def procs():
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or shared_id in cmd:
            continue
        if work in cmd or root + "/" in cmd:
            n += 1
            print(f"left: pid {pid}: {cmd.replace(chr(0), ' ')[:200]}", file=sys.stderr)
    return n
left["processes"] = procs()
left["folders"] = len([d for d in os.listdir(root) if d != shared_id]) if os.path.isdir(root) else 0
left["records"] = len([f for f in os.listdir(runs) if not f.startswith(shared_id)]) if os.path.isdir(runs) else 0
pg = s["postgres"]["url"]
out = subprocess.run(["psql", pg, "-XAtc", r"select count(*) from pg_database where datname like 'h\_%'"],
                     capture_output=True, text=True, check=True)
left["databases"] = int(out.stdout.strip())
import boto3
c = boto3.client("s3", endpoint_url=s["s3"]["endpoint_url"], aws_access_key_id=s["s3"]["access_key_id"],
                 aws_secret_access_key=s["s3"]["secret_access_key"], region_name="us-east-1")
left["buckets"] = len([b for b in c.list_buckets().get("Buckets", []) if b["Name"].startswith("h-")])
if "neo4j" in s:
    from neo4j import GraphDatabase
    n = s["neo4j"]
    with GraphDatabase.driver(n["bolt_url"], auth=(n["user"], n["password"])) as d:
        labels = [r["label"] for r in d.execute_query("CALL db.labels() YIELD label RETURN label").records]
    left["labels"] = len([l for l in labels if l.startswith("H_")])
try:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=dev.harness.run"],
                         capture_output=True, text=True, check=True).stdout.split()
    mine = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=dev.harness.run={shared_id}"],
                          capture_output=True, text=True, check=True).stdout.split()
    left["containers"] = len(set(ids) - set(mine))
    vols = subprocess.run(["docker", "volume", "ls", "-q", "--filter", "dangling=true"],
                          capture_output=True, text=True, check=True).stdout.split()
    left["volumes"] = len(vols)
except (OSError, subprocess.CalledProcessError):
    pass
print(" ".join(f"{k}={v}" for k, v in sorted(left.items())))
EOF
}

# One run ended one way. $1 ending, $2.. harness run arguments.
end_run() {
  local ending=$1; shift
  rm -f "$work/started"
  case "$ending" in
    normal) "$harness" run "$@" "$work/quick.yaml" >/dev/null 2>&1 ;;
    panic) HARNESS_DEBUG_PANIC_IN_STEP=work "$harness" run "$@" "$work/quick.yaml" >/dev/null 2>&1 || true ;;
    sigint|sigterm|sigkill)
      setsid "$harness" run "$@" "$work/blocking.yaml" >/dev/null 2>&1 &
      local pid=$!
      for _ in $(seq 1 1200); do [ -f "$work/started" ] && break; sleep 0.1; done
      [ -f "$work/started" ] || { echo "the run never reached its blocking step" >&2; kill -9 "$pid"; exit 3; }
      case "$ending" in
        sigint) kill -INT -- "-$pid" ;;
        sigterm) kill -TERM -- "-$pid" ;;
        sigkill) kill -KILL -- "-$pid" ;;
      esac
      wait "$pid" 2>/dev/null || true
      if [ "$ending" = sigkill ]; then
        # The next start, on each kind of stack, cleans up what the killed run left.
        "$harness" run "$@" "$work/quick.yaml" >/dev/null 2>&1 || true
      fi
      ;;
  esac
}

baseline=$(count)
status=0
for ending in $ENDINGS; do
  worst="none"
  for i in $(seq 1 "$RUNS"); do
    end_run "$ending" --provider "$PROVIDER"
    end_run "$ending" --attach "$shared_id"
    now=$(count)
    if [ "$now" != "$baseline" ]; then
      worst="$now (after run $i; at the start: $baseline)"
      status=1
    fi
  done
  printf 'leak trial  %-8s %s runs × 2 stacks, %s, %s: leaks %s\n' \
    "$ending" "$RUNS" "$SERVICES" "$PROVIDER" "$worst"
done
exit "$status"
