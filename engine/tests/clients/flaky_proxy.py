#!/usr/bin/env python3
"""An idempotent producer whose connections are cut mid-flight, then a check of the log.

A TCP proxy in this process forwards --listen to --upstream (Tern, started with
--advertise pointing at the proxy, so every client connection goes through it). While the
producer runs, every --cut-ms milliseconds it dooms the next connection that carries a
Produce request: the request reaches the broker, the response is swallowed, and the connection is
cut 50 ms later — so the client must retry a batch the broker already stored, and the
broker must answer that duplicate with the original offset without storing it again.
confluent-kafka with enable.idempotence=true produces --records records to --partitions
partitions through it. Then every partition is read back: each record exactly once, in the
order produced, offsets without gaps.

    flaky_proxy.py --listen HOST:PORT --upstream HOST:PORT --topic T --partitions P
                   --records N --cut-ms MS
"""
import argparse
import socket
import sys
import threading
import time


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


class Proxy:
    def __init__(self, listen, upstream):
        host, port = listen.split(":")
        self.server = socket.create_server((host, int(port)), reuse_port=False)
        uhost, uport = upstream.split(":")
        self.upstream = (uhost, int(uport))
        self.lock = threading.Lock()
        self.sockets = []
        self.cuts = 0
        # Set by the cutter: the next request forwarded dooms its connection.
        self.armed = threading.Event()
        self.doomed = set()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            client, _ = self.server.accept()
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, target, requests in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self.pump, args=(source, target, requests),
                                 daemon=True).start()

    def pump(self, source, target, requests):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not requests and source in self.doomed:
                    continue  # the broker's answer is lost
                target.sendall(data)
                # Only a Produce request (api key 0 after the size) dooms its connection:
                # dooming the client's set-up requests would only delay it.
                produce = len(data) >= 6 and data[4:6] == b"\x00\x00"
                if requests and produce and self.armed.is_set():
                    self.armed.clear()
                    self.doomed.add(target)
                    threading.Timer(0.05, self.cut, args=(source, target)).start()
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, *sockets):
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.cuts += 1

    def cut_all(self):
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.cuts += 1


def produce(args, proxy):
    from confluent_kafka import Producer
    producer = Producer({
        "bootstrap.servers": args.listen, "enable.idempotence": True, "acks": "all",
        "linger.ms": 2, "message.timeout.ms": 120000, "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 100,
    })
    failures = []

    def on_delivery(error, message):
        if error is not None:
            failures.append(str(error))

    stop = threading.Event()

    def cutter():
        while not stop.wait(args.cut_ms / 1000.0):
            proxy.armed.set()

    threading.Thread(target=cutter, daemon=True).start()
    for i in range(args.records):
        while True:
            try:
                producer.produce(args.topic, value=b"%d" % i, partition=i % args.partitions,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    stop.set()
    proxy.armed.clear()
    if remaining or failures:
        fail("%d undelivered, failures: %s" % (remaining, failures[:5]))
    print("produced %d records through %d connection cuts" % (args.records, proxy.cuts))


def verify(args):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    consumer = Consumer({"bootstrap.servers": args.listen, "group.id": "flaky-unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)
                     for p in range(args.partitions)])
    seen = {p: [] for p in range(args.partitions)}
    total = 0
    deadline = time.time() + 120
    expected_total = args.records
    while total < expected_total and time.time() < deadline:
        for message in consumer.consume(num_messages=5000, timeout=1.0):
            if message.error():
                fail("consume error: %s" % message.error())
            seen[message.partition()].append((message.offset(), int(message.value())))
            total += 1
    # Anything beyond the expected count would be a duplicate: read a little longer.
    for message in consumer.consume(num_messages=5000, timeout=2.0):
        seen[message.partition()].append((message.offset(), int(message.value())))
    consumer.close()
    for partition in range(args.partitions):
        want = list(range(partition, args.records, args.partitions))
        got = seen[partition]
        offsets = [offset for offset, _ in got]
        if offsets != list(range(len(got))):
            fail("partition %d: offsets are not contiguous from 0" % partition)
        values = [value for _, value in got]
        if values != want:
            duplicates = len(values) - len(set(values))
            fail("partition %d: %d records (%d duplicates), expected %d in order"
                 % (partition, len(values), duplicates, len(want)))
    print("verified %d records: no duplicates, no gaps, order kept" % args.records)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--cut-ms", type=int, default=300)
    args = parser.parse_args()
    from confluent_kafka.admin import AdminClient, NewTopic
    proxy = Proxy(args.listen, args.upstream)
    admin = AdminClient({"bootstrap.servers": args.listen})
    for future in admin.create_topics([NewTopic(args.topic, args.partitions, 1)]).values():
        future.result(timeout=30)
    produce(args, proxy)
    verify(args)


if __name__ == "__main__":
    main()
