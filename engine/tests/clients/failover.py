#!/usr/bin/env python3
"""Failover check with confluent-kafka: while a test kills partition leaders, no acknowledged
record may be lost and none may be stored twice. Used by engine/tests/cluster.rs, which owns
the brokers and does the killing; this script only produces, then reads back and judges.

    failover.py --bootstrap B --topic T [--partitions 3] [--replication-factor 3]
                [--rate 2000] [--produce-seconds 150] [--control stdin|none]

1. Creates the topic through the AdminClient, retrying until a controller answers, then waits
   until every partition has a leader (both within --setup-seconds).
2. Produces with acks=all and enable.idempotence: record i goes to partition i % P with the
   value "p{partition}-{seq}" (seq = i // P), at most --rate records a second, and keeps in
   memory every record whose delivery report succeeded: (partition, offset) -> value.
   Twice a second it prints a progress line: {"progress": {"acked": [count per partition],
   ...}}.
3. Stops producing on a line "stop" or end of file on stdin (--control stdin), or after
   --produce-seconds, whichever comes first; then flushes (at most --flush-seconds).
4. Reads every partition with assign() from offset 0 to its high watermark (no consumer
   group: cluster mode serves none) and checks that
   - every acknowledged record is read at exactly its acknowledged offset (else: lost);
   - no value is read twice (else: duplicates; idempotence must absorb the retries);
   - per partition, the sequence numbers read increase (else: out_of_order);
   - offsets increase without gaps, except where the broker stored control batches, which
     clients skip: gaps are reported as [partition, start, end) for the caller to check.
5. Prints one line {"verdict": {...}} with the counts; exits 0 when the verdict holds, 1 when
   it does not, 2 when the topic could not be set up.
"""
import argparse
import json
import sys
import threading
import time

PROGRESS_INTERVAL_SECONDS = 0.5
# Bounds on what the verdict lists; the counts are always complete.
EXAMPLES_MAX = 10
GAPS_LISTED_MAX = 200
ERRORS_LISTED_MAX = 20
# Records handed to the client per turn of the produce loop, at most.
BURST_RECORDS_MAX = 100


def fail_setup(message):
    print("SETUP FAILED: " + message, file=sys.stderr)
    sys.exit(2)


def emit(kind, body):
    print(json.dumps({kind: body}, sort_keys=True), flush=True)


def note(bounded_list, item, limit):
    if len(bounded_list) < limit:
        bounded_list.append(item)


# ------------------------------------------------------------------------------------ setup
def create_topic(args):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    deadline = time.monotonic() + args.setup_seconds
    attempts, last_error = 0, None
    while True:
        attempts += 1
        topic = NewTopic(args.topic, args.partitions, args.replication_factor)
        try:
            futures = admin.create_topics([topic], request_timeout=10, operation_timeout=10)
            futures[args.topic].result(timeout=20)
            break
        except KafkaException as exception:
            error = exception.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                break  # an attempt that timed out on our side created it
            last_error = str(error)
        except Exception as exception:  # the future's own timeout
            last_error = repr(exception)
        if time.monotonic() > deadline:
            fail_setup("no topic after %d attempts; last error: %s" % (attempts, last_error))
        time.sleep(0.5)
    return attempts, wait_for_leaders(admin, args, deadline)


def wait_for_leaders(admin, args, deadline):
    """The replica lists of every partition, once each partition has a leader."""
    last = None
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(args.topic, timeout=5).topics.get(args.topic)
        except Exception as exception:
            last = repr(exception)
            time.sleep(0.5)
            continue
        partitions = metadata.partitions if metadata and metadata.error is None else {}
        last = {p: (m.leader, m.replicas, str(m.error)) for p, m in partitions.items()}
        ready = len(partitions) == args.partitions and all(
            m.leader >= 0 and m.error is None
            and len(m.replicas) == args.replication_factor for m in partitions.values())
        if ready:
            return [list(partitions[p].replicas) for p in range(args.partitions)]
        time.sleep(0.5)
    fail_setup("partitions without a leader within %d s: %s" % (args.setup_seconds, last))


