#!/usr/bin/env bash
# The README's main job on a machine where nothing was built: a fresh clone of this
# repository with empty cargo, target, harness and Go caches (in FRESH, default
# /tmp/harness-first-run), run twice. Prints the wall time of each run. apt packages are
# not removed: `.ci/run` installs them if they are missing, in apt's time.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
FRESH="${FRESH:-/tmp/harness-first-run}"
rm -rf "$FRESH"
mkdir -p "$FRESH"
git clone -q "$repo" "$FRESH/clone"
export CARGO_HOME="$FRESH/cargo" CARGO_TARGET_DIR="$FRESH/target" HARNESS_HOME="$FRESH/home" \
  GOCACHE="$FRESH/gocache" GOMODCACHE="$FRESH/gomod"
# rustup's proxies stay where they are; only the registry and the build start empty.
export PATH="$HOME/.cargo/bin:$PATH"
cd "$FRESH/clone"
for run in first second; do
  start=$(date +%s.%N)
  bash .ci/run --main > "$FRESH/$run.log" 2>&1
  end=$(date +%s.%N)
  printf '%s run: %.1f s (log: %s)\n' "$run" "$(echo "$end - $start" | bc)" "$FRESH/$run.log"
done
# Go's module cache is read-only by default.
chmod -R u+w "$FRESH" 2>/dev/null || true
