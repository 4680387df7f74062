#!/usr/bin/env bash
# Scale: a generated scenario library of COUNTS scenarios run on one stack (started once with
# `harness up --detach`, attached to by every run) with each of JOBS, timed, with the peak
# memory of the `harness run` process and of the stack's Postgres. Each scenario is a
# typical small one: its own database (a table created, rows written and read back) and its
# own bucket (an object put and read back). Prints a Markdown table for docs/benchmarks.md.
#
#   SCALE_COUNTS="1 10 100 1000" SCALE_JOBS="1 2 4 8" bash benches/scale.sh
#
# Needs what `bash .ci/run --setup-only` installs and a release or debug build of the CLI
# (SCALE_PROFILE=release|debug, default release). Run it alone: it measures the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS="${SCALE_COUNTS:-1 10 100 1000}"
JOBS="${SCALE_JOBS:-1 2 4 8}"
PROFILE="${SCALE_PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harness-ci/target}"
export HARNESS_HOME="${HARNESS_HOME:-$HOME/.cache/harness}"
harness="$CARGO_TARGET_DIR/$PROFILE/harness"
if [ ! -x "$harness" ]; then
  if [ "$PROFILE" = release ]; then cargo build -q --release -p harness-cli; else cargo build -q -p harness-cli; fi
fi
work=$(mktemp -d)
run_id=""
cleanup() {
  [ -n "$run_id" ] && "$harness" down "$run_id" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

generate() { # $1 count, $2 folder
  mkdir -p "$2"
  for i in $(seq 1 "$1"); do
    cat >"$2/s$(printf %04d "$i").yaml" <<EOF
name: generated scenario $i
stack: [postgres, s3]
steps:
  - name: a table of its own
    sql:
      execute: CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)
  - name: rows written
    sql:
      execute: INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g
      expect: { affected: 100 }
  - name: rows read back
    sql:
      query: SELECT count(*)::int AS n FROM items WHERE label LIKE 'item %'
      expect:
        rows: [{ n: 100 }]
  - name: an object of its own
    s3: { op: put, key: "item-$i.txt", body: "item $i" }
  - name: read back
    s3:
      op: get
      key: "item-$i.txt"
      expect: { body: "item $i" }
EOF
  done
}

up=$("$harness" up --services postgres,s3 --detach --json)
run_id=$(printf '%s' "$up" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
pg_pid() { pgrep -o -f "postgres -D .*${run_id}" || true; }
pg_rss() { # the resident memory of the stack's Postgres, all its processes (KiB)
  local root; root=$(pg_pid)
  [ -z "$root" ] && { echo 0; return; }
  ps -o rss= --ppid "$root" -p "$root" | awk '{s+=$1} END {print s}'
}

echo "| scenarios | --jobs | wall time | per scenario | harness peak RSS | Postgres RSS after | result |"
echo "|---|---|---|---|---|---|---|"
for n in $COUNTS; do
  lib="$work/lib-$n"
  generate "$n" "$lib"
  for j in $JOBS; do
    out="$work/out-$n-$j"
    start=$(date +%s.%N)
    set +e
    /usr/bin/time -f '%M' -o "$out.rss" "$harness" run "$lib" --attach "$run_id" --jobs "$j" \
      --json "$out.json" >"$out.log" 2>&1
    code=$?
    set -e
    end=$(date +%s.%N)
    wall=$(python3 -c "print(f'{$end - $start:.2f}')")
    per=$(python3 -c "print(f'{($end - $start) / $n * 1000:.0f}')")
    rss=$(tail -1 "$out.rss")
    result=$(python3 -c "
import json
try:
    s = json.load(open('$out.json'))
    print(f\"{s['passed']} passed, {s['failed']} failed, {s['errored']} errors\")
except Exception as e:
    print('no report (exit $code)')")
    echo "| $n | $j | ${wall} s | ${per} ms | $((rss / 1024)) MiB | $(( $(pg_rss) / 1024 )) MiB | $result |"
    if [ "$code" != 0 ]; then tail -20 "$out.log" >&2; fi
  done
done
