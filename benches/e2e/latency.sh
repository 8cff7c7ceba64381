#!/usr/bin/env bash
# latency.sh — fixed-rate produce latency against one fresh Tern broker, with the broker's own
# latency breakdown (fdatasync, append-to-ack, produce request) printed from its shutdown log.
#
# Usage: benches/e2e/latency.sh [--tern PATH] [--port N] [--rate R] [--seconds S]
#                               [--partitions "1 6"] [-- extra tern flags...]
# Prints one line per partition count (client p50/p99/p99.9 in ms), then the broker's
# "shard latency since start" lines. Needs python3 with confluent-kafka.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tern="${here}/../../target/release/tern"
port=19141 rate=10000 seconds=8 partitions="1 6"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tern) tern="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --partitions) partitions="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "latency.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
data_dir="$(mktemp -d /tmp/tern-latency.XXXXXX)"
log_file="${data_dir}.log"
"$tern" --listen "127.0.0.1:${port}" --data-dir "$data_dir" --log-level info "$@" \
    2>"$log_file" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data_dir"' EXIT
bootstrap="127.0.0.1:${port}"
for _ in $(seq 50); do
    python3 "${here}/confluent_bench.py" end-offsets --bootstrap "$bootstrap" --topic probe \
        >/dev/null 2>&1 && break
    sleep 0.2
done
for count in $partitions; do
    topic="latency-${count}"
    python3 "${here}/confluent_bench.py" create-topic --bootstrap "$bootstrap" \
        --topic "$topic" --partitions "$count" >/dev/null
    result="$(python3 "${here}/confluent_bench.py" produce --bootstrap "$bootstrap" \
        --topic "$topic" --record-bytes 1024 --seconds "$seconds" --warmup-seconds 2 \
        --rate "$rate" --linger-ms 0)"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "partitions=${count} load=${load} ${result}"
done
kill -TERM "$pid"
wait "$pid" || true
grep "shard latency" "$log_file" | sed 's/.*INFO //'
rm -f "$log_file"
