#!/usr/bin/env bash
# run.sh — Tern's end-to-end load bench: real Kafka clients against a real broker on loopback.
#
# Usage:
#   benches/e2e/run.sh [--target tern|kafka|kafka-fsync|tern-cluster|kafka-cluster|tansu-memory]
#                      [--seconds S]
#                      [--warmup S] [--repeats N] [--sizes "100 1024 65536"]
#                      [--partitions "1 6"] [--rate R] [--results-dir D] [--data-root D]
#                      [--tern-bin PATH] [--no-limits] [--limits-only] [--no-fixed-rate]
#
#   --target      broker under test (default tern):
#                   tern          target/release/tern (or --tern-bin), fdatasync before every ack
#                   kafka         Apache Kafka 4.4.0 with its defaults (page cache, no fsync)
#                   kafka-fsync   Kafka with log.flush.interval.messages=1 (fsync per append)
#                   tern-cluster  three tern processes on this machine (a cluster: every broker a
#                                 controller voter, shards unpinned), topics of 3 replicas
#                   kafka-cluster three Apache Kafka 4.4.0 KRaft nodes (kafka.sh start-cluster,
#                                 defaults: page cache, no fsync), topics of 3 replicas
#                   tansu-memory  tansu with its in-memory storage engine (if `tansu` is on PATH)
#   --seconds     measured seconds of each producer run (default 10; the documented full run: 30)
#   --warmup      seconds before measuring, per producer run (default 3; full run: 10)
#   --repeats     repetitions of the whole matrix (default 1; full run: 5)
#   --sizes       record sizes in bytes (default "100 1024 65536")
#   --partitions  partition counts (default "1 6")
#   --rate        records/s of the fixed-rate latency run, 1 KiB records, linger.ms=0 (10000)
#   --results-dir where results.csv, results.md and logs go
#                 (default ~/.cache/tern-peers/results/<UTC time>-<target>)
#   --data-root   parent of the brokers' data dirs, and where fio writes (default /tmp)
#   --no-limits / --limits-only   skip / only run the machine limits (fio, iperf3)
#   --no-fixed-rate               skip the fixed-rate latency runs
#
# For every (repeat, size, partitions) a fresh broker on a fresh data dir gets a fresh topic;
# then, all with acks=all and each client's default idempotence (Java: on; librdkafka: off):
#   1. Java ProducerPerformance flat out (--throughput -1): a short calibration run finds the
#      rate, then a run of rate x (warmup + seconds) records with the first rate x warmup
#      records excluded (--warmup-records): MiB/s and latency p50/p99/p99.9 (steady state).
#   2. confluent_bench.py produce flat out (librdkafka): MiB/s and latency percentiles.
#   3. confluent_bench.py consume: assign()-based, reads the topic from the start for at most
#      --seconds: MiB/s.
#   4. Java ConsumerPerformance (it joins a consumer group): fetch MiB/s.
# Then, per partition count, the fixed-rate run (1 KiB at --rate/s, linger.ms=0) with both
# producers: latency at a moderate load (Kafka fsyncing every append may not keep up). Then
# the machine limits: fio sequential 1 MiB writes with fdatasync after each, and 4 KiB ones
# (on --data-root's filesystem), and iperf3 over 127.0.0.1. Every step runs under `timeout`;
# a failed step is recorded as a row whose note says so, and the run goes on.
#
# Output: a markdown table on stdout (benches/e2e/summarize.py: median and min-max over the
# repeats), results.csv and results.md in the results dir. MiB = 2^20 bytes (Kafka's "MB").
# Never run in CI.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly REPO="$(cd "$HERE/../.." && pwd)"
readonly KAFKA_SH="$REPO/benches/peers/kafka.sh"
readonly BENCH_PY="$HERE/confluent_bench.py"
readonly CSV_HEADER="target,bench,tool,record_bytes,partitions,rate_per_s,repeat,mib_per_s,\
records_per_s,p50_ms,p99_ms,p999_ms,note"
readonly BROKER_START_TIMEOUT_S=90
readonly BROKER_STOP_TIMEOUT_S=30
readonly CALIBRATION_S=5

