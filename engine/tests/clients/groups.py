#!/usr/bin/env python3
"""Consumer groups against Tern with real clients (confluent-kafka/librdkafka, kafka-python).

Every scenario produces `--records` records to a 6-partition topic (record i goes to
partition i % 6) and checks, per partition, that the group as a whole read every offset
(no record skipped or lost) and that a consumer taking a partition over starts exactly at the
offset committed for it (it resumes from committed offsets). Used by engine/tests/groups.rs.

    groups.py --client confluent|kafka-python --bootstrap HOST:PORT --topic T --group G
              --scenario share|kill|victim|static|static-leader|resume-first|resume-second
              [--assignor range|roundrobin|cooperative-sticky] [--records N]
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time

PARTITIONS = 6
SESSION_TIMEOUT_MS = 3000
DEADLINE_S = 60


def fail(message):
    print("FAIL: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def log(message):
    print(message, file=sys.stderr, flush=True)


def metadata_for(partition, offset):
    return "meta-%d-%d" % (partition, offset)


# ------------------------------------------------------------------------------ the clients
class Confluent:
    """One confluent-kafka consumer: explicit synchronous commits after every batch."""

    def __init__(self, args, name, instance=None):
        from confluent_kafka import Consumer
        config = {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 300,
            "partition.assignment.strategy": args.assignor,
        }
        if instance:
            config["group.instance.id"] = instance
        self.name = name
        self.consumer = Consumer(config)
        self.assigned_events = 0
        self.starts = {}  # partition -> first offset read after it was assigned to us
        self.pending = set()
        self.consumer.subscribe([args.topic], on_assign=self._on_assign)
        self.topic = args.topic

    def _on_assign(self, consumer, partitions):
        log("%s assigned %s" % (self.name, [tp.partition for tp in partitions]))
        self.assigned_events += 1
        self.pending.update(tp.partition for tp in partitions)

    def assignment(self):
        return sorted(tp.partition for tp in self.consumer.assignment())

    def poll(self, max_records=50):
        """[(partition, offset, value)] read, then committed (with metadata) before return."""
        from confluent_kafka import TopicPartition
        messages = self.consumer.consume(num_messages=max_records, timeout=0.2)
        read, last = [], {}
        for message in messages:
            if message.error():
                continue
            read.append((message.partition(), message.offset(), message.value()))
            last[message.partition()] = message.offset()
        note_starts(self, read)
        if last:
            offsets = [TopicPartition(self.topic, p, o + 1, metadata=metadata_for(p, o + 1))
                       for p, o in last.items()]
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as error:  # a rebalance raced the commit: the reads stay
                log("%s: commit failed: %s" % (self.name, error))
        return read

    def committed(self):
        from confluent_kafka import TopicPartition
        asked = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        return {tp.partition: (tp.offset, tp.metadata)
                for tp in self.consumer.committed(asked, timeout=10)}

    def close(self):
        self.consumer.close()


class KafkaPython:
    """One kafka-python consumer, same behaviour as `Confluent`."""

    def __init__(self, args, name, instance=None):
        from kafka import KafkaConsumer, ConsumerRebalanceListener
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        strategy = {"range": RangePartitionAssignor,
                    "roundrobin": RoundRobinPartitionAssignor}[args.assignor]
        self.name = name
        self.topic = args.topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=args.bootstrap, group_id=args.group, client_id=name,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=300,
            partition_assignment_strategy=[strategy], group_instance_id=instance)
        self.assigned_events = 0
        self.starts = {}
        self.pending = set()
        outer = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, assigned):
                # kafka-python 3 runs this on its IO thread: no blocking calls here.
                outer.assigned_events += 1
                outer.pending.update(tp.partition for tp in assigned)

        self.consumer.subscribe([args.topic], listener=Listener())

    def assignment(self):
        return sorted(tp.partition for tp in self.consumer.assignment())

    def poll(self, max_records=50):
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        batches = self.consumer.poll(timeout_ms=200, max_records=max_records)
        read, last = [], {}
        for tp, records in batches.items():
            for record in records:
                read.append((tp.partition, record.offset, record.value))
                last[tp.partition] = record.offset
        note_starts(self, read)
        if last:
            offsets = {TopicPartition(self.topic, p):
                       OffsetAndMetadata(o + 1, metadata_for(p, o + 1), -1)
                       for p, o in last.items()}
            try:
                self.consumer.commit(offsets)
            except Exception as error:
                log("%s: commit failed: %s" % (self.name, error))
        return read

    def committed(self):
        from kafka import TopicPartition
        result = {}
        for p in range(PARTITIONS):
            tp = TopicPartition(self.topic, p)
            offset = self.consumer.committed(tp, metadata=True)
            result[p] = (-1001, None) if offset is None else (offset.offset, offset.metadata)
        return result

    def close(self):
        self.consumer.close()


def note_starts(consumer, read):
    """The first offset read from each newly assigned partition."""
    for partition, offset, _ in read:
        if partition in consumer.pending:
            consumer.pending.discard(partition)
            consumer.starts[partition] = offset


def new_consumer(args, name, instance=None):
    kind = Confluent if args.client == "confluent" else KafkaPython
    return kind(args, name, instance)


# ------------------------------------------------------------------------------ setup
def create_and_produce(args):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics([NewTopic(args.topic, PARTITIONS, 1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(args.records):
        producer.produce(args.topic, value=b"%d" % i, partition=i % PARTITIONS)
    if producer.flush(30) != 0:
        fail("records left unsent")


def per_partition(args):
    return {p: len(range(p, args.records, PARTITIONS)) for p in range(PARTITIONS)}


class Seen:
    """What the group read: offsets per partition, checked for gaps and values."""

    def __init__(self, args):
        self.args = args
        self.offsets = {p: set() for p in range(PARTITIONS)}
        self.duplicates = 0

    def add(self, consumer, read):
        for partition, offset, value in read:
            expected = b"%d" % (offset * PARTITIONS + partition)
            if value != expected:
                fail("%s read %r at %d/%d, expected %r" % (
                    consumer.name, value, partition, offset, expected))
            if offset in self.offsets[partition]:
                self.duplicates += 1
            self.offsets[partition].add(offset)

    def complete(self):
        counts = per_partition(self.args)
        return all(len(self.offsets[p]) >= counts[p] for p in range(PARTITIONS))

    def check_complete(self):
        counts = per_partition(self.args)
        for p in range(PARTITIONS):
            if self.offsets[p] != set(range(counts[p])):
                missing = sorted(set(range(counts[p])) - self.offsets[p])[:10]
                fail("partition %d: offsets missing %s" % (p, missing))


def poll_until(consumers, seen, condition, what, deadline_s=DEADLINE_S):
    deadline = time.time() + deadline_s
    while not condition():
        if time.time() > deadline:
            counts = per_partition(seen.args)
            missing = {p: sorted(set(range(counts[p])) - seen.offsets[p])[:3]
                       for p in range(PARTITIONS)}
            fail("timed out waiting for %s; assignments %s; first missing %s" % (
                what, [(c.name, c.assignment()) for c in consumers], missing))
        for consumer in consumers:
            seen.add(consumer, consumer.poll())


def check_resumed(consumer, committed_before):
    """Each partition taken over is read from exactly the offset committed for it."""
    for partition, start in consumer.starts.items():
        if partition in committed_before and max(committed_before[partition], 0) != start:
            fail("%s started partition %d at %s, committed was %s (starts %s, committed %s)" % (
                consumer.name, partition, start, committed_before[partition], consumer.starts,
                committed_before))


def split_evenly(consumers):
    sizes = [len(c.assignment()) for c in consumers]
    assigned = sorted(p for c in consumers for p in c.assignment())
    return sizes == [PARTITIONS // len(consumers)] * len(consumers) and \
        assigned == list(range(PARTITIONS))


# ------------------------------------------------------------------------------ scenarios
def scenario_share(args):
    """Two consumers split the topic; one leaves; the other takes over and finishes."""
    create_and_produce(args)
    first, second = new_consumer(args, "first"), new_consumer(args, "second")
    seen = Seen(args)
    poll_until([first, second], seen, lambda: split_evenly([first, second]), "an even split")
    log("split: first %s second %s" % (first.assignment(), second.assignment()))
    poll_until([first, second], seen,
               lambda: sum(map(len, seen.offsets.values())) >= args.records // 4, "progress")
    held = first.assignment()
    committed_at_leave = {p: o for p, (o, _) in first.committed().items() if p in held}
    first.close()
    second.starts.clear()
    second.pending.clear()
    poll_until([second], seen, lambda: second.assignment() == list(range(PARTITIONS)),
               "the takeover")
    poll_until([second], seen, seen.complete, "every record")
    check_resumed(second, committed_at_leave)
    seen.check_complete()
    metadata = second.committed()
    for p, (offset, text) in metadata.items():
        if text != metadata_for(p, offset):
            fail("partition %d: committed metadata %r for offset %d" % (p, text, offset))
    second.close()
    print("share ok: duplicates %d" % seen.duplicates)


def scenario_victim(args):
    """Subprocess of `kill`: consumes and commits, reports, then waits to be killed."""
    consumer = new_consumer(args, "victim")
    seen = Seen(args)
    poll_until([consumer], seen, lambda: len(consumer.assignment()) == PARTITIONS // 2,
               "the victim's half")
    poll_until([consumer], seen, lambda: all(len(seen.offsets[p]) >= 20
                                             for p in consumer.assignment()),
               "the victim's progress on each of its partitions")
    print("READY", flush=True)
    while True:
        consumer.poll()
        time.sleep(0.05)


def scenario_kill(args):
    """A consumer process is killed -9; after its session times out the other one takes
    over its partitions from what it committed."""
    create_and_produce(args)
    survivor = new_consumer(args, "survivor")
    seen = Seen(args)
    command = [sys.executable, __file__, "--scenario", "victim"] + [
        "--%s=%s" % (k, v) for k, v in vars(args).items() if k != "scenario"]
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    ready = threading.Event()
    threading.Thread(target=lambda: victim.stdout.readline() and ready.set(), daemon=True).start()
    try:
        poll_until([survivor], seen, ready.is_set, "the victim to be ready")
        # Keep consuming our half at a trickle until the victim is known to be in.
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_at = time.time()
        # A commit the victim sent just before dying may still land: let it, then look.
        poll_until([survivor], seen, lambda: time.time() > killed_at + 1, "a second")
        held = survivor.assignment()
        committed_all = {p: o for p, (o, _) in survivor.committed().items()}
        committed = {p: o for p, o in committed_all.items() if p not in held}
        survivor.starts.clear()
        survivor.pending.clear()
        poll_until([survivor], seen, lambda: survivor.assignment() == list(range(PARTITIONS)),
                   "the takeover after the session timeout")
        log("takeover %.1f s after kill -9" % (time.time() - killed_at))
        for p in committed:
            if committed[p] < 20:
                fail("the victim's commit on partition %d is missing: %s" % (p, committed))
        # Whatever the group committed was read by a member (they commit what they read),
        # including the victim's reads, which this process cannot see.
        for p, offset in committed_all.items():
            seen.offsets[p].update(range(max(offset, 0)))
        poll_until([survivor], seen, seen.complete, "every record")
        check_resumed(survivor, committed)
        seen.check_complete()
        survivor.close()
    finally:
        if victim.poll() is None:
            victim.kill()
    print("kill ok")


def scenario_static(args, restart_leader=False):
    """A static member restarts within its session: it gets its partitions back, resumes
    from its commits, and the other member never rebalances."""
    create_and_produce(args)
    # The first member to join leads (as in Kafka); both join the first generation.
    if restart_leader:
        leaving = new_consumer(args, "b-leaving", "b")
        time.sleep(0.3)
        steady = new_consumer(args, "a-steady", "a")
    else:
        steady = new_consumer(args, "a-steady", "a")
        time.sleep(0.3)
        leaving = new_consumer(args, "b-leaving", "b")
    leaving_name = "b"
    seen = Seen(args)
    poll_until([steady, leaving], seen, lambda: split_evenly([steady, leaving]), "an even split")
    poll_until([steady, leaving], seen,
               lambda: sum(map(len, seen.offsets.values())) >= args.records // 5, "progress")
    held = leaving.assignment()
    events = steady.assigned_events
    committed = {p: o for p, (o, _) in leaving.committed().items() if p in held}
    leaving.close()
    back = new_consumer(args, leaving_name + "-back", leaving_name)
    poll_until([steady, back], seen, lambda: back.assignment() == held, "the static return")
    poll_until([steady, back], seen, seen.complete, "every record")
    if steady.assigned_events != events:
        fail("the steady member rebalanced (%d -> %d assignments)" % (
            events, steady.assigned_events))
    check_resumed(back, committed)
    seen.check_complete()
    steady.close()
    back.close()
    print("static ok")


def scenario_resume_first(args):
    """Before a broker restart: read about half of the records, committing, and leave."""
    create_and_produce(args)
    consumer = new_consumer(args, "before-restart")
    seen = Seen(args)
    poll_until([consumer], seen,
               lambda: sum(map(len, seen.offsets.values())) >= args.records // 2, "half")
    consumer.close()
    print("resume-first ok")


def scenario_resume_second(args):
    """After the restart: the group's offsets and metadata are back; reading resumes exactly
    where it stopped."""
    consumer = new_consumer(args, "after-restart")
    committed = consumer.committed()
    if sum(max(o, 0) for o, _ in committed.values()) < args.records // 2:
        fail("committed offsets lost across the restart: %s" % committed)
    for p, (offset, text) in committed.items():
        if offset >= 0 and text != metadata_for(p, offset):
            fail("partition %d: metadata %r did not survive the restart" % (p, text))
    seen = Seen(args)
    for p, (offset, _) in committed.items():
        seen.offsets[p].update(range(max(offset, 0)))
    poll_until([consumer], seen, seen.complete, "the rest of the records")
    check_resumed(consumer, {p: o for p, (o, _) in committed.items()})
    seen.check_complete()
    consumer.close()
    print("resume-second ok")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", default="confluent")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    scenarios = {
        "share": scenario_share, "kill": scenario_kill, "victim": scenario_victim,
        "static": scenario_static, "resume-first": scenario_resume_first,
        "static-leader": lambda args: scenario_static(args, restart_leader=True),
        "resume-second": scenario_resume_second,
    }
    scenarios[args.scenario](args)


if __name__ == "__main__":
    main()
