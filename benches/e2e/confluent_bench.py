#!/usr/bin/env python3
"""confluent_bench.py — librdkafka (confluent-kafka) load for Tern's end-to-end bench.

Usage:
  confluent_bench.py create-topic --bootstrap B --topic T --partitions N [--replication-factor R]
  confluent_bench.py produce      --bootstrap B --topic T --record-bytes S --seconds D
                                  [--warmup-seconds W] [--rate R] [--linger-ms L]
  confluent_bench.py consume      --bootstrap B --topic T --seconds D
  confluent_bench.py end-offsets  --bootstrap B --topic T

Every command prints one JSON object on stdout (errors go to stderr, exit status 1).

produce: acks=all, librdkafka's default idempotence (off), TCP_NODELAY as
  the Java client (librdkafka leaves Nagle on by default), flat out unless
  --rate (records/s) is given. Records produced during the first W seconds are the warm-up and
  are not measured. Latency is per record, from produce() to its delivery report; a flat-out
  run therefore measures client-side queueing as much as the broker.
consume: assign()s every partition from the beginning (no group: the figure is the fetch path)
  and reads until it reaches the end offsets taken at start, or D seconds pass. MiB/s counts
  value bytes over the time from the first record to the last.
Units: MiB = 2^20 bytes, as Kafka's perf tools print "MB".
"""

import argparse
import gc
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MIB = float(1 << 20)
LATENCY_SAMPLES_MAX = 2_000_000  # bound on memory: one float per record up to this count
POLL_BATCH_MAX = 10_000
CLIENT_TIMEOUT_S = 30.0


def fail(message):
    print(f"confluent_bench.py: {message}", file=sys.stderr)
    sys.exit(1)


def percentile_ms(sorted_seconds, fraction):
    if not sorted_seconds:
        return None
    index = min(len(sorted_seconds) - 1, int(fraction * len(sorted_seconds)))
    return round(sorted_seconds[index] * 1000.0, 3)


def create_topic(arguments):
    admin = AdminClient({"bootstrap.servers": arguments.bootstrap})
    topic = NewTopic(arguments.topic, num_partitions=arguments.partitions,
                     replication_factor=arguments.replication_factor)
    futures = admin.create_topics([topic], operation_timeout=CLIENT_TIMEOUT_S)
    try:
        futures[arguments.topic].result(timeout=CLIENT_TIMEOUT_S)
    except Exception as error:  # KafkaException carries the broker's error
        fail(f"create topic {arguments.topic}: {error}")
    wait_for_leaders(admin, arguments.topic, arguments.partitions)
    print(json.dumps({"topic": arguments.topic, "partitions": arguments.partitions}))


def wait_for_leaders(admin, topic, partitions):
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=CLIENT_TIMEOUT_S)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) == partitions:
            if all(p.leader >= 0 for p in found.partitions.values()):
                return
        time.sleep(0.2)
    fail(f"topic {topic}: no leader for all {partitions} partitions in {CLIENT_TIMEOUT_S}s")


class DeliveryStats:
    """Counts delivery reports; records latency only for records sent after the warm-up."""

    def __init__(self):
        self.delivered = 0
        self.errors = 0
        self.first_error = None
        self.measured_bytes = 0
        self.measured_count = 0
        self.latencies = []

    def callback_for(self, sent_at, measured, size):
        def on_delivery(error, _message):
            if error is not None:
                self.errors += 1
                self.first_error = self.first_error or str(error)
                return
            self.delivered += 1
            if measured:
                self.measured_count += 1
                self.measured_bytes += size
                if len(self.latencies) < LATENCY_SAMPLES_MAX:
                    self.latencies.append(time.monotonic() - sent_at)
        return on_delivery


