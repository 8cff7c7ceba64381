#!/usr/bin/env bash
# fetch_ab.sh — two Tern builds, one consume cell, alternating rounds in one run: consumer
# throughput and the broker's CPU-seconds per GiB fetched.
#
# Usage:
#   benches/e2e/fetch_ab.sh BEFORE_BIN AFTER_BIN [--rounds N] [--produce-seconds S]
#                           [--record-bytes B] [--partitions P] [--data-root D]
#
# For each round, each binary in turn (before first, then after) gets a fresh data dir and a
# fresh topic; confluent_bench.py produces flat out for S seconds (acks=all), then kcat (a C
# consumer, so the client is not the ceiling) reads every record from offset 0 to the end.
# The broker's user+system CPU time (from /proc/PID/stat) is taken before and after the
# consume. Prints one line per run and the medians of each build. Never run in CI.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly BENCH_PY="$HERE/confluent_bench.py"

[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
before_bin="$1" after_bin="$2"
shift 2
rounds=5 produce_seconds=10 record_bytes=65536 partitions=1 data_root=/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --produce-seconds) produce_seconds="$2"; shift 2 ;;
    --record-bytes) record_bytes="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    *) echo "fetch_ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v kcat >/dev/null || { echo "fetch_ab.sh: needs kcat (apt-get install kcat)" >&2; exit 2; }

work="$(mktemp -d "$data_root/tern-fetch-ab.XXXXXX")"
pid=""
cleanup() {
  local status=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "fetch_ab.sh: failed; logs kept in $work" >&2; fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"
readonly TICKS_PER_SECOND="$(getconf CLK_TCK)"

cpu_ticks() { # pid: utime + stime, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

run_one() { # label binary round
  local label="$1" binary="$2" round="$3" dir="$work/$1-$3"
  "$binary" --listen "$bootstrap" --data-dir "$dir" >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  python3 "$BENCH_PY" create-topic --bootstrap "$bootstrap" --topic ab --partitions "$partitions" >/dev/null
  echo "round $round $label: producing ($dir.log)" >&2
  python3 "$BENCH_PY" produce --bootstrap "$bootstrap" --topic ab \
    --record-bytes "$record_bytes" --seconds "$produce_seconds" >/dev/null
  local bytes ticks_before ticks_after started finished
  bytes="$(du -sb "$dir" | cut -f1)"
  sync
  ticks_before="$(cpu_ticks "$pid")"
  started="$(date +%s.%N)"
  local records
  records="$(kcat -C -b "$bootstrap" -t ab -o beginning -e -q -f '\n' | wc -l)"
  finished="$(date +%s.%N)"
  ticks_after="$(cpu_ticks "$pid")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  rm -rf "$dir" # GiBs per run: keep only the log
  python3 - "$label" "$round" "$records" "$record_bytes" "$started" "$finished" \
    "$ticks_before" "$ticks_after" "$TICKS_PER_SECOND" "$bytes" >>"$work/results" <<'EOF'
import sys
label, round_, records, record_bytes, started, finished, before, after, hz, disk = sys.argv[1:]
gib = int(records) * int(record_bytes) / 2**30
seconds = float(finished) - float(started)
cpu = (int(after) - int(before)) / int(hz)
print(f"{label} {gib * 1024 / seconds:.1f} {cpu / gib:.3f} {gib:.2f}")
EOF
  tail -1 "$work/results" | awk -v r="$round" '{ printf "round %s %s: %s MiB/s, %s CPU-s per GiB fetched (%s GiB)\n", r, $1, $2, $3, $4 }'
}

for round in $(seq "$rounds"); do
  run_one before "$before_bin" "$round"
  run_one after "$after_bin" "$round"
done
python3 - "$work/results" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, mib, cpu, _ = line.split()
    runs.setdefault(label, []).append((float(mib), float(cpu)))
for label in ("before", "after"):
    values = runs.get(label, [])
    mibs = [mib for mib, _ in values]
    cpus = [cpu for _, cpu in values]
    print(f"{label}: consume median {statistics.median(mibs):.1f} MiB/s "
          f"[{min(mibs):.1f}-{max(mibs):.1f}], broker CPU median "
          f"{statistics.median(cpus):.3f} s/GiB [{min(cpus):.3f}-{max(cpus):.3f}] "
          f"over {len(values)} runs")
EOF
