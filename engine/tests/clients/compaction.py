#!/usr/bin/env python3
"""Log compaction seen by confluent-kafka (librdkafka 2.1x):

  create    a topic with cleanup.policy=compact, tiny segments (4 KiB, 300 ms) and
            min.cleanable.dirty.ratio 0.01; describe_configs reports the compaction configs as Kafka does
  produce   many updates of few keys (batches of every codec, one tombstone);
            a record without a key is refused with INVALID_RECORD
  wait      polls until only the latest record of each key is left (the cleaner ran)
  verify    consuming from the beginning gives the latest value per key, offsets increasing
  verify-kafka-python   the same with kafka-python (use --codecs none,gzip: it has no other
            codec installed here)

    compaction.py --bootstrap HOST:PORT [--topic T] [--codecs C,..] --phase create,produce,...
"""
import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

KEYS = 8
UPDATES = 400
TOMBSTONED_KEY = 7


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def expected_latest():
    """key -> latest value (None for the tombstoned key), as produced."""
    latest = {b"key-%d" % key: b"key-%d-update-%d" % (key, UPDATES - 1) for key in range(KEYS)}
    latest[b"key-%d" % TOMBSTONED_KEY] = None
    return latest


def create(args, admin):
    # segment.ms: the active segment is never cleaned; once quiet, it rolls and is cleaned.
    # internal.segment.bytes: the broker's test-only segment size (segment.bytes' minimum is
    # 1 MiB, as in Kafka 4).
    config = {"cleanup.policy": "compact", "internal.segment.bytes": "4096", "segment.ms": "300",
              "min.cleanable.dirty.ratio": "0.01"}
    futures = admin.create_topics([NewTopic(args.topic, 1, 1, config=config)])
    futures[args.topic].result(timeout=30)
    resource = ConfigResource(ConfigResource.Type.TOPIC, args.topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    expectations = {"cleanup.policy": ("compact", False),
                    "min.cleanable.dirty.ratio": ("0.01", False),
                    "delete.retention.ms": ("86400000", True),
                    "min.compaction.lag.ms": ("0", True)}
    for key, (value, is_default) in expectations.items():
        if key not in configs or configs[key].value != value:
            fail("describe_configs %s = %r, expected %r" % (key, configs.get(key), value))
        if configs[key].is_default != is_default:
            fail("describe_configs %s: is_default should be %s" % (key, is_default))
    print("create: compacted topic created, configs described")


def produce(args, admin):
    # One producer per codec, all interleaved, so that every segment mixes codecs.
    codecs = args.codecs.split(",")
    failures = []

    def on_delivery(error, message):
        if error:
            failures.append(error)

    producers = []
    for index, codec in enumerate(codecs):
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                             "compression.type": codec, "linger.ms": 5,
                             "enable.idempotence": False})
        producers.append((producer, range(index, KEYS, len(codecs))))
    for update in range(UPDATES):
        for producer, keys in producers:
            for key in keys:
                value = b"key-%d-update-%d" % (key, update)
                producer.produce(args.topic, key=b"key-%d" % key, value=value, partition=0,
                                 on_delivery=on_delivery)
            producer.poll(0)
    for producer, _ in producers:
        if producer.flush(60):
            fail("not all records delivered")
    if failures:
        fail("delivery failed: %r" % failures[:3])
    errors = []
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                         "enable.idempotence": False, "retries": 0})
    producer.produce(args.topic, key=b"key-%d" % TOMBSTONED_KEY, value=None, partition=0,
                     on_delivery=lambda error, message: error and fail("tombstone: %s" % error))
    # Flushed alone: a refused record fails its whole batch.
    if producer.flush(30):
        fail("tombstone not answered")
    producer.produce(args.topic, key=None, value=b"no key", partition=0,
                     on_delivery=lambda error, message: errors.append(error))
    if producer.flush(30):
        fail("tombstone or keyless record not answered")
    if len(errors) != 1 or errors[0] is None or errors[0].code() != KafkaError.INVALID_RECORD:
        fail("a keyless record on a compacted topic must fail with INVALID_RECORD: %r" % errors)
    print("produce: %d updates of %d keys, a tombstone; keyless refused (%s)"
          % (UPDATES * KEYS, KEYS, errors[0].name()))


def read_all(args):
    """Every record of partition 0, from the beginning to the high watermark."""
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "compaction-unused",
                         "enable.auto.commit": False})
    partition = TopicPartition(args.topic, 0, OFFSET_BEGINNING)
    _, high = consumer.get_watermark_offsets(partition, timeout=10)
    consumer.assign([partition])
    messages = []
    deadline = time.time() + 60
    while (not messages or messages[-1].offset() < high - 1) and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error():
                fail("consume error: %s" % message.error())
            messages.append(message)
    consumer.close()
    if not messages or messages[-1].offset() != high - 1:
        fail("did not read up to the high watermark %d" % high)
    return messages


def wait(args, admin):
    """Polls until every key's older updates are gone (the cleaner runs every interval, and
    may have run part-way through the produce phase already; segment.ms rolls the last,
    active segment once the topic is quiet, so all of it becomes cleanable)."""
    produced = UPDATES * KEYS + 1
    deadline = time.time() + 60
    while True:
        records = [(m.offset(), m.key(), m.value()) for m in read_all(args)]
        if not uncompacted_keys(records):
            print("wait: %d records left of %d produced" % (len(records), produced))
            return
        if time.time() > deadline:
            fail("the cleaner did not compact every key: %d records" % len(records))
        time.sleep(0.2)


def uncompacted_keys(records):
    """Keys with more than their latest record in the log."""
    counts = {}
    for _, key, _ in records:
        counts[key] = counts.get(key, 0) + 1
    return [key for key, count in counts.items() if count > 1]


def verify(args, admin):
    records = [(m.offset(), m.key(), m.value()) for m in read_all(args)]
    check(records)


def verify_kafka_python(args, admin):
    from kafka import KafkaConsumer, TopicPartition as Partition
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    partition = Partition(args.topic, 0)
    high = consumer.end_offsets([partition])[partition]
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    records = []
    deadline = time.time() + 60
    while (not records or records[-1][0] < high - 1) and time.time() < deadline:
        for messages in consumer.poll(timeout_ms=500, max_records=1000).values():
            records.extend((m.offset, m.key, m.value) for m in messages)
    consumer.close()
    if not records or records[-1][0] != high - 1:
        fail("kafka-python did not read up to the high watermark %d" % high)
    check(records, "kafka-python ")


def check(records, client=""):
    offsets = [offset for offset, _, _ in records]
    if any(later <= earlier for earlier, later in zip(offsets, offsets[1:])):
        fail("offsets do not increase")
    latest = {}
    for _, key, value in records:
        latest[key] = value
    if latest != expected_latest():
        fail("latest values differ: %r" % latest)
    # Records of every key, whatever its codec, were compacted: one record per key is left.
    if uncompacted_keys(records):
        fail("not compacted: %r" % uncompacted_keys(records))
    print("%sverify: %d records, latest value per key, offsets increasing (last %d)"
          % (client, len(records), offsets[-1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--phase", required=True)
    parser.add_argument("--topic", default="compacted")
    parser.add_argument("--codecs", default="none,gzip,snappy,lz4,zstd")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    phases = {"create": create, "produce": produce, "wait": wait, "verify": verify,
              "verify-kafka-python": verify_kafka_python}
    for name in args.phase.split(","):
        phases[name](args, admin)


if __name__ == "__main__":
    main()
