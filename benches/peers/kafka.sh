#!/usr/bin/env bash
# kafka.sh — Apache Kafka 4.4.0 (Scala 2.13 build) as a benchmark peer for Tern.
#
# Usage:
#   kafka.sh start [--port P] [--data-dir D] [--flush-every-message]
#   kafka.sh stop  [--port P]
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
#   stop       SIGTERM the broker started on P, wait at most 60 s, then SIGKILL.
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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

pid_file() { echo "$RUN_DIR/kafka-$1.pid"; }

write_server_properties() {  # dir port controller_port data_dir flush_every_message
    local dir="$1" port="$2" controller_port="$3" data_dir="$4" flush="$5"
    cat > "$dir/server.properties" <<EOF
# Generated by benches/peers/kafka.sh — single-node KRaft, Kafka $KAFKA_VERSION.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir
num.partitions=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
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
    local pidf; pidf="$(pid_file "$port")"
    if [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2> /dev/null; then
        die "a Kafka started by this script already runs on port $port (pid $(cat "$pidf"))"
    fi
    port_open "$port" && die "port $port is already in use"
    resolve
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
    write_server_properties "$conf_dir" "$port" "$(free_port)" "$data_dir/log" "$flush"
    local cp; cp="$(classpath)"
    if [[ ! -f "$data_dir/log/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(KAFKA_TOOL_HEAP_OPTS=-Xmx256M run_tool_captured kafka.tools.StorageTool \
            random-uuid)"
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
    local pid=$!
    echo "$pid" > "$pidf"
    # stop removes a data dir that start made up; one given with --data-dir is the caller's.
    echo "$temporary_data" > "$RUN_DIR/kafka-$port.temporary-data"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_open "$port"; do
        kill -0 "$pid" 2> /dev/null || { tail -n 30 "$conf_dir"/*.log >&2; die "Kafka exited"; }
        if ((SECONDS >= deadline)); then
            stop --port "$port"
            die "Kafka not up in ${START_TIMEOUT_S}s"
        fi
        sleep 0.5
    done
    echo "kafka.sh: Kafka $KAFKA_VERSION pid $pid on 127.0.0.1:$port, data $data_dir," \
        "flush-every-message=$flush, logs $conf_dir" >&2
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

main() {
    (($#)) || usage 1
    local command="$1"; shift
    case "$command" in
        start) start "$@" ;;
        stop) stop "$@" ;;
        classpath) classpath ;;
        tool) run_tool "$@" ;;
        -h | --help | help) usage 0 ;;
        *) usage 1 ;;
    esac
}

# One line: bash has read all of it before running main, so editing this file mid-run is safe.
main "$@"; exit
