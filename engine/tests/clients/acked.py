#!/usr/bin/env python3
"""Crash check with confluent-kafka: every acknowledged record must survive a kill -9.

    acked.py produce --bootstrap B --topic T --partitions P --acked FILE [--records N]
        Produces records i = 0.. with acks=all to partition i % P and appends one line
        "partition offset i" to FILE (flushed) for every delivery report without error.
        Runs until N records or until killed.
    acked.py verify --bootstrap B --topic T --partitions P --acked FILE
        Reads every partition from the beginning and checks that each acknowledged record is
        at its acknowledged offset with its value, and that offsets are contiguous.
"""
import argparse
import os
import sys
import time


def value(i):
    return b"acked-%d-" % i + b"y" * (i % 300)


def produce(args):
    from confluent_kafka import Producer
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 2,
        # No retries, so an acknowledgement names exactly one attempt (idempotence needs them).
        "enable.idempotence": False, "message.timeout.ms": 10000, "retries": 0,
    })
    out = open(args.acked, "a", buffering=1)

    def on_delivery(error, message):
        if error is None:
            i = int(message.key())
            out.write("%d %d %d\n" % (message.partition(), message.offset(), i))

    for i in range(args.records):
        while True:
            try:
                producer.produce(args.topic, key=b"%d" % i, value=value(i),
                                 partition=i % args.partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(30)
    out.flush()
    os.fsync(out.fileno())


def verify(args):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    acked = {}
    with open(args.acked) as lines:
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                continue  # the producer may have been killed mid-line
            partition, offset, i = map(int, parts)
            acked[(partition, offset)] = i
    if not acked:
        print("FAIL: nothing was acknowledged", file=sys.stderr)
        sys.exit(1)
    highest = {}
    for (partition, offset) in acked:
        highest[partition] = max(highest.get(partition, -1), offset)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "acked-unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)
                     for p in range(args.partitions)])
    next_offset = {p: 0 for p in range(args.partitions)}
    found = 0
    deadline = time.time() + 120
    while time.time() < deadline and any(next_offset[p] <= highest.get(p, -1)
                                         for p in range(args.partitions)):
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error():
                print("FAIL: consume error %s" % message.error(), file=sys.stderr)
                sys.exit(1)
            p, offset = message.partition(), message.offset()
            if offset != next_offset[p]:
                print("FAIL: partition %d jumped from %d to %d" % (p, next_offset[p], offset),
                      file=sys.stderr)
                sys.exit(1)
            next_offset[p] = offset + 1
            i = acked.get((p, offset))
            if i is not None:
                if message.value() != value(i) or message.key() != b"%d" % i:
                    print("FAIL: partition %d offset %d holds the wrong record" % (p, offset),
                          file=sys.stderr)
                    sys.exit(1)
                found += 1
    consumer.close()
    if found != len(acked):
        print("FAIL: %d of %d acknowledged records survived" % (found, len(acked)),
              file=sys.stderr)
        sys.exit(1)
    print("verified %d acknowledged records" % found)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "verify"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--acked", required=True)
    parser.add_argument("--records", type=int, default=10_000_000)
    args = parser.parse_args()
    {"produce": produce, "verify": verify}[args.mode](args)


if __name__ == "__main__":
    main()
