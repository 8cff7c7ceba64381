#!/usr/bin/env bash
# kafka.sh — Apache Kafka 4.4.0 (Scala 2.13 build) as a benchmark peer for Tern.
#
# Usage:
#   kafka.sh start [--port P] [--data-dir D] [--flush-every-message]
#   kafka.sh start-cluster --ports P1,P2,P3 [--data-dir D] [--flush-every-message]
#   kafka.sh stop  [--port P]
#   kafka.sh stop-cluster --ports P1,P2,P3
#   kafka.sh classpath
#   kafka.sh tool <ClassName> [args...]
#
#   start      single-node KRaft broker+controller (node.id=1) on 127.0.0.1:P (default 19092);
#              the controller listens on a free loopback port. Formats D (default: a fresh
#              temporary directory, removed by stop) when it holds no meta.properties, starts
#              `kafka.Kafka` in the background, writes a pid file and waits (at most 90 s)
#              until P accepts.
#              --flush-every-message sets log.flush.interval.messages=1: Kafka fsyncs the
#              partition log inside every append (each produce batch), before it answers: the
#              durable comparison. Kafka's default leaves flushing to the OS page cache and
#              relies on replication for durability.
#   start-cluster
#              one KRaft node per port (node.id 1, 2, ... in port order), each a broker and a
#              voter of the controller quorum, formatted with one cluster id and started
#              together; waits until every port accepts. Replication factor min(3, nodes) for
#              default.replication.factor, __consumer_offsets and the transaction log
#              (min.insync.replicas 2 for the latter when there are 3). Each node's data is
#              D/node-N (default: a temporary directory per node). Stop each with stop --port.
#   stop       SIGTERM the broker started on P, wait at most 60 s, then SIGKILL.
#   stop-cluster
#              SIGTERM every node at once, wait at most 20 s, then SIGKILL the rest: the last
#              broker of a cluster waits for a controller quorum in its controlled shutdown
#              that nobody is left to form.
#   classpath  print the classpath (resolving it first).
#   tool       run a Kafka tool class with that classpath, e.g.
#                kafka.sh tool org.apache.kafka.tools.ProducerPerformance --help
#                kafka.sh tool org.apache.kafka.tools.ConsumerPerformance --help
#                kafka.sh tool org.apache.kafka.tools.TopicCommand --help
#
# Jars are never part of the repository: Maven resolves org.apache.kafka:kafka_2.13 and
# org.apache.kafka:kafka-tools, plus log4j2 and its SLF4J 1.x binding (Kafka pins slf4j-api
# 1.7), from Maven Central into ${TERN_PEERS_CACHE:-~/.cache/tern-peers}/kafka-<version>/lib,
# through a throwaway pom there.
#
# Environment: KAFKA_VERSION (default 4.4.0), TERN_PEERS_CACHE, KAFKA_HEAP_OPTS (broker,
# default "-Xmx1G -Xms1G" as kafka-server-start.sh), KAFKA_TOOL_HEAP_OPTS (tools, default
# "-Xmx512M").
set -euo pipefail

readonly KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
readonly LOG4J_VERSION="2.24.3"
readonly CACHE_DIR="${TERN_PEERS_CACHE:-$HOME/.cache/tern-peers}"
readonly KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
readonly RUN_DIR="$CACHE_DIR/run"
readonly START_TIMEOUT_S=90
readonly STOP_TIMEOUT_S=60

