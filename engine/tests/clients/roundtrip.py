#!/usr/bin/env python3
"""Produce a deterministic record set to Tern with a real Kafka client and read it back.

Each record i goes to partition i % partitions with a key (null for i % 10 == 5), a value
(null for every 7th) and headers, so the consumer can check every field byte for byte and the
per-partition order. Used by engine/tests/clients.rs with confluent-kafka (librdkafka) and
kafka-python.

    roundtrip.py --client confluent|kafka-python --bootstrap HOST:PORT --topic T
                 --partitions P --records N --phase create,produce,consume
"""
import argparse
import sys
import time


def record(i):
    # Never both null: kafka-python refuses a record with neither key nor value.
    key = None if i % 10 == 5 else b"key-%d" % i
    value = None if i % 7 == 0 and key is not None else (b"value-%d-" % i) + b"x" * (i % 200)
    headers = [("index", b"%d" % i), ("kind", b"roundtrip")]
    return key, value, headers


def expected_by_partition(records, partitions):
    expected = {p: [] for p in range(partitions)}
    for i in range(records):
        expected[i % partitions].append(i)
    return expected


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- confluent-kafka (librdkafka)
def confluent_create(args):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(args.topic, args.partitions, 1)])
    for topic, future in futures.items():
        future.result(timeout=30)
    metadata = admin.list_topics(args.topic, timeout=30)
    got = len(metadata.topics[args.topic].partitions)
    if got != args.partitions:
        fail("topic has %d partitions, expected %d" % (got, args.partitions))


def confluent_produce(args):
    from confluent_kafka import Producer
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5,
        "enable.idempotence": True, "message.timeout.ms": 60000,
    })
    failures = []
    delivered = [0]

    def on_delivery(error, message):
        if error is not None:
            failures.append(str(error))
        else:
            delivered[0] += 1

    for i in range(args.records):
        key, value, headers = record(i)
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, headers=headers,
                                 partition=i % args.partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures or delivered[0] != args.records:
        fail("delivered %d of %d, %d pending, failures: %s"
             % (delivered[0], args.records, remaining, failures[:5]))


def confluent_consume(args):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "roundtrip-unused",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)
                     for p in range(args.partitions)])
    seen = {p: [] for p in range(args.partitions)}
    deadline = time.time() + 120
    total = 0
    while total < args.records and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error():
                fail("consume error: %s" % message.error())
            headers = [(k, v) for k, v in (message.headers() or [])]
            seen[message.partition()].append(
                (message.offset(), message.key(), message.value(), headers))
            total += 1
    consumer.close()
    verify(args, seen)


# ---------------------------------------------------------------- kafka-python
def kafka_python_create(args):
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(args.topic, args.partitions, 1)])
    admin.close()


def kafka_python_produce(args):
    from kafka import KafkaProducer
    # kafka-python's default: idempotence on (KIP-679).
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    futures = []
    for i in range(args.records):
        key, value, headers = record(i)
        futures.append(producer.send(args.topic, value=value, key=key, headers=headers,
                                     partition=i % args.partitions))
    producer.flush(60)
    for future in futures:
        future.get(timeout=60)
    producer.close()


def kafka_python_consume(args):
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = {p: [] for p in range(args.partitions)}
    deadline = time.time() + 120
    total = 0
    while total < args.records and time.time() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000, max_records=5000).items():
            for message in messages:
                seen[tp.partition].append(
                    (message.offset, message.key, message.value, list(message.headers)))
                total += 1
    consumer.close()
    verify(args, seen)


def verify(args, seen):
    expected = expected_by_partition(args.records, args.partitions)
    for partition in range(args.partitions):
        got = seen[partition]
        want = expected[partition]
        if len(got) != len(want):
            fail("partition %d: read %d records, expected %d" % (partition, len(got), len(want)))
        for position, (i, (offset, key, value, headers)) in enumerate(zip(want, got)):
            if offset != position:
                fail("partition %d: record %d has offset %d" % (partition, position, offset))
            want_key, want_value, want_headers = record(i)
            if (key, value) != (want_key, want_value):
                fail("partition %d offset %d: got %r/%r, expected %r/%r"
                     % (partition, offset, key, value, want_key, want_value))
            if [(k, bytes(v)) for k, v in headers] != want_headers:
                fail("partition %d offset %d: headers %r" % (partition, offset, headers))
    print("verified %d records in %d partitions" % (args.records, args.partitions))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--phase", default="create,produce,consume")
    args = parser.parse_args()
    steps = {
        "confluent": {"create": confluent_create, "produce": confluent_produce,
                      "consume": confluent_consume},
        "kafka-python": {"create": kafka_python_create, "produce": kafka_python_produce,
                         "consume": kafka_python_consume},
    }[args.client]
    for phase in args.phase.split(","):
        started = time.time()
        steps[phase](args)
        print("%s %s: %.1f s" % (args.client, phase, time.time() - started))


if __name__ == "__main__":
    main()