target=tern
measure_s=10
warmup_s=3
repeats=1
sizes="100 1024 65536"
partition_counts="1 6"
fixed_rate=10000
results_dir=""
data_root=/tmp
tern_bin="${CARGO_TARGET_DIR:-$REPO/target}/release/tern"
run_limits=1
run_matrix=1
run_fixed=1

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "run.sh: $*" >&2; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }

parse_arguments() {
    while (($#)); do
        case "$1" in
            --target) target="$2"; shift 2 ;;
            --seconds) measure_s="$2"; shift 2 ;;
            --warmup) warmup_s="$2"; shift 2 ;;
            --repeats) repeats="$2"; shift 2 ;;
            --sizes) sizes="$2"; shift 2 ;;
            --partitions) partition_counts="$2"; shift 2 ;;
            --rate) fixed_rate="$2"; shift 2 ;;
            --results-dir) results_dir="$2"; shift 2 ;;
            --data-root) data_root="$2"; shift 2 ;;
            --tern-bin) tern_bin="$2"; shift 2 ;;
            --no-limits) run_limits=0; shift ;;
            --limits-only) run_matrix=0; run_fixed=0; shift ;;
            --no-fixed-rate) run_fixed=0; shift ;;
            -h | --help) usage 0 ;;
            *) usage 1 ;;
        esac
    done
    case "$target" in
        tern | kafka | kafka-fsync | tern-cluster | kafka-cluster | tansu-memory) ;;
        *) die "unknown target $target" ;;
    esac
    [[ -n "$results_dir" ]] || \
        results_dir="$HOME/.cache/tern-peers/results/$(date -u +%Y%m%dT%H%M%SZ)-$target"
    mkdir -p "$results_dir/logs"
    results_dir="$(cd "$results_dir" && pwd)"
}

# --- rows -----------------------------------------------------------------------------------

csv() { echo "$CSV_HEADER" > "$results_dir/results.csv"; }

row() {  # bench tool size partitions rate repeat mib rps p50 p99 p999 note
    local IFS=,
    echo "$target,$*" >> "$results_dir/results.csv"
}

failed_row() {  # bench tool size partitions rate repeat note
    row "$1" "$2" "$3" "$4" "$5" "$6" "" "" "" "" "" "failed: $7"
    say "FAILED $1 $2 size=$3 partitions=$4: $7"
}

json_field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); \
print("" if v is None else v)' "$1" "$2"; }

# --- broker lifecycle -----------------------------------------------------------------------

