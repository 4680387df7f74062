#!/usr/bin/env bash
# Entrypoint of harness.local/postgres:15, the local stand-in for postgres:15.14-bookworm.
#
# Same contract as upstream's entrypoint, reduced to what harness uses:
#   - `docker run IMAGE -c key=value ...` runs `postgres -c key=value ...`;
#   - started as root, it fixes the ownership of $PGDATA and re-runs itself as `postgres`;
#   - on an empty $PGDATA it runs initdb with POSTGRES_USER (default postgres) and
#     POSTGRES_PASSWORD (required), scram-sha-256 for TCP from 127.0.0.1/32 and ::1/128 only,
#     trust on the unix socket; then creates POSTGRES_DB (default: POSTGRES_USER) and runs
#     /docker-entrypoint-initdb.d/*.sql and *.sh against a temporary server that listens on
#     the unix socket only (nothing binds TCP before the real server starts);
#   - finally execs the command, so postgres is PID 1 and gets `docker stop`'s signal.
# Any other command (`bash`, `psql ...`) is executed as is.
set -Eeuo pipefail

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
    exec "$@"
fi

: "${PGDATA:?PGDATA must be set}"

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    # Only touch what is not already postgres's (a large existing data dir stays untouched).
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

run_initdb_scripts() {
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)  log "running $f"; bash "$f" ;;
            *.sql) log "running $f"; psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc \
                       --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
            *)     if [ -e "$f" ]; then log "ignoring $f"; fi ;;
        esac
    done
}

init_cluster() {
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        die "the database is not initialized and POSTGRES_PASSWORD is not set;" \
            "pass -e POSTGRES_PASSWORD=<password> (the password of POSTGRES_USER, default postgres)"
    fi
    export POSTGRES_USER="${POSTGRES_USER:-postgres}"
    export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

    log "initializing $PGDATA (user $POSTGRES_USER)"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as upstream.
    initdb --username="$POSTGRES_USER" \
        --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-host=scram-sha-256 --auth-local=trust \
        ${POSTGRES_INITDB_ARGS:-} >&2
    # initdb's pg_hba.conf allows TCP from 127.0.0.1/32 and ::1/128 only, with
    # --auth-host; nothing is added (upstream adds `host all all all`).

    local has_scripts=
    compgen -G '/docker-entrypoint-initdb.d/*' >/dev/null && has_scripts=1
    if [ "$POSTGRES_DB" != postgres ] || [ -n "$has_scripts" ]; then
        # Unix socket only: no TCP listener until the real server starts.
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >&2
        if [ "$POSTGRES_DB" != postgres ]; then
            psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" \
                --dbname postgres --set db="$POSTGRES_DB" >&2 <<<'CREATE DATABASE :"db";'
        fi
        run_initdb_scripts
        pg_ctl -D "$PGDATA" -m fast -w stop >&2
    fi
    log "initialized; starting the server"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_cluster
fi
unset POSTGRES_PASSWORD

exec "$@"
