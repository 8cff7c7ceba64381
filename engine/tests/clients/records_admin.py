#!/usr/bin/env python3
"""AlterConfigs, IncrementalAlterConfigs and DeleteRecords with confluent-kafka's AdminClient
(librdkafka 2.1x) against Tern:

  alter     incremental_alter_configs sets retention.ms and APPENDs to cleanup.policy;
            describe_configs reports them as DYNAMIC_TOPIC_CONFIG; a bad value is
            INVALID_CONFIG; validate_only changes nothing; DELETE and the legacy
            alter_configs (which replaces every explicit config) work
  retention internal.segment.bytes (the test-only segment size: Kafka 4's segment.bytes is at
            least 1 MiB) and retention.bytes set on a live topic take effect: retention
            deletes its oldest segments (the low watermark moves) within seconds
  delete    100 records, delete_records below offset 40: the low watermark is 40, a consumer
            from the beginning starts at 40, offset -1 means the high watermark
  verify    (after a restart) the deletion and the configs are still there

    records_admin.py --bootstrap HOST:PORT --topic T PHASE[,PHASE...]
"""
import argparse
import sys
import time

from confluent_kafka import (Consumer, KafkaException, Producer, TopicPartition,
                             OFFSET_BEGINNING)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource, NewTopic, ResourceType)

DELETED_BELOW = 40
RECORDS = 100


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def incremental(admin, topic, entries, validate_only=False):
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=operation)
        for name, value, operation in entries])
    future = admin.incremental_alter_configs([resource], validate_only=validate_only)
    return list(future.values())[0].result(timeout=30)


def configs_of(admin, topic):
    future = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    return list(future.values())[0].result(timeout=30)


def expect_config(admin, topic, name, value, source):
    entry = configs_of(admin, topic)[name]
    if (entry.value, entry.source) != (value, source.value):
        fail("%s: %s=%r source %s, expected %r source %s"
             % (topic, name, entry.value, entry.source, value, source))


def phase_alter(args, admin):
    topic = args.topic + "-alter"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    incremental(admin, topic, [("retention.ms", "3600000", AlterConfigOpType.SET),
                               ("cleanup.policy", "compact", AlterConfigOpType.APPEND)])
    dynamic, default = ConfigSource.DYNAMIC_TOPIC_CONFIG, ConfigSource.DEFAULT_CONFIG
    expect_config(admin, topic, "retention.ms", "3600000", dynamic)
    expect_config(admin, topic, "cleanup.policy", "delete,compact", dynamic)
    try:
        incremental(admin, topic, [("retention.ms", "soon", AlterConfigOpType.SET)])
        fail("retention.ms=soon was accepted")
    except KafkaException as error:
        if error.args[0].code() != 40:
            fail("retention.ms=soon: %s, expected INVALID_CONFIG" % error)
    incremental(admin, topic, [("retention.bytes", "1000", AlterConfigOpType.SET)],
                validate_only=True)
    expect_config(admin, topic, "retention.bytes", "-1", default)
    incremental(admin, topic, [("cleanup.policy", None, AlterConfigOpType.DELETE)])
    expect_config(admin, topic, "cleanup.policy", "delete", default)
    legacy = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "3600000"})
    list(admin.alter_configs([legacy]).values())[0].result(timeout=30)
    expect_config(admin, topic, "segment.ms", "3600000", dynamic)
    expect_config(admin, topic, "retention.ms", "604800000", default)
    print("alter: ok")


def low_watermark(args, topic, partition=0):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "records-admin"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    consumer.close()
    return low, high


def produce(args, topic, count, value_bytes=100):
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 0,
                         "batch.num.messages": 1})
    for i in range(count):
        producer.produce(topic, key=b"%d" % i, value=(b"%d-" % i).ljust(value_bytes, b"x"),
                         partition=0)
        producer.flush(30)


def phase_retention(args, admin):
    topic = args.topic + "-retention"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    incremental(admin, topic, [("internal.segment.bytes", "1000", AlterConfigOpType.SET)])
    produce(args, topic, 50)
    low, high = low_watermark(args, topic)
    if (low, high) != (0, 50):
        fail("retention: watermarks %s before the limit" % ((low, high),))
    incremental(admin, topic, [("retention.bytes", "2000", AlterConfigOpType.SET)])
    deadline = time.time() + 30
    while low_watermark(args, topic)[0] == 0:
        if time.time() > deadline:
            fail("retention.bytes set on a live topic never deleted a segment")
        time.sleep(0.2)
    print("retention: low watermark now %d" % low_watermark(args, topic)[0])


def consume_from_beginning(args, topic, expected_count):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "records-admin",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages = []
    deadline = time.time() + 60
    while len(messages) < expected_count and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error():
                fail("consume error: %s" % message.error())
            messages.append(message)
    consumer.close()
    return messages


def expect_deleted(args, topic):
    low, high = low_watermark(args, topic)
    if (low, high) != (DELETED_BELOW, RECORDS):
        fail("watermarks %s, expected %s" % ((low, high), (DELETED_BELOW, RECORDS)))
    messages = consume_from_beginning(args, topic, RECORDS - DELETED_BELOW)
    offsets = [message.offset() for message in messages]
    if offsets != list(range(DELETED_BELOW, RECORDS)):
        fail("consumed offsets %s..%s (%d), expected %d..%d"
             % (offsets[:1], offsets[-1:], len(offsets), DELETED_BELOW, RECORDS - 1))
    if messages[0].key() != b"%d" % DELETED_BELOW:
        fail("first record after the deletion has key %r" % messages[0].key())


def phase_delete(args, admin):
    topic = args.topic
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    produce(args, topic, RECORDS)
    result = list(admin.delete_records(
        [TopicPartition(topic, 0, DELETED_BELOW)]).values())[0].result(timeout=30)
    if result.low_watermark != DELETED_BELOW:
        fail("delete_records answered low watermark %d" % result.low_watermark)
    expect_deleted(args, topic)
    # -1 is the high watermark: on the empty partition 1 that is 0.
    result = list(admin.delete_records(
        [TopicPartition(topic, 1, -1)]).values())[0].result(timeout=30)
    if result.low_watermark != 0:
        fail("delete_records(-1) on an empty partition answered %d" % result.low_watermark)
    try:
        list(admin.delete_records([TopicPartition(topic, 0, RECORDS + 1)]).values())[0].result(
            timeout=30)
        fail("delete_records above the high watermark was accepted")
    except KafkaException as error:
        if error.args[0].code() != 1:
            fail("above the high watermark: %s, expected OFFSET_OUT_OF_RANGE" % error)
    print("delete: ok")


def phase_verify(args, admin):
    expect_deleted(args, args.topic)
    expect_config(admin, args.topic + "-alter", "segment.ms", "3600000",
                  ConfigSource.DYNAMIC_TOPIC_CONFIG)
    print("verify: ok")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("phases")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    phases = {"alter": phase_alter, "retention": phase_retention, "delete": phase_delete,
              "verify": phase_verify}
    for name in args.phases.split(","):
        phases[name](args, admin)


if __name__ == "__main__":
    main()