free_port() { free_ports 1; }
# N distinct free loopback ports, comma-separated (all bound at once, so none repeats).
free_ports() {
    python3 -c 'import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets: s.bind(("127.0.0.1", 0))
print(",".join(str(s.getsockname()[1]) for s in sockets))' "$1"
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

broker_pid=""
broker_port=""
broker_data=""
# A cluster target's brokers: ports, tern pids.
cluster_ports=()
cluster_pids=()
readonly CLUSTER_NODES=3

wait_for_port() {  # pid port log
    local deadline=$((SECONDS + BROKER_START_TIMEOUT_S))
    until port_open "$2"; do
        kill -0 "$1" 2> /dev/null || { tail -n 20 "$3" >&2; die "broker exited at start"; }
        ((SECONDS < deadline)) || die "broker not listening after ${BROKER_START_TIMEOUT_S}s"
        sleep 0.2
    done
}

broker_start() {  # label
    broker_port="$(free_port)"
    broker_data="$(mktemp -d "$data_root/tern-bench-data.XXXXXX")"
    local log="$results_dir/logs/broker-$1.log"
    case "$target" in
        tern)
            "$tern_bin" --data-dir "$broker_data" --listen "127.0.0.1:$broker_port" \
                --log-level warn > "$log" 2>&1 < /dev/null &
            broker_pid=$!
            wait_for_port "$broker_pid" "$broker_port" "$log" ;;
        kafka | kafka-fsync)
            local flush=()
            [[ "$target" == kafka-fsync ]] && flush=(--flush-every-message)
            "$KAFKA_SH" start --port "$broker_port" --data-dir "$broker_data" "${flush[@]}" \
                > "$log" 2>&1
            broker_pid="" ;;
        tern-cluster) tern_cluster_start "$log" ;;
        kafka-cluster)
            IFS=, read -ra cluster_ports <<< "$(free_ports "$CLUSTER_NODES")"
            local list; list="$(IFS=,; echo "${cluster_ports[*]}")"
            "$KAFKA_SH" start-cluster --ports "$list" --data-dir "$broker_data" > "$log" 2>&1
            broker_port="${cluster_ports[0]}" broker_pid="" ;;
        tansu-memory)
            tansu broker --storage-engine "memory://tansu/" \
                --listener-url "tcp://127.0.0.1:$broker_port" \
                --advertised-listener-url "tcp://127.0.0.1:$broker_port" > "$log" 2>&1 &
            broker_pid=$!
            wait_for_port "$broker_pid" "$broker_port" "$log" ;;
    esac
}

# Three tern processes: node ids 1-3, each a controller voter; shards unpinned (three
# processes share the machine's cores).
tern_cluster_start() {  # log
    IFS=, read -ra cluster_ports <<< "$(free_ports $((2 * CLUSTER_NODES)))"
    local voters="" index
    for ((index = 0; index < CLUSTER_NODES; index++)); do
        voters+="${voters:+,}$((index + 1))@127.0.0.1:${cluster_ports[CLUSTER_NODES + index]}"
    done
    for ((index = 0; index < CLUSTER_NODES; index++)); do
        "$tern_bin" --data-dir "$broker_data/node-$((index + 1))" \
            --listen "127.0.0.1:${cluster_ports[index]}" --node-id $((index + 1)) \
            --peer-listen "127.0.0.1:${cluster_ports[CLUSTER_NODES + index]}" \
            --controller-voters "$voters" --pin-shards false --log-level warn \
            > "${1%.log}-node-$((index + 1)).log" 2>&1 < /dev/null &
        cluster_pids+=("$!")
    done
    for ((index = 0; index < CLUSTER_NODES; index++)); do
        wait_for_port "${cluster_pids[index]}" "${cluster_ports[index]}" \
            "${1%.log}-node-$((index + 1)).log"
    done
    cluster_ports=("${cluster_ports[@]:0:CLUSTER_NODES}")
    broker_port="${cluster_ports[0]}"
}

