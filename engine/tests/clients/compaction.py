#!/usr/bin/env python3
"""Log compaction seen by confluent-kafka (librdkafka 2.1x):

  create    a topic with cleanup.policy=compact, tiny segments and min.cleanable.dirty.ratio
            0.01; describe_configs reports the compaction configs as Kafka does
  produce   many updates of few keys (batches of every codec, one tombstone);
            a record without a key is refused with INVALID_RECORD
  wait      polls until the partition holds fewer records than were produced (the cleaner ran)
  verify    consuming from the beginning gives the latest value per key, offsets increasing

    compaction.py --bootstrap HOST:PORT --phase create,produce,wait,verify
"""
import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

TOPIC = "compacted"
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
    config = {"cleanup.policy": "compact", "segment.bytes": "4096",
              "min.cleanable.dirty.ratio": "0.01"}
    admin.create_topics([NewTopic(TOPIC, 1, 1, config=config)])[TOPIC].result(timeout=30)
    resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
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
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    failures = []
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
                producer.produce(TOPIC, key=b"key-%d" % key, value=value, partition=0,
                                 on_delivery=lambda error, message: error and failures.append(error))
            producer.poll(0)
    for producer, _ in producers:
        if producer.flush(60):
            fail("not all records delivered")
    if failures:
        fail("delivery failed: %r" % failures[:3])
    errors = []
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                         "enable.idempotence": False, "retries": 0})
    producer.produce(TOPIC, key=b"key-%d" % TOMBSTONED_KEY, value=None, partition=0,
                     on_delivery=lambda error, message: error and fail("tombstone: %s" % error))
    # Flushed alone: a refused record fails its whole batch.
    if producer.flush(30):
        fail("tombstone not answered")
    producer.produce(TOPIC, key=None, value=b"no key", partition=0,
                     on_delivery=lambda error, message: errors.append(error))
    if producer.flush(30):
        fail("tombstone or keyless record not answered")
    if len(errors) != 1 or errors[0] is None or errors[0].code() != KafkaError.INVALID_RECORD:
        fail("a keyless record on a compacted topic must fail with INVALID_RECORD: %r" % errors)
    print("produce: %d updates of %d keys, a tombstone; keyless refused (%s)"
          % (UPDATES * KEYS, KEYS, errors[0].name()))


def read_all(bootstrap):
    """Every record of partition 0, from the beginning to the high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-unused",
                         "enable.auto.commit": False})
    partition = TopicPartition(TOPIC, 0, OFFSET_BEGINNING)
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
    produced = UPDATES * KEYS + 1
    deadline = time.time() + 60
    while True:
        count = len(read_all(args.bootstrap))
        if count < produced:
            print("wait: %d records left of %d produced" % (count, produced))
            return
        if time.time() > deadline:
            fail("the cleaner did not run: still %d records" % count)
        time.sleep(0.2)


def verify(args, admin):
    messages = read_all(args.bootstrap)
    offsets = [message.offset() for message in messages]
    if any(later <= earlier for earlier, later in zip(offsets, offsets[1:])):
        fail("offsets do not increase")
    latest = {}
    for message in messages:
        latest[message.key()] = message.value()
    if latest != expected_latest():
        fail("latest values differ: %r" % latest)
    # Records of every key, whatever its codec, were compacted (only the active segment and
    # what was produced after the last cleaning keep older updates).
    for key in range(KEYS):
        count = sum(1 for message in messages if message.key() == b"key-%d" % key)
        if count > UPDATES // 2:
            fail("key-%d still has %d records: not compacted" % (key, count))
    print("verify: %d records, latest value per key, offsets increasing (last %d)"
          % (len(messages), offsets[-1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--phase", required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    phases = {"create": create, "produce": produce, "wait": wait, "verify": verify}
    for name in args.phase.split(","):
        phases[name](args, admin)


if __name__ == "__main__":
    main()
