#!/usr/bin/env bash
# Healthcheck of harness.local/otelcol: succeeds when the collector's health_check extension,
# at HARNESS_OTEL_HEALTH_ENDPOINT (host:port, as in infra/otel/collector.yaml), answers
# `GET /` with 200, which it does once every pipeline has started. Plain bash (/dev/tcp), so
# the image needs no HTTP client.
set -u

endpoint="${HARNESS_OTEL_HEALTH_ENDPOINT:-}"
if [ -z "$endpoint" ]; then
    echo "harness-otel-healthcheck: HARNESS_OTEL_HEALTH_ENDPOINT is not set" >&2
    exit 1
fi
host="${endpoint%:*}"
port="${endpoint##*:}"
host="${host#[}"
host="${host%]}"
if [ -z "$host" ] || [ "$host" = 0.0.0.0 ]; then
    host=127.0.0.1
fi

if ! { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
    echo "harness-otel-healthcheck: cannot connect to $host:$port" >&2
    exit 1
fi
printf 'GET / HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$endpoint" >&3
status=
IFS= read -r -t 2 status <&3
status="${status%$'\r'}"
case "$status" in
    "HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "harness-otel-healthcheck: $host:$port answered '$status'" >&2
exit 1