broker_stop() {
    if ((${#cluster_pids[@]})); then
        kill -TERM "${cluster_pids[@]}" 2> /dev/null || true
        local deadline=$((SECONDS + BROKER_STOP_TIMEOUT_S)) pid
        for pid in "${cluster_pids[@]}"; do
            while kill -0 "$pid" 2> /dev/null && ((SECONDS < deadline)); do sleep 0.2; done
            kill -KILL "$pid" 2> /dev/null || true
            wait "$pid" 2> /dev/null || true
        done
    elif [[ "$target" == kafka-cluster && ${#cluster_ports[@]} -gt 0 ]]; then
        local list; list="$(IFS=,; echo "${cluster_ports[*]}")"
        "$KAFKA_SH" stop-cluster --ports "$list" 2> /dev/null || true
    elif [[ -n "$broker_pid" ]]; then
        kill -TERM "$broker_pid" 2> /dev/null || true
        local deadline=$((SECONDS + BROKER_STOP_TIMEOUT_S))
        while kill -0 "$broker_pid" 2> /dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL "$broker_pid" 2> /dev/null || true
        wait "$broker_pid" 2> /dev/null || true
    elif [[ -n "$broker_port" ]]; then
        "$KAFKA_SH" stop --port "$broker_port" 2> /dev/null || true
    fi
    [[ -n "$broker_data" ]] && rm -rf "$broker_data"
    broker_pid="" broker_port="" broker_data=""
    cluster_ports=() cluster_pids=()
}

trap broker_stop EXIT

bootstrap() {
    if ((${#cluster_ports[@]})); then
        local port list=""
        for port in "${cluster_ports[@]}"; do list+="${list:+,}127.0.0.1:$port"; done
        echo "$list"
    else
        echo "127.0.0.1:$broker_port"
    fi
}

is_cluster() { [[ "$target" == *-cluster ]]; }

create_topic() {  # topic partitions
    local replication=1
    is_cluster && replication=$CLUSTER_NODES
    # A cluster's controller may take a moment to register every broker: retry for 60 s.
    local deadline=$((SECONDS + 60))
    until timeout 60 python3 "$BENCH_PY" create-topic --bootstrap "$(bootstrap)" \
        --topic "$1" --partitions "$2" --replication-factor "$replication" > /dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# --- producers ------------------------------------------------------------------------------

java_producer() {  # log topic size records warmup_records throughput linger_ms timeout_s
    timeout -s TERM "$8" "$KAFKA_SH" tool org.apache.kafka.tools.ProducerPerformance \
        --topic "$2" --record-size "$3" --num-records "$4" --warmup-records "$5" \
        --throughput "$6" --reporting-interval 1000 \
        --command-property "bootstrap.servers=$(bootstrap)" acks=all \
        "linger.ms=$7" > "$1" 2>&1
}

# Records/s of the last full reporting interval of a short flat-out run (killed by timeout).
calibrate() {  # topic size
    local log="$results_dir/logs/calibrate-$1.log"
    java_producer "$log" "$1" "$2" 1000000000 0 -1 5 $((CALIBRATION_S + 4)) || true
    grep -E '^[0-9]+ records sent, [0-9.]+ records/sec' "$log" | tail -n 1 | \
        sed -E 's/^[0-9]+ records sent, ([0-9]+)(\.[0-9]+)? records\/sec.*/\1/' || true
}

# "N steady state records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
#  p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
readonly JAVA_SUMMARY_REGEX='.* records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\).*, '\
'([0-9.]+) ms 50th, [0-9.]+ ms 95th, ([0-9.]+) ms 99th, ([0-9.]+) ms 99\.9th\.'
parse_java_producer() {  # log -> "mib rps p50 p99 p999"
    grep 'steady state records sent' "$1" | tail -n 1 | \
        sed -E "s|$JAVA_SUMMARY_REGEX|\\2 \\1 \\3 \\4 \\5|" || true
}

run_java_producer() {  # bench topic size partitions repeat rate(-1: flat out) linger_ms
    local bench="$1" topic="$2" size="$3" partitions="$4" repeat="$5" rate="$6" linger="$7"
    local per_s="$rate"
    if [[ "$rate" == -1 ]]; then
        per_s="$(calibrate "$topic" "$size")"
        [[ -n "$per_s" && "$per_s" -gt 0 ]] || {
            failed_row "$bench" java-producer "$size" "$partitions" "$rate" "$repeat" \
                "calibration produced nothing (see logs/calibrate-$topic.log)"
            return 0
        }
    fi
    local records=$((per_s * (warmup_s + measure_s)))
    local warmup_records=$((per_s * warmup_s))
    local log="$results_dir/logs/java-producer-$topic.log"
    local limit_s=$((3 * (warmup_s + measure_s) + 60))
    if ! java_producer "$log" "$topic" "$size" "$records" "$warmup_records" "$rate" \
        "$linger" "$limit_s"; then
        failed_row "$bench" java-producer "$size" "$partitions" "$rate" "$repeat" \
            "non-zero exit (see logs/java-producer-$topic.log)"
        return 0
    fi
    local fields; fields="$(parse_java_producer "$log")"
    [[ -n "$fields" ]] || {
        failed_row "$bench" java-producer "$size" "$partitions" "$rate" "$repeat" "no summary"
        return 0
    }
    # shellcheck disable=SC2086 # five numbers
    row "$bench" java-producer "$size" "$partitions" "$rate" "$repeat" $fields ""
    say "java-producer size=$size partitions=$partitions rate=$rate: MiB/s rps p50 p99 p999 =" \
        "$fields"
}

run_confluent_producer() {  # bench topic size partitions repeat rate(-1: flat out) linger_ms
    local bench="$1" topic="$2" size="$3" partitions="$4" repeat="$5" rate="$6" linger="$7"
    local rate_argument=()
    [[ "$rate" == -1 ]] || rate_argument=(--rate "$rate")
    local log="$results_dir/logs/confluent-producer-$topic.log" out
    if ! out="$(timeout $((2 * (warmup_s + measure_s) + 60)) python3 "$BENCH_PY" produce \
        --bootstrap "$(bootstrap)" --topic "$topic" --record-bytes "$size" \
        --seconds "$measure_s" --warmup-seconds "$warmup_s" --linger-ms "$linger" \
        "${rate_argument[@]}" 2> "$log")"; then
        failed_row "$bench" confluent-producer "$size" "$partitions" "$rate" "$repeat" \
            "$(tail -n 1 "$log" | tr ',' ';')"
        return 0
    fi
    local mib rps p50 p99 p999
    mib="$(json_field "$out" mib_per_s)"; rps="$(json_field "$out" records_per_s)"
    p50="$(json_field "$out" p50_ms)"; p99="$(json_field "$out" p99_ms)"
    p999="$(json_field "$out" p999_ms)"
    row "$bench" confluent-producer "$size" "$partitions" "$rate" "$repeat" \
        "$mib" "$rps" "$p50" "$p99" "$p999" ""
    say "confluent-producer size=$size partitions=$partitions rate=$rate: $out"
}

# --- consumers ------------------------------------------------------------------------------

run_confluent_consumer() {  # topic size partitions repeat
    local topic="$1" size="$2" partitions="$3" repeat="$4" out
    local log="$results_dir/logs/confluent-consumer-$topic.log"
    # Reads for at most --seconds: a Python loop is slower than the brokers with small records.
    if ! out="$(timeout $((measure_s + 90)) python3 "$BENCH_PY" consume \
        --bootstrap "$(bootstrap)" --topic "$topic" --seconds "$measure_s" 2> "$log")"; then
        failed_row consume confluent-consumer "$size" "$partitions" -1 "$repeat" \
            "$(tail -n 1 "$log" | tr ',' ';')"
        return 0
    fi
    local note=""
    [[ "$(json_field "$out" complete)" == True ]] || \
        note="time-bounded: read $(json_field "$out" records) of $(json_field "$out" \
            records_expected)"
    row consume confluent-consumer "$size" "$partitions" -1 "$repeat" \
        "$(json_field "$out" mib_per_s)" "$(json_field "$out" records_per_s)" "" "" "" "$note"
    say "confluent-consumer size=$size partitions=$partitions: $out"
}

# ConsumerPerformance joins a consumer group (it has no assign mode).
# Its CSV line: start, end, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec,
# fetch.nMsg.sec; fetch.* leave out the group join, like the confluent consumer's figure.
run_java_consumer() {  # topic size partitions repeat
    local topic="$1" size="$2" partitions="$3" repeat="$4" total
    local log="$results_dir/logs/java-consumer-$topic.log"
    total="$(json_field "$(timeout 60 python3 "$BENCH_PY" end-offsets \
        --bootstrap "$(bootstrap)" --topic "$topic")" total)"
    if ! timeout $((2 * measure_s + 90)) "$KAFKA_SH" tool \
        org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$(bootstrap)" \
        --topic "$topic" --num-records "$total" --timeout 15000 > "$log" 2>&1; then
        failed_row consume java-consumer "$size" "$partitions" -1 "$repeat" \
            "exit status (see logs/java-consumer-$topic.log)"
        return 0
    fi
    local line; line="$(grep -E '^[0-9]{4}-' "$log" | tail -n 1 | tr -d ' ')"
    [[ -n "$line" ]] || {
        failed_row consume java-consumer "$size" "$partitions" -1 "$repeat" "no summary"
        return 0
    }
    local consumed mib rps note=""
    consumed="$(cut -d, -f5 <<< "$line")"; mib="$(cut -d, -f9 <<< "$line")"
    rps="$(cut -d, -f10 <<< "$line")"
    ((consumed >= total)) || note="incomplete: $consumed of $total"
    row consume java-consumer "$size" "$partitions" -1 "$repeat" "$mib" "$rps" "" "" "" "$note"
    say "java-consumer size=$size partitions=$partitions: fetch MiB/s $mib"
}

# --- matrix ---------------------------------------------------------------------------------

run_flat_out() {  # size partitions repeat
    local size="$1" partitions="$2" repeat="$3"
    local topic="flat-s$size-p$partitions-r$repeat"
    say "== $target flat out: size=$size partitions=$partitions repeat=$repeat"
    broker_start "$topic"
    if create_topic "$topic" "$partitions"; then
        run_java_producer produce-max "$topic" "$size" "$partitions" "$repeat" -1 5
        run_confluent_producer produce-max "$topic" "$size" "$partitions" "$repeat" -1 5
        run_confluent_consumer "$topic" "$size" "$partitions" "$repeat"
        run_java_consumer "$topic" "$size" "$partitions" "$repeat"
    else
        failed_row produce-max create-topic "$size" "$partitions" -1 "$repeat" \
            "could not create $topic"
    fi
    broker_stop
}

run_fixed_rate() {  # partitions repeat
    local partitions="$1" repeat="$2" size=1024
    local topic="fixed-s$size-p$partitions-r$repeat"
    say "== $target fixed rate $fixed_rate/s: partitions=$partitions repeat=$repeat"
    broker_start "$topic"
    if create_topic "$topic" "$partitions"; then
        run_java_producer produce-fixed "$topic" "$size" "$partitions" "$repeat" \
            "$fixed_rate" 0
        run_confluent_producer produce-fixed "$topic" "$size" "$partitions" "$repeat" \
            "$fixed_rate" 0
    else
        failed_row produce-fixed create-topic "$size" "$partitions" "$fixed_rate" "$repeat" \
            "could not create $topic"
    fi
    broker_stop
}

# --- machine limits -------------------------------------------------------------------------

run_fio() {  # block size in bytes
    local block="$1" dir out
    dir="$(mktemp -d "$data_root/tern-bench-fio.XXXXXX")"
    local log="$results_dir/logs/fio-$block.json"
    if ! timeout $((measure_s + 120)) fio --name="seq-fdatasync-$block" --directory="$dir" \
        --rw=write --bs="$block" --size=1G --fdatasync=1 --ioengine=psync \
        --runtime="$measure_s" --time_based --output-format=json > "$log" 2>&1; then
        rm -rf "$dir"
        failed_row limits fio-seq-fdatasync "$block" "" "" "" "see logs/fio-$block.json"
        return 0
    fi
    rm -rf "$dir"
    out="$(python3 - "$log" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
write, sync = job["write"], job["sync"]["lat_ns"]
pct = sync.get("percentile", {})
ms = lambda key: "" if key not in pct else round(pct[key] / 1e6, 3)
print(round(write["bw_bytes"] / 2**20, 2), round(write["iops"], 1),
      ms("50.000000"), ms("99.000000"), ms("99.900000"))
EOF
)"
    # shellcheck disable=SC2086 # five numbers
    row limits fio-seq-fdatasync "$block" "" "" 1 $out "p*: fdatasync latency"
    say "fio bs=$block fdatasync each: MiB/s IOPS p50 p99 p999 = $out"
}

run_loopback() {
    command -v iperf3 > /dev/null || {
        failed_row limits iperf3-loopback "" "" "" "" "iperf3 missing (apt-get install iperf3)"
        return 0
    }
    local port; port="$(free_port)"
    local log="$results_dir/logs/iperf3.json"
    # -1: the server serves one test and exits. No port probe: it would be that one client.
    timeout $((measure_s + 30)) iperf3 -s -1 -B 127.0.0.1 -p "$port" > /dev/null 2>&1 &
    local server=$!
    sleep 1
    if ! timeout $((measure_s + 20)) iperf3 -c 127.0.0.1 -p "$port" -t "$measure_s" -J \
        > "$log" 2>&1; then
        kill "$server" 2> /dev/null || true
        failed_row limits iperf3-loopback "" 1 "" "" "see logs/iperf3.json"
        return 0
    fi
    wait "$server" 2> /dev/null || true
    local mib
    mib="$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; \
print(round(e["sum_received"]["bits_per_second"] / 8 / 2**20, 1))' "$log")"
    row limits iperf3-loopback "" 1 "" 1 "$mib" "" "" "" "" "one TCP stream"
    say "iperf3 loopback, one stream: $mib MiB/s"
}

# --- main -----------------------------------------------------------------------------------

record_environment() {
    {
        echo "date_utc=$(date -u +%FT%TZ)"
        echo "target=$target seconds=$measure_s warmup=$warmup_s repeats=$repeats"
        echo "sizes=$sizes partitions=$partition_counts fixed_rate=$fixed_rate"
        echo "kernel=$(uname -r) cores=$(nproc) memory=$(free -g | awk '/Mem:/{print $2}')GiB"
        echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "tern_commit=$(git -C "$REPO" rev-parse --short HEAD 2> /dev/null || echo unknown)"
        echo "data_root=$data_root filesystem=$(df -T "$data_root" | awk 'NR==2{print $1, $2}')"
        if [[ "$target" == kafka* ]]; then echo "kafka=${KAFKA_VERSION:-4.4.0}"; fi
        if [[ "$target" == tern* ]]; then echo "tern_bin=$tern_bin"; fi
    } > "$results_dir/environment.txt"
}

main() {
    parse_arguments "$@"
    [[ "$target" != tern* || "$run_matrix" == 0 || -x "$tern_bin" ]] || \
        die "no tern binary at $tern_bin (cargo build --release -p tern)"
    [[ "$target" != tansu-memory || "$run_matrix" == 0 ]] || command -v tansu > /dev/null || \
        die "tansu is not on PATH (cargo install tansu)"
    if [[ "$target" == kafka* ]]; then "$KAFKA_SH" classpath > /dev/null; fi
    csv
    record_environment
    say "results in $results_dir"
    local repeat size partitions
    for ((repeat = 1; repeat <= repeats; repeat++)); do
        if ((run_matrix)); then
            for size in $sizes; do
                for partitions in $partition_counts; do
                    run_flat_out "$size" "$partitions" "$repeat"
                done
            done
        fi
        if ((run_fixed)); then
            for partitions in $partition_counts; do
                run_fixed_rate "$partitions" "$repeat"
            done
        fi
    done
    if ((run_limits)); then
        run_fio 1048576
        run_fio 4096
        run_loopback
    fi
    echo "loadavg_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$results_dir/environment.txt"
    python3 "$HERE/summarize.py" "$results_dir/results.csv" "$results_dir/environment.txt" \
        | tee "$results_dir/results.md"
}

# One line: bash has read all of it before running main, so editing this file mid-run is safe.
main "$@"; exit
