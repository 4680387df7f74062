#!/usr/bin/env bash
# Whole-command benchmark, one run for all three: `harness up` on the native provider, on the
# Docker provider, and `docker compose up --wait` on infra/compose, for the same four
# services with the same images, each measured from nothing to every service ready.
# Needs what `bash .ci/run --setup-only` installs (engine, runtimes, local images), plus
# hyperfine (apt) and compose v2 (built here from the Go module proxy, cached by version).
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=2.40.3
RUNS="${RUNS:-10}"
# The services to start (compose names are the same): all four by default.
SERVICES="${SERVICES:-postgres,s3,neo4j,otel}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harness-ci/target}"
cache="$HOME/.cache/harness-ci/compose-$COMPOSE_VERSION"

command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine
if ! docker compose version 2>/dev/null | grep -q "$COMPOSE_VERSION\|dev"; then
  if [ ! -x "$cache/docker-compose" ]; then
    # `go install` refuses the module (its go.mod has exclude directives), so build it as the
    # main module from the proxy's copy.
    src=$(go mod download -json "github.com/docker/compose/v2@v$COMPOSE_VERSION" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$cache/docker-compose" ./cmd)
  fi
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$cache/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
fi

cargo build -q -p harness-cli
harness="$CARGO_TARGET_DIR/debug/harness"
images=$("$harness" images list --json)
image() { python3 -c "import json,sys; print(next(r['runs'] for r in json.loads(sys.argv[1]) if r['name']==sys.argv[2]))" "$images" "$1"; }
export HARNESS_IMAGE_POSTGRES=$(image postgres) HARNESS_IMAGE_S3=$(image s3) \
  HARNESS_IMAGE_NEO4J=$(image neo4j) HARNESS_IMAGE_OTEL=$(image otel)
export HARNESS_COMPOSE_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export HARNESS_COMPOSE_DATA=$(mktemp -d)
compose="docker compose -p harness-bench -f infra/compose/compose.yaml"
down_all="$harness down >/dev/null; $compose down -v >/dev/null 2>&1"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "engine: $(docker version --format '{{.Server.Version}}'), compose: $(docker compose version --short)"
echo "images: $HARNESS_IMAGE_POSTGRES $HARNESS_IMAGE_S3 $HARNESS_IMAGE_NEO4J $HARNESS_IMAGE_OTEL"

hyperfine --runs "$RUNS" --warmup 1 --prepare "$down_all" --cleanup "$down_all" \
  --export-markdown "${OUT:-target/bench-up.md}" \
  -n "harness up (native)" "$harness up --detach --services $SERVICES" \
  -n "harness up --provider docker" "$harness up --provider docker --detach --services $SERVICES" \
  -n "docker compose up --wait" "$compose up -d --wait ${SERVICES//,/ }"
rm -rf "$HARNESS_COMPOSE_DATA"
