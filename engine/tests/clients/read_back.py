#!/usr/bin/env python3
"""Reads every partition of a topic from the beginning with confluent-kafka and checks what
memory.rs produced: in each partition, record k carries k as its first 8 bytes (big-endian)
and is `--value-bytes` long. Prints "partition count" per partition; exits 1 on a mismatch.

    read_back.py --bootstrap B --topic T --partitions P --expected N [--value-bytes V]
        N records per partition are expected.
"""
import argparse
import struct
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--value-bytes", type=int, default=65536)
    args = parser.parse_args()

    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "read-back",
        "enable.auto.commit": False, "enable.partition.eof": True,
        "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 1048576,
    })
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)
                     for p in range(args.partitions)])
    counts = [0] * args.partitions
    finished = set()
    deadline = time.time() + 300
    while len(finished) < args.partitions and time.time() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            error = message.error()
            if error is not None:
                if error.code() == -191:  # _PARTITION_EOF
                    if counts[message.partition()] >= args.expected:
                        finished.add(message.partition())
                    continue
                print("consume error: %s" % error, file=sys.stderr)
                return 1
            partition = message.partition()
            value = message.value()
            (index,) = struct.unpack(">q", value[:8])
            if index != counts[partition] or len(value) != args.value_bytes:
                print("partition %d offset %d: record %d of %d bytes, expected %d" % (
                    partition, message.offset(), index, len(value), counts[partition]),
                    file=sys.stderr)
                return 1
            counts[partition] += 1
    consumer.close()
    for partition, count in enumerate(counts):
        print("%d %d" % (partition, count))
    if any(count != args.expected for count in counts):
        print("expected %d per partition" % args.expected, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