# ---------------------------------------------------------------------------------- produce
class Produced:
    """What the delivery reports said: every acknowledged record, and the failures."""

    def __init__(self, partitions):
        self.acked = {}  # (partition, offset) -> value
        self.acked_per_partition = [0] * partitions
        self.conflicting_acks = 0  # one offset acknowledged for two different values
        self.failures = 0
        self.failure_examples = []
        self.errors = []  # the client's error callback (transport errors are expected)
        self.fatal = None

    def on_delivery(self, error, message):
        value = message.value().decode()
        if error is not None:
            self.failures += 1
            note(self.failure_examples, [value, str(error)], EXAMPLES_MAX)
            return
        key = (message.partition(), message.offset())
        previous = self.acked.get(key)
        if previous is not None and previous != value:
            self.conflicting_acks += 1
        if previous is None:
            self.acked_per_partition[message.partition()] += 1
        self.acked[key] = value

    def on_error(self, error):
        note(self.errors, str(error), ERRORS_LISTED_MAX)
        if error.fatal():
            self.fatal = str(error)


def stop_on_stdin(stop):
    """Sets `stop` on a line "stop" or at end of file (the test that runs us went away)."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def produce(args, stop):
    from confluent_kafka import Producer
    produced = Produced(args.partitions)
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 1000,
        # Records wait through elections rather than fail: a leader must come back.
        "message.timeout.ms": 120000, "error_cb": produced.on_error,
    })
    started = time.monotonic()
    next_progress = started
    sent = 0
    while not stop.is_set() and produced.fatal is None:
        now = time.monotonic()
        if now - started >= args.produce_seconds:
            break
        if now >= next_progress:
            progress(produced, sent, now - started)
            next_progress += PROGRESS_INTERVAL_SECONDS
        due = min(int(args.rate * (now - started)) - sent, BURST_RECORDS_MAX)
        for _ in range(max(due, 0)):
            send(producer, args, sent, produced)
            sent += 1
        producer.poll(0.005)
    undelivered = producer.flush(args.flush_seconds)
    progress(produced, sent, time.monotonic() - started)
    return produced, sent, undelivered


def send(producer, args, index, produced):
    partition = index % args.partitions
    value = "p%d-%d" % (partition, index // args.partitions)
    while True:
        try:
            producer.produce(args.topic, value=value.encode(), partition=partition,
                             on_delivery=produced.on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def progress(produced, sent, elapsed_seconds):
    emit("progress", {
        "acked": produced.acked_per_partition, "sent": sent, "failures": produced.failures,
        "elapsed_seconds": round(elapsed_seconds, 2),
    })


# ---------------------------------------------------------------------------------- consume
class Read:
    """What the consumer saw, checked record by record as it arrives."""

    def __init__(self, partitions):
        self.records = {}  # (partition, offset) -> value
        self.offset_of = {}  # value -> (partition, offset)
        self.next_offset = [0] * partitions
        self.last_sequence = [-1] * partitions
        self.gaps = []  # [partition, start, end) offsets the consumer never saw
        self.gap_offsets = 0
        self.duplicates, self.duplicate_examples = 0, []
        self.out_of_order, self.misplaced, self.rereads = 0, 0, 0

    def add(self, partition, offset, value):
        if offset < self.next_offset[partition]:
            self.rereads += 1  # the consumer's own repeat, not the log's
            return
        self.gap(partition, offset)
        self.next_offset[partition] = offset + 1
        self.records[(partition, offset)] = value
        earlier = self.offset_of.get(value)
        if earlier is not None:
            self.duplicates += 1
            note(self.duplicate_examples, [value, list(earlier), [partition, offset]],
                 EXAMPLES_MAX)
        self.offset_of[value] = (partition, offset)
        prefix, _, sequence = value.partition("-")
        if prefix != "p%d" % partition:
            self.misplaced += 1
        elif int(sequence) <= self.last_sequence[partition]:
            self.out_of_order += 1
        else:
            self.last_sequence[partition] = int(sequence)

    def gap(self, partition, end):
        """Offsets from the next expected one up to `end` that were never delivered."""
        start = self.next_offset[partition]
        if end > start:
            self.gap_offsets += end - start
            note(self.gaps, [partition, start, end], GAPS_LISTED_MAX)


def high_watermarks(consumer, args, deadline):
    from confluent_kafka import TopicPartition
    marks = []
    for partition in range(args.partitions):
        while True:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(args.topic, partition), timeout=5, cached=False)
                marks.append(high)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    return marks


def consume(args):
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    consumer = Consumer({
        # The Python client insists on a group id; assign() never joins the group.
        "bootstrap.servers": args.bootstrap, "group.id": "failover-assign-only",
        "enable.auto.commit": False, "enable.partition.eof": True,
    })
    deadline = time.monotonic() + args.consume_seconds
    marks = high_watermarks(consumer, args, deadline)
    read, errors = Read(args.partitions), []
    done = [mark == 0 for mark in marks]
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    while not all(done) and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            error, partition = message.error(), message.partition()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                done[partition] = done[partition] or message.offset() >= marks[partition]
            elif error is not None:
                note(errors, str(error), ERRORS_LISTED_MAX)
            else:
                read.add(partition, message.offset(), message.value().decode())
    consumer.close()
    for partition in range(args.partitions):
        if done[partition]:
            read.gap(partition, marks[partition])  # control batches at the end
    return read, marks, all(done), errors


# ---------------------------------------------------------------------------------- verdict
def verdict(args, setup, produced_result, consumed):
    produced, sent, undelivered = produced_result
    read, marks, reached, consume_errors = consumed
    lost, mismatched, lost_examples = 0, 0, []
    for (partition, offset), value in sorted(produced.acked.items()):
        got = read.records.get((partition, offset))
        if got != value:
            lost += 1
            mismatched += got is not None
            note(lost_examples, [partition, offset, value, got], EXAMPLES_MAX)
    acked_values = set(produced.acked.values())
    body = {
        "topic_create_attempts": setup[0], "replicas": setup[1],
        "sent": sent, "acked": len(produced.acked),
        "acked_per_partition": produced.acked_per_partition,
        "delivery_failures": produced.failures, "undelivered": undelivered,
        "conflicting_acks": produced.conflicting_acks, "fatal": produced.fatal,
        "read": len(read.records), "lost": lost, "mismatched": mismatched,
        "duplicates": read.duplicates, "out_of_order": read.out_of_order,
        "misplaced": read.misplaced, "rereads": read.rereads,
        "unacknowledged_read": sum(v not in acked_values for v in read.records.values()),
        "high_watermarks": marks, "reached_high_watermarks": reached,
        "gap_offsets": read.gap_offsets, "gaps": read.gaps,
        "examples": {"lost": lost_examples, "duplicates": read.duplicate_examples,
                     "delivery_failures": produced.failure_examples},
        "producer_errors": produced.errors, "consumer_errors": consume_errors,
    }
    body["ok"] = (len(produced.acked) > 0 and lost == 0 and read.duplicates == 0
                  and read.out_of_order == 0 and read.misplaced == 0
                  and produced.conflicting_acks == 0 and produced.fatal is None and reached)
    return body


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--replication-factor", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000, help="records a second, at most")
    parser.add_argument("--produce-seconds", type=float, default=150)
    parser.add_argument("--control", choices=["stdin", "none"], default="stdin")
    parser.add_argument("--setup-seconds", type=float, default=60)
    parser.add_argument("--flush-seconds", type=float, default=60)
    parser.add_argument("--consume-seconds", type=float, default=60)
    args = parser.parse_args()
    assert args.partitions >= 1 and args.replication_factor >= 1 and args.rate >= 1
    setup = create_topic(args)
    stop = threading.Event()
    if args.control == "stdin":
        threading.Thread(target=stop_on_stdin, args=(stop,), daemon=True).start()
    produced = produce(args, stop)
    body = verdict(args, setup, produced, consume(args))
    emit("verdict", body)
    sys.exit(0 if body["ok"] else 1)


if __name__ == "__main__":
    main()