def produce(arguments):
    producer = Producer({
        "bootstrap.servers": arguments.bootstrap,
        "acks": "all",
        "linger.ms": arguments.linger_ms,
        "queue.buffering.max.kbytes": 32768,  # the Java producer's buffer.memory (32 MiB)
        "socket.nagle.disable": True,  # as the Java client (TCP_NODELAY): no 40 ms stalls
    })
    value = b"x" * arguments.record_bytes
    stats = DeliveryStats()
    # The callbacks form no cycles (reference counting frees them); a collector pass over
    # millions of live closures would stall the loop and show up as broker latency.
    gc.disable()
    start = time.monotonic()
    measure_from = start + arguments.warmup_seconds
    stop_at = measure_from + arguments.seconds
    interval = 1.0 / arguments.rate if arguments.rate else 0.0
    next_send = start
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if interval and now < next_send:
            producer.poll(min(next_send - now, 0.01))
            continue
        measured = now >= measure_from
        try:
            producer.produce(arguments.topic, value,
                             on_delivery=stats.callback_for(now, measured, len(value)))
        except BufferError:
            producer.poll(0.005)  # local queue full: wait for deliveries
            continue
        next_send += interval
        producer.poll(0)
    measured_end = time.monotonic()
    remaining = producer.flush(CLIENT_TIMEOUT_S)
    drained = time.monotonic()
    if stats.errors:
        fail(f"{stats.errors} delivery errors, first: {stats.first_error}")
    if remaining:
        fail(f"{remaining} records undelivered {CLIENT_TIMEOUT_S}s after the run")
    # Throughput: measured bytes over the measured window plus the drain of its tail.
    elapsed = (measured_end - measure_from) + (drained - measured_end)
    latencies = sorted(stats.latencies)
    print(json.dumps({
        "records": stats.measured_count,
        "mib_per_s": round(stats.measured_bytes / MIB / elapsed, 3),
        "records_per_s": round(stats.measured_count / elapsed, 1),
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
        "p999_ms": percentile_ms(latencies, 0.999),
        "seconds": round(elapsed, 3),
    }))


def partitions_of(consumer, topic):
    metadata = consumer.list_topics(topic=topic, timeout=CLIENT_TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        fail(f"topic {topic}: {found.error if found else 'not found'}")
    return sorted(found.partitions)


def end_offsets_of(consumer, topic, partitions):
    ends = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=CLIENT_TIMEOUT_S)
        ends[partition] = high
    return ends


def end_offsets(arguments):
    consumer = Consumer({"bootstrap.servers": arguments.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False})
    partitions = partitions_of(consumer, arguments.topic)
    ends = end_offsets_of(consumer, arguments.topic, partitions)
    consumer.close()
    print(json.dumps({"total": sum(ends.values()), "by_partition": ends}))


def consume(arguments):
    # group.id is required by librdkafka's config even though assign() never joins a group.
    consumer = Consumer({
        "bootstrap.servers": arguments.bootstrap,
        "group.id": "tern-bench-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "socket.nagle.disable": True,
    })
    partitions = partitions_of(consumer, arguments.topic)
    ends = end_offsets_of(consumer, arguments.topic, partitions)
    target = sum(ends.values())
    consumer.assign([TopicPartition(arguments.topic, p, 0) for p in partitions])
    count = 0
    value_bytes = 0
    first_at = None
    last_at = None
    deadline = time.monotonic() + arguments.seconds
    while count < target and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=POLL_BATCH_MAX, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume: {error}")
            now = time.monotonic()
            first_at = first_at or now
            last_at = now
            count += 1
            value_bytes += len(message.value() or b"")
    consumer.close()
    elapsed = (last_at - first_at) if count > 1 else None
    print(json.dumps({
        "records": count,
        "records_expected": target,
        "complete": count >= target,
        "mib_per_s": round(value_bytes / MIB / elapsed, 3) if elapsed else None,
        "records_per_s": round(count / elapsed, 1) if elapsed else None,
        "seconds": round(elapsed, 3) if elapsed else None,
    }))


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("create-topic", "produce", "consume", "end-offsets"):
        command = commands.add_parser(name)
        command.add_argument("--bootstrap", required=True)
        command.add_argument("--topic", required=True)
        if name == "create-topic":
            command.add_argument("--partitions", type=int, required=True)
            command.add_argument("--replication-factor", type=int, default=1)
        if name in ("produce", "consume"):
            command.add_argument("--seconds", type=float, required=True)
        if name == "produce":
            command.add_argument("--record-bytes", type=int, required=True)
            command.add_argument("--warmup-seconds", type=float, default=0.0)
            command.add_argument("--rate", type=float, default=0.0)
            command.add_argument("--linger-ms", type=float, default=5.0)
    return parser.parse_args()


def main():
    arguments = parse_arguments()
    handlers = {"create-topic": create_topic, "produce": produce, "consume": consume,
                "end-offsets": end_offsets}
    handlers[arguments.command](arguments)


if __name__ == "__main__":
    main()
