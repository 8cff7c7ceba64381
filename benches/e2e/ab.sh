#!/usr/bin/env bash
# ab.sh — two Tern builds, one librdkafka produce cell, alternating rounds in one run.
#
# Usage:
#   benches/e2e/ab.sh BEFORE_BIN AFTER_BIN [--rounds N] [--seconds S] [--record-bytes B]
#                     [--partitions P] [--data-root D]
#
# For each round, each binary in turn (before first, then after) gets a fresh data dir and a
# fresh topic, then confluent_bench.py produces flat out (acks=all, librdkafka defaults) for S
# seconds after 3 s of warm-up. Prints one line per run and the median MiB/s of each build.
# Use it to show that a change does not cost throughput (e.g. issue 12's back-pressure:
# 1 KiB records, 1 partition). Never run in CI.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BENCH_PY="$HERE/confluent_bench.py"

[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
before_bin="$1" after_bin="$2"
shift 2
rounds=5 seconds=10 record_bytes=1024 partitions=1 data_root=/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --record-bytes) record_bytes="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    *) echo "ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

work="$(mktemp -d "$data_root/tern-ab.XXXXXX")"
pid=""
cleanup() {
  local status=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "ab.sh: failed; logs kept in $work" >&2; fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"

run_one() { # label binary round
  local label="$1" binary="$2" round="$3" dir="$work/$1-$3"
  "$binary" --listen "$bootstrap" --data-dir "$dir" >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  python3 "$BENCH_PY" create-topic --bootstrap "$bootstrap" --topic ab --partitions "$partitions" >/dev/null
  local result
  echo "round $round $label: producing ($dir.log)" >&2
  result="$(python3 "$BENCH_PY" produce --bootstrap "$bootstrap" --topic ab \
    --record-bytes "$record_bytes" --seconds "$seconds" --warmup-seconds 3)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  rm -rf "$dir" # GiBs per run: keep only the log
  local mib
  mib="$(python3 -c 'import json,sys; print(round(json.load(sys.stdin)["mib_per_s"], 1))' <<<"$result")"
  echo "round $round $label: $mib MiB/s"
  echo "$label $mib" >>"$work/results"
}

for round in $(seq "$rounds"); do
  run_one before "$before_bin" "$round"
  run_one after "$after_bin" "$round"
done
python3 - "$work/results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, mib = line.split()
    runs.setdefault(label, []).append(float(mib))
for label in ("before", "after"):
    values = runs.get(label, [])
    print(f"{label}: median {statistics.median(values):.1f} MiB/s over {len(values)} runs "
          f"[{min(values):.1f}-{max(values):.1f}]")
EOF
