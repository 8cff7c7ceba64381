#!/usr/bin/env python3
"""Feature checks with confluent-kafka (librdkafka 2.1x) against Tern:

  compression   every codec (gzip, snappy, lz4, zstd) produces and consumes byte-identical
  timestamps    offsets_for_times finds the first record at or after a timestamp
  admin         describe_configs reports Kafka's defaults and explicit topic configs;
                invalid configs and names are refused; delete_topics removes the topic
  longpoll      a consumer waiting on an empty partition gets a record produced later
  conversion    topics with compression.type and message.timestamp.type=LogAppendTime: the
                broker recompresses and stamps; records read back as produced, with the
                broker's append time (in the delivery report too)

    features.py --bootstrap HOST:PORT CHECK [CHECK...]
"""
import argparse
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def create(admin, name, partitions=1, config=None):
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(timeout=30)


def consume_all(bootstrap, topic, partition, expected_count, timeout_s=60):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "features-unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    messages = []
    deadline = time.time() + timeout_s
    while len(messages) < expected_count and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error():
                fail("consume error: %s" % message.error())
            messages.append(message)
    consumer.close()
    return messages


def check_compression(args, admin):
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        topic = "compressed-" + codec
        create(admin, topic)
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                             "compression.type": codec, "linger.ms": 20,
                             "enable.idempotence": True})
        values = [(b"%s-%d-" % (codec.encode(), i)) * (1 + i % 50) for i in range(5000)]
        for i, value in enumerate(values):
            producer.produce(topic, key=b"%d" % i, value=value, partition=0)
            producer.poll(0)
        if producer.flush(30):
            fail("%s: not all records delivered" % codec)
        messages = consume_all(args.bootstrap, topic, 0, len(values))
        got = [m.value() for m in messages]
        if got != values:
            fail("%s: read %d records, %d expected, or contents differ" % (codec, len(got), len(values)))
        offsets = [m.offset() for m in messages]
        if offsets != list(range(len(values))):
            fail("%s: offsets are not 0..n-1" % codec)
        print("compression %s: %d records round-tripped" % (codec, len(values)))


def check_timestamps(args, admin):
    topic = "timestamps"
    create(admin, topic)
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(100):
        producer.produce(topic, value=b"%d" % i, partition=0, timestamp=base + i * 1000)
        if i % 10 == 9:
            producer.flush(30)  # several batches, so the lookup crosses batch boundaries
    producer.flush(30)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "features-unused",
                         "enable.auto.commit": False})
    for target, expected in [(base, 0), (base + 500, 1), (base + 42_000, 42), (base + 99_000, 99),
                             (base + 100_000, -1)]:
        found = consumer.offsets_for_times([TopicPartition(topic, 0, target)], timeout=30)[0]
        if found.error or found.offset != expected:
            fail("offsets_for_times(%d): got %s, expected %d" % (target, found, expected))
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    if (low, high) != (0, 100):
        fail("watermarks (%d, %d), expected (0, 100)" % (low, high))
    consumer.close()
    print("timestamps: offsets_for_times and watermarks agree")


def check_admin(args, admin):
    create(admin, "configured", 2, {"retention.ms": "3600000", "segment.bytes": "1048576"})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "configured")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    expectations = {"retention.ms": "3600000", "segment.bytes": "1048576",
                    "cleanup.policy": "delete", "max.message.bytes": "1048588"}
    for key, value in expectations.items():
        if key not in configs or configs[key].value != value:
            fail("describe_configs %s = %r, expected %r" % (key, configs.get(key), value))
    if configs["retention.ms"].is_default or not configs["cleanup.policy"].is_default:
        fail("config sources are wrong")
    for name, config, why in [("bad name!", {}, "invalid name"),
                              ("bad-config", {"retention.ms": "soon"}, "invalid config value"),
                              ("unknown-config", {"no.such.config": "1"}, "unknown config"),
                              ("configured", {}, "existing topic")]:
        try:
            create(admin, name, 1, config)
        except Exception as error:  # confluent raises KafkaException with the broker's error
            print("refused %s: %s" % (why, error))
        else:
            fail("created a topic with %s" % why)
    admin.delete_topics(["configured"])["configured"].result(timeout=30)
    deadline = time.time() + 10
    while "configured" in admin.list_topics(timeout=10).topics:
        if time.time() > deadline:
            fail("deleted topic still listed")
        time.sleep(0.1)
    print("admin: configs described, bad topics refused, topic deleted")


