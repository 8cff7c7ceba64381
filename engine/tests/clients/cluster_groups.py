"""A consumer group on a cluster, across the loss of its coordinator.

`phase produce-and-consume`: creates the topic (replication factor 3, through the
controller), produces --records acks=all records, then one group member consumes about half
of them, committing each record's next offset synchronously, and prints a JSON summary.
`phase resume`: a new member of the same group reads its committed offsets (which must be
exactly what phase one committed), consumes the rest and prints a JSON summary.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, topic, partitions, deadline):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while time.monotonic() < deadline:
        futures = admin.create_topics([NewTopic(topic, partitions, 3)], request_timeout=10)
        try:
            futures[topic].result(15)
            return
        except KafkaException as error:
            if error.args[0].name() == "TOPIC_ALREADY_EXISTS":
                return
            time.sleep(0.5)
    sys.exit("topic not created in time")


def produce(bootstrap, topic, records):
    acked = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})

    def delivered(error, message):
        if error is None:
            acked.append(message.value().decode())

    for sequence in range(records):
        producer.produce(topic, value=f"v{sequence}".encode(), key=str(sequence).encode(),
                         on_delivery=delivered)
        producer.poll(0)
    producer.flush(60)
    return acked


def consumer(bootstrap, group):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 10000})


def consume(bootstrap, topic, group, until, deadline, start_committed=None):
    member = consumer(bootstrap, group)
    member.subscribe([topic])
    read, committed = [], {}
    while len(read) < until and time.monotonic() < deadline:
        message = member.poll(0.5)
        if message is None or message.error():
            continue
        read.append([message.partition(), message.offset(), message.value().decode()])
        position = TopicPartition(topic, message.partition(), message.offset() + 1)
        while time.monotonic() < deadline:
            try:
                member.commit(offsets=[position], asynchronous=False)
                break
            except KafkaException:
                time.sleep(0.2)  # the coordinator moved: commit again
        committed[message.partition()] = message.offset() + 1
    member.close()
    return read, committed


def committed_offsets(bootstrap, topic, group, partitions, deadline):
    member = consumer(bootstrap, group)
    while time.monotonic() < deadline:
        try:
            wanted = [TopicPartition(topic, p) for p in range(partitions)]
            found = member.committed(wanted, timeout=10)
            member.close()
            # A partition without a commit has offset -1001 (OFFSET_INVALID): left out.
            return {str(tp.partition): tp.offset for tp in found if tp.offset >= 0}
        except KafkaException:
            time.sleep(0.5)
    sys.exit("committed offsets not fetched in time")


def main():
    arguments = argparse.ArgumentParser()
    arguments.add_argument("phase", choices=["produce-and-consume", "resume"])
    arguments.add_argument("--bootstrap", required=True)
    arguments.add_argument("--topic", default="grouped")
    arguments.add_argument("--group", default="cluster-group")
    arguments.add_argument("--partitions", type=int, default=3)
    arguments.add_argument("--records", type=int, default=3000)
    arguments.add_argument("--remaining", type=int, default=0, help="records left to read")
    arguments.add_argument("--seconds", type=float, default=90)
    options = arguments.parse_args()
    deadline = time.monotonic() + options.seconds
    if options.phase == "produce-and-consume":
        create_topic(options.bootstrap, options.topic, options.partitions, deadline)
        acked = produce(options.bootstrap, options.topic, options.records)
        read, committed = consume(options.bootstrap, options.topic, options.group,
                                  options.records // 2, deadline)
        print(json.dumps({"acked": acked, "read": read,
                          "committed": {str(p): o for p, o in committed.items()}}))
    else:
        before = committed_offsets(options.bootstrap, options.topic, options.group,
                                   options.partitions, deadline)
        read, _ = consume(options.bootstrap, options.topic, options.group, options.remaining,
                          deadline)
        print(json.dumps({"committed_before": before, "read": read}))


if __name__ == "__main__":
    main()
