#!/usr/bin/env bash
# Entrypoint of harness.local/neo4j:5.26.16, the local stand-in for neo4j:5.26.16-community.
#
# Reads upstream's environment and runs harness's embedded launcher (dev.harness.neo4j.Launcher):
#   NEO4J_AUTH                          required, neo4j/<password> (password: 8+ characters, not
#                                       "neo4j"), as upstream accepts it
#   NEO4J_server_bolt_listen__address   [127.0.0.1|localhost]:PORT, default 127.0.0.1:7687; the
#                                       launcher binds 127.0.0.1 only
#   any other NEO4J_* variable          ignored (http connector, memory, default listen address:
#                                       the launcher has HTTP off, fixed memory, loopback only)
# The store lives in /data. Started as root, it fixes the ownership of /data and re-runs itself
# as neo4j (uid 7474, as upstream). The command `neo4j` (the default) starts the DBMS; any
# other command is executed as is. Java is exec'd, so it is PID 1 and `docker stop`'s SIGTERM
# shuts the DBMS down cleanly.
#
# The launcher prints HARNESS_NEO4J_READY once Bolt accepts the credentials; that line also
# creates /tmp/harness-neo4j-ready, which the compose healthcheck tests.
set -Eeuo pipefail

readonly READY_MARKER=/tmp/harness-neo4j-ready

die() { printf 'docker-entrypoint: error: %s\n' "$*" >&2; exit 1; }

if [ "$#" -eq 0 ]; then
    set -- neo4j
fi
if [ "$1" != neo4j ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p /data
    find /data \! -user neo4j -exec chown neo4j:neo4j '{}' +
    exec setpriv --reuid=neo4j --regid=neo4j --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# NEO4J_AUTH=neo4j/<password>
auth="${NEO4J_AUTH:-}"
case "$auth" in
    '')
        die "NEO4J_AUTH is not set; pass -e NEO4J_AUTH=neo4j/<password>" ;;
    none)
        die "NEO4J_AUTH=none (authentication off) is not supported by this image;" \
            "pass -e NEO4J_AUTH=neo4j/<password>" ;;
    neo4j/*)
        password="${auth#neo4j/}" ;;
    */*)
        die "NEO4J_AUTH names user '${auth%%/*}'; the admin user must be neo4j" \
            "(NEO4J_AUTH=neo4j/<password>)" ;;
    *)
        die "NEO4J_AUTH must have the form neo4j/<password>" ;;
esac
if [ "$password" = neo4j ]; then
    die "NEO4J_AUTH: the password cannot be 'neo4j', the default"
fi
if [ "${#password}" -lt 8 ]; then
    die "NEO4J_AUTH: the password must be at least 8 characters long"
fi

# NEO4J_server_bolt_listen__address=[host]:port
bolt="${NEO4J_server_bolt_listen__address:-127.0.0.1:7687}"
case "$bolt" in
    *:*) host="${bolt%:*}"; port="${bolt##*:}" ;;
    *)   die "NEO4J_server_bolt_listen__address must be [127.0.0.1]:PORT, got '$bolt'" ;;
esac
case "$host" in
    ''|127.0.0.1|localhost) ;;
    *) die "NEO4J_server_bolt_listen__address: this image binds Bolt on 127.0.0.1 only, got '$host'" ;;
esac
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "NEO4J_server_bolt_listen__address: bad port '$port'"
fi

export HARNESS_NEO4J_HOME=/data
export HARNESS_NEO4J_BOLT_PORT="$port"
export HARNESS_NEO4J_USER=neo4j
export HARNESS_NEO4J_PASSWORD="$password"
unset NEO4J_AUTH auth password

# Copies the launcher's stdout to the container's and marks readiness.
relay_stdout() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
        case "$line" in
            HARNESS_NEO4J_READY*) : >"$READY_MARKER" ;;
        esac
    done
}

rm -f "$READY_MARKER"
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xms64m -Xmx512m \
    -cp '/opt/neo4j/lib/*' dev.harness.neo4j.Launcher > >(relay_stdout)