# (topic, producer codec, topic configs): every conversion the broker makes.
CONVERSIONS = [
    ("converted-zstd-from-none", "none", {"compression.type": "zstd"}),
    ("converted-gzip-from-lz4", "lz4", {"compression.type": "gzip"}),
    ("converted-uncompressed-from-snappy", "snappy", {"compression.type": "uncompressed"}),
    ("converted-appendtime", "none", {"message.timestamp.type": "LogAppendTime"}),
    ("converted-appendtime-lz4-from-zstd", "zstd",
     {"message.timestamp.type": "LogAppendTime", "compression.type": "lz4"}),
]


def check_conversion(args, admin):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    for topic, codec, config in CONVERSIONS:
        create(admin, topic, config=config)
        append_time = config.get("message.timestamp.type") == "LogAppendTime"
        expected_type = TIMESTAMP_LOG_APPEND_TIME if append_time else TIMESTAMP_CREATE_TIME
        producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                             "compression.type": codec, "linger.ms": 20,
                             "enable.idempotence": True})
        reports = []
        values = [(b"%s-%d-" % (topic.encode(), i)) * (1 + i % 40) for i in range(3000)]
        created_ms = 1_600_000_000_000  # far from now: an append time cannot be mistaken for it
        before_ms = int(time.time() * 1000)
        for i, value in enumerate(values):
            producer.produce(topic, key=b"%d" % i, value=value, partition=0,
                             headers=[("h", b"%d" % i)], timestamp=created_ms + i,
                             on_delivery=lambda error, message: reports.append((error, message)))
            producer.poll(0)
        if producer.flush(30):
            fail("%s: not all records delivered" % topic)
        after_ms = int(time.time() * 1000)
        if any(error for error, _ in reports):
            fail("%s: delivery errors: %s" % (topic, [e for e, _ in reports if e][:3]))
        for _, message in reports[:1] + reports[-1:]:
            if message.timestamp()[0] != expected_type:
                fail("%s: delivery report timestamp %s" % (topic, message.timestamp()))
            if append_time and not before_ms <= message.timestamp()[1] <= after_ms:
                fail("%s: delivery report append time %s outside [%d, %d]"
                     % (topic, message.timestamp(), before_ms, after_ms))
        messages = consume_all(args.bootstrap, topic, 0, len(values))
        if [m.value() for m in messages] != values:
            fail("%s: %d records read, %d expected, or contents differ"
                 % (topic, len(messages), len(values)))
        if [m.key() for m in messages] != [b"%d" % i for i in range(len(values))]:
            fail("%s: keys differ" % topic)
        if [m.headers() for m in messages] != [[("h", b"%d" % i)] for i in range(len(values))]:
            fail("%s: headers differ" % topic)
        if [m.offset() for m in messages] != list(range(len(values))):
            fail("%s: offsets are not 0..n-1" % topic)
        for i, message in enumerate(messages):
            kind, timestamp_ms = message.timestamp()
            if kind != expected_type:
                fail("%s: record %d has timestamp type %d" % (topic, i, kind))
            if append_time and not before_ms <= timestamp_ms <= after_ms:
                fail("%s: record %d append time %d outside [%d, %d]"
                     % (topic, i, timestamp_ms, before_ms, after_ms))
            if not append_time and timestamp_ms != created_ms + i:
                fail("%s: record %d create time %d, %d expected"
                     % (topic, i, timestamp_ms, created_ms + i))
        print("conversion %s (%s producer): %d records as produced" % (topic, codec, len(values)))


def check_longpoll(args, admin):
    topic = "longpoll"
    create(admin, topic)
    # No auto-commit: without consumer groups (a later issue) librdkafka's close would wait
    # session.timeout.ms for a coordinator to commit to.
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "features-unused",
                         "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10000, "fetch.min.bytes": 1})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    consumer.consume(num_messages=1, timeout=1.0)  # the consumer is now parked in a fetch
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    producer.produce(topic, value=b"wake up", partition=0)
    producer.flush(30)
    messages = consumer.consume(num_messages=1, timeout=30)
    if len(messages) != 1 or messages[0].value() != b"wake up":
        fail("the parked fetch did not return the new record")
    consumer.close()
    print("longpoll: a parked fetch returned the new record")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("checks", nargs="+",
                        choices=["compression", "timestamps", "admin", "longpoll",
                                 "conversion"])
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    checks = {"compression": check_compression, "timestamps": check_timestamps,
              "admin": check_admin, "longpoll": check_longpoll,
              "conversion": check_conversion}
    for name in args.checks:
        checks[name](args, admin)


if __name__ == "__main__":
    main()