die() { echo "kafka.sh: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }

# --- classpath ------------------------------------------------------------------------------

write_pom() {
    cat > "$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tern.bench</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

write_log4j_configs() {
    # The broker logs INFO to a file; tools log WARN to stderr so their reports stay readable.
    cat > "$KAFKA_HOME/log4j2-broker.properties" <<'EOF'
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
EOF
    cat > "$KAFKA_HOME/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

resolve() {
    if [[ -s "$KAFKA_HOME/classpath.txt" ]]; then return; fi
    command -v mvn > /dev/null || die "mvn not found (apt-get install -y maven)"
    mkdir -p "$KAFKA_HOME/lib"
    write_pom
    echo "kafka.sh: resolving Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME" >&2
    (cd "$KAFKA_HOME" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
        -DoutputDirectory="$KAFKA_HOME/lib" -DincludeScope=runtime) >&2
    ls "$KAFKA_HOME"/lib/*.jar > /dev/null || die "no jars in $KAFKA_HOME/lib"
    write_log4j_configs
    # Written last: its presence means the cache is complete.
    local jars=("$KAFKA_HOME"/lib/*.jar)
    (IFS=:; echo "${jars[*]}") > "$KAFKA_HOME/classpath.txt"
}

classpath() { resolve; cat "$KAFKA_HOME/classpath.txt"; }

run_tool() {
    (($# >= 1)) || die "tool needs a class name"
    local cp; cp="$(classpath)"
    # shellcheck disable=SC2086 # heap options are a word list
    exec java ${KAFKA_TOOL_HEAP_OPTS:--Xmx512M} -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2-tools.properties" \
        -cp "$cp" "$@"
}

# --- start / stop ---------------------------------------------------------------------------

free_port() { free_ports 1; }
# N distinct free loopback ports, comma-separated (all bound at once, so none repeats).
free_ports() {
    python3 -c 'import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets: s.bind(("127.0.0.1", 0))
print(",".join(str(s.getsockname()[1]) for s in sockets))' "$1"
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

pid_file() { echo "$RUN_DIR/kafka-$1.pid"; }

# dir port controller_port data_dir flush_every_message node_id quorum_voters replication_factor
write_server_properties() {
    local dir="$1" port="$2" controller_port="$3" data_dir="$4" flush="$5" node_id="$6"
    local voters="$7" replication="$8" min_insync=1
    ((replication < 3)) || min_insync=2
    cat > "$dir/server.properties" <<EOF
# Generated by benches/peers/kafka.sh — KRaft, Kafka $KAFKA_VERSION.
process.roles=broker,controller
node.id=$node_id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir
num.partitions=1
default.replication.factor=$replication
offsets.topic.replication.factor=$replication
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_insync
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_insync
group.initial.rebalance.delay.ms=0
EOF
    if [[ "$flush" == 1 ]]; then
        echo "log.flush.interval.messages=1" >> "$dir/server.properties"
    fi
}

start() {
    local port=19092 data_dir="" flush=0
    while (($#)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            --flush-every-message) flush=1; shift ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    resolve
    local controller_port; controller_port="$(free_port)"
    launch_node "$port" "$data_dir" "$flush" 1 "$controller_port" \
        "1@127.0.0.1:$controller_port" "$(new_cluster_id)" 1
    wait_node "$port"
}

start_cluster() {
    local ports_list="" data_dir="" flush=0
    while (($#)); do
        case "$1" in
            --ports) ports_list="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            --flush-every-message) flush=1; shift ;;
            *) die "start-cluster: unknown argument $1" ;;
        esac
    done
    local ports controller_ports
    IFS=, read -ra ports <<< "$ports_list"
    local nodes=${#ports[@]}
    ((nodes >= 1)) || die "start-cluster needs --ports P1,P2,..."
    resolve
    IFS=, read -ra controller_ports <<< "$(free_ports "$nodes")"
    local voters="" index
    for ((index = 0; index < nodes; index++)); do
        voters+="${voters:+,}$((index + 1))@127.0.0.1:${controller_ports[index]}"
    done
    local replication=$((nodes < 3 ? nodes : 3)) cluster_id; cluster_id="$(new_cluster_id)"
    for ((index = 0; index < nodes; index++)); do
        launch_node "${ports[index]}" "${data_dir:+$data_dir/node-$((index + 1))}" "$flush" \
            "$((index + 1))" "${controller_ports[index]}" "$voters" "$cluster_id" "$replication"
    done
    # Brokers open their port only once the quorum elected a leader: wait after launching all.
    for port in "${ports[@]}"; do wait_node "$port"; done
}

new_cluster_id() { KAFKA_TOOL_HEAP_OPTS=-Xmx256M run_tool_captured kafka.tools.StorageTool random-uuid; }

# Formats (when new) and starts one node in the background; returns at once.
# port data_dir('' = temporary) flush node_id controller_port quorum_voters cluster_id replication
launch_node() {
    local port="$1" data_dir="$2" flush="$3" node_id="$4" controller_port="$5" voters="$6"
    local cluster_id="$7" replication="$8"
    local pidf; pidf="$(pid_file "$port")"
    if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2> /dev/null; then
        die "a Kafka started by this script already runs on port $port (pid $(cat "$pidf"))"
    fi
    port_open "$port" && die "port $port is already in use"
    mkdir -p "$RUN_DIR"
    local temporary_data=""
    if [[ -z "$data_dir" ]]; then
        data_dir="$(mktemp -d /tmp/tern-peer-kafka.XXXXXX)"
        temporary_data="$data_dir"
    fi
    mkdir -p "$data_dir"
    data_dir="$(cd "$data_dir" && pwd)"
    local conf_dir="$RUN_DIR/kafka-$port"
    rm -rf "$conf_dir" && mkdir -p "$conf_dir"
    write_server_properties "$conf_dir" "$port" "$controller_port" "$data_dir/log" "$flush" \
        "$node_id" "$voters" "$replication"
    local cp; cp="$(classpath)"
    if [[ ! -f "$data_dir/log/meta.properties" ]]; then
        KAFKA_TOOL_HEAP_OPTS=-Xmx256M run_tool_captured kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$conf_dir/server.properties" > "$conf_dir/format.log"
    fi
    # The JVM flags kafka-server-start.sh / kafka-run-class.sh use by default.
    # shellcheck disable=SC2086
    nohup java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true -Dkafka.logs.dir="$conf_dir" \
        -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2-broker.properties" \
        -cp "$cp" kafka.Kafka "$conf_dir/server.properties" \
        > "$conf_dir/stdout.log" 2>&1 < /dev/null &
    echo "$!" > "$pidf"
    # stop removes a data dir that start made up; one given with --data-dir is the caller's.
    echo "$temporary_data" > "$RUN_DIR/kafka-$port.temporary-data"
    echo "kafka.sh: Kafka $KAFKA_VERSION node $node_id pid $! for 127.0.0.1:$port, data" \
        "$data_dir, flush-every-message=$flush, logs $conf_dir" >&2
}

# Waits (at most START_TIMEOUT_S) until the node started on `port` accepts connections.
wait_node() {
    local port="$1" pid; pid="$(cat "$(pid_file "$port")")"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2> /dev/null; then
            tail -n 30 "$RUN_DIR/kafka-$port"/*.log >&2
            die "Kafka on port $port exited"
        fi
        if ((SECONDS >= deadline)); then
            stop --port "$port"
            die "Kafka on port $port not up in ${START_TIMEOUT_S}s"
        fi
        sleep 0.5
    done
    echo "kafka.sh: Kafka up on 127.0.0.1:$port" >&2
}

# A tool run whose stdout the caller captures (run_tool execs, this one does not).
run_tool_captured() { (run_tool "$@"); }

stop() {
    local port=19092
    while (($#)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            *) die "stop: unknown argument $1" ;;
        esac
    done
    local pidf; pidf="$(pid_file "$port")"
    [[ -f "$pidf" ]] || { echo "kafka.sh: nothing started on port $port" >&2; return 0; }
    local pid; pid="$(cat "$pidf")"
    if kill -0 "$pid" 2> /dev/null; then
        kill -TERM "$pid"
        local deadline=$((SECONDS + STOP_TIMEOUT_S))
        while kill -0 "$pid" 2> /dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        if kill -0 "$pid" 2> /dev/null; then
            echo "kafka.sh: pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; SIGKILL" >&2
            kill -KILL "$pid"
        fi
    fi
    rm -f "$pidf"
    local temporary_data_file="$RUN_DIR/kafka-$port.temporary-data"
    if [[ -f "$temporary_data_file" ]]; then
        local temporary_data; temporary_data="$(cat "$temporary_data_file")"
        if [[ "$temporary_data" == /tmp/tern-peer-kafka.* ]]; then rm -rf "$temporary_data"; fi
        rm -f "$temporary_data_file"
    fi
    echo "kafka.sh: stopped Kafka on port $port" >&2
}

stop_cluster() {
    local ports_list=""
    while (($#)); do
        case "$1" in
            --ports) ports_list="$2"; shift 2 ;;
            *) die "stop-cluster: unknown argument $1" ;;
        esac
    done
    local ports port pid
    IFS=, read -ra ports <<< "$ports_list"
    for port in "${ports[@]}"; do
        pid="$(cat "$(pid_file "$port")" 2> /dev/null)" || continue
        kill -TERM "$pid" 2> /dev/null || true
    done
    local deadline=$((SECONDS + 20))
    for port in "${ports[@]}"; do
        pid="$(cat "$(pid_file "$port")" 2> /dev/null)" || continue
        while kill -0 "$pid" 2> /dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    done
    # Whatever still runs is killed by stop at once (its SIGTERM was sent above).
    for port in "${ports[@]}"; do
        pid="$(cat "$(pid_file "$port")" 2> /dev/null)" || continue
        kill -KILL "$pid" 2> /dev/null || true
        stop --port "$port"
    done
}

main() {
    (($#)) || usage 1
    local command="$1"; shift
    case "$command" in
        start) start "$@" ;;
        start-cluster) start_cluster "$@" ;;
        stop) stop "$@" ;;
        stop-cluster) stop_cluster "$@" ;;
        classpath) classpath ;;
        tool) run_tool "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage 1 ;;
    esac
}

# One line: bash has read all of it before running main, so editing this file mid-run is safe.
main "$@"; exit
