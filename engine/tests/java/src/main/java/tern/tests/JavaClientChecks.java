package tern.tests;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Checks that the Apache Kafka Java client (kafka-clients 4.x) works against a broker, run by
 * engine/tests/java_client.rs against the real tern binary. Each check exits 0 when every
 * expectation holds and 1 with a "FAIL: ..." line otherwise.
 *
 * Usage: JavaClientChecks (admin | produce-consume | consume) BOOTSTRAP [PREFIX] [IDEMPOTENCE]
 *
 * "group" consumes the data topic of an earlier "produce-consume" through a consumer group
 * (cooperative-sticky), commits, and checks that a second member of the group resumes at the
 * committed offsets and reads exactly the records produced after them.
 *
 * "consume" reads back what an earlier "produce-consume" with the same prefix wrote (the
 * records are generated from a fixed seed), e.g. after a broker restart.
 */
public final class JavaClientChecks {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final int PARTITIONS = 3;
    /** One producer per compression codec, each owning one partition (so order is kept). */
    private static final String[] COMPRESSIONS = {"none", "gzip", "snappy", "lz4", "zstd"};
    private static final int DATA_PARTITIONS = COMPRESSIONS.length;
    private static final int RECORDS = 20_000;
    private static final long BASE_TIMESTAMP_MS = 1_700_000_000_000L;

    private JavaClientChecks() {}

    public static void main(String[] arguments) throws Exception {
        if (arguments.length < 2) {
            fail("usage: JavaClientChecks (admin | produce-consume) BOOTSTRAP [PREFIX] [IDEMP]");
        }
        String bootstrap = arguments[1];
        String prefix = arguments.length > 2 ? arguments[2] : "java";
        boolean idempotence = arguments.length > 3 && Boolean.parseBoolean(arguments[3]);
        switch (arguments[0]) {
            case "admin" -> admin(bootstrap, prefix);
            case "produce-consume" -> produceConsume(bootstrap, prefix, idempotence, true);
            case "consume" -> produceConsume(bootstrap, prefix, idempotence, false);
            case "group" -> group(bootstrap, prefix);
            default -> fail("unknown check " + arguments[0]);
        }
        System.out.println("OK " + arguments[0]);
    }

    static void fail(String message) {
        System.out.println("FAIL: " + message);
        System.out.flush();
        System.exit(1);
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            fail(message);
        }
    }

    static Properties common(String bootstrap) {
        Properties properties = new Properties();
        properties.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        properties.put(AdminClientConfig.CLIENT_ID_CONFIG, "tern-java-checks");
        return properties;
    }

    // ---- admin ---------------------------------------------------------------------------

    static void admin(String bootstrap, String prefix) throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get(30, TimeUnit.SECONDS);
            check(nodes.size() == 1, "describeCluster: expected one node, got " + nodes);
            Node node = nodes.iterator().next();
            check(cluster.controller().get() != null, "describeCluster: no controller");
            String clusterId = cluster.clusterId().get();
            check(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");

            String topic = prefix + "-admin";
            NewTopic newTopic = new NewTopic(topic, PARTITIONS, (short) 1)
                .configs(Map.of("retention.ms", "3600000"));
            admin.createTopics(List.of(newTopic)).all().get(30, TimeUnit.SECONDS);
            expectCause(() -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1)))
                .all().get(), TopicExistsException.class, "createTopics of an existing topic");
            expectCause(() -> admin.createTopics(List.of(new NewTopic("bad/name", 1, (short) 1)))
                .all().get(), InvalidTopicException.class, "createTopics of an invalid name");

            check(admin.listTopics().names().get().contains(topic), "listTopics lacks " + topic);
            TopicDescription description =
                admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(description.partitions().size() == PARTITIONS,
                "describeTopics: partitions " + description.partitions().size());
            description.partitions().forEach(partition -> check(
                partition.leader() != null && partition.leader().id() == node.id(),
                "describeTopics: leader of " + partition + " is not " + node));

            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            ConfigEntry retention = config.get("retention.ms");
            check(retention != null && "3600000".equals(retention.value()),
                "describeConfigs retention.ms: " + retention);
            check(retention.source() == ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "describeConfigs retention.ms source: " + retention.source());
            ConfigEntry cleanup = config.get("cleanup.policy");
            check(cleanup != null && "delete".equals(cleanup.value()),
                "describeConfigs cleanup.policy: " + cleanup);

            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (admin.listTopics().names().get().contains(topic)) {
                check(System.nanoTime() < deadline, "deleted topic still listed: " + topic);
                Thread.sleep(100);
            }
        }
    }

    interface Action {
        void run() throws Exception;
    }

    static void expectCause(Action action, Class<? extends Throwable> expected, String what)
            throws Exception {
        try {
            action.run();
        } catch (ExecutionException error) {
            check(expected.isInstance(error.getCause()),
                what + ": expected " + expected.getSimpleName() + ", got " + error.getCause());
            return;
        }
        fail(what + ": expected " + expected.getSimpleName() + ", got success");
    }

    // ---- produce and consume ------------------------------------------------------------

    /** One record as sent, to compare with what comes back. */
    record Sent(int partition, byte[] key, byte[] value, List<Header> headers, long timestampMs) {}

    static List<Sent> records() {
        Random random = new Random(42);
        List<Sent> sent = new ArrayList<>(RECORDS);
        for (int i = 0; i < RECORDS; i++) {
            byte[] key = i % 11 == 0 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
            byte[] value = null;
            if (i % 7 != 0 || key == null) {
                value = new byte[random.nextInt(2_000)];
                random.nextBytes(value);
            }
            List<Header> headers = new ArrayList<>();
            if (i % 3 == 0) {
                headers.add(new RecordHeader("h", ("header-" + i).getBytes(StandardCharsets.UTF_8)));
                headers.add(new RecordHeader("empty", new byte[0]));
            }
            sent.add(new Sent(i % DATA_PARTITIONS, key, value, headers, BASE_TIMESTAMP_MS + i));
        }
        return sent;
    }

    static void produceConsume(String bootstrap, String prefix, boolean idempotence,
            boolean produceFirst) throws Exception {
        String topic = prefix + "-data";
        List<Sent> sent = records();
        Map<TopicPartition, List<Sent>> byPartition = new HashMap<>();
        List<Long> offsets = List.of();
        if (produceFirst) {
            try (Admin admin = Admin.create(common(bootstrap))) {
                admin.createTopics(List.of(new NewTopic(topic, DATA_PARTITIONS, (short) 1)))
                    .all().get(30, TimeUnit.SECONDS);
            }
            offsets = produce(bootstrap, topic, sent, COMPRESSIONS, idempotence);
        }
        for (int i = 0; i < sent.size(); i++) {
            TopicPartition partition = new TopicPartition(topic, sent.get(i).partition());
            byPartition.computeIfAbsent(partition, p -> new ArrayList<>()).add(sent.get(i));
        }
        check(!produceFirst || offsets.size() == sent.size(), "not every record acknowledged");
        consumeAndCompare(bootstrap, topic, byPartition);
        offsetsAndSeek(bootstrap, topic, byPartition);
    }

    static List<Long> produce(String bootstrap, String topic, List<Sent> sent,
            String[] compressions, boolean idempotence) throws Exception {
        List<KafkaProducer<byte[], byte[]>> producers = new ArrayList<>();
        for (String compression : compressions) {
            Properties properties = common(bootstrap);
            properties.put(ProducerConfig.ACKS_CONFIG, "all");
            properties.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, Boolean.toString(idempotence));
            properties.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
            properties.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            producers.add(new KafkaProducer<>(properties, new ByteArraySerializer(),
                new ByteArraySerializer()));
        }
        // Records of one partition go through one producer, so their order is the send order.
        List<Future<RecordMetadata>> futures = new ArrayList<>(sent.size());
        for (Sent record : sent) {
            KafkaProducer<byte[], byte[]> producer =
                producers.get(record.partition() % producers.size());
            futures.add(producer.send(new ProducerRecord<>(topic, record.partition(),
                record.timestampMs(), record.key(), record.value(), record.headers())));
        }
        List<Long> offsets = new ArrayList<>(futures.size());
        long[] expected = new long[DATA_PARTITIONS];
        for (int i = 0; i < futures.size(); i++) {
            RecordMetadata metadata = futures.get(i).get(60, TimeUnit.SECONDS);
            int partition = sent.get(i).partition();
            check(metadata.partition() == partition, "acknowledged in the wrong partition");
            check(metadata.offset() == expected[partition],
                "record " + i + ": acknowledged offset " + metadata.offset() + ", expected "
                    + expected[partition] + " (offsets are contiguous per partition)");
            expected[partition]++;
            offsets.add(metadata.offset());
        }
        for (KafkaProducer<byte[], byte[]> producer : producers) {
            producer.close(TIMEOUT);
        }
        return offsets;
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Properties properties = common(bootstrap);
        properties.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        properties.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        properties.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "65536");
        return new KafkaConsumer<>(properties, new ByteArrayDeserializer(),
            new ByteArrayDeserializer());
    }

    static void consumeAndCompare(String bootstrap, String topic,
            Map<TopicPartition, List<Sent>> byPartition) {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap)) {
            consumer.assign(byPartition.keySet());
            consumer.seekToBeginning(byPartition.keySet());
            Map<TopicPartition, Integer> next = new HashMap<>();
            int remaining = byPartition.values().stream().mapToInt(List::size).sum();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (remaining > 0) {
                check(System.nanoTime() < deadline, remaining + " records never consumed");
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    TopicPartition partition = new TopicPartition(topic, record.partition());
                    int index = next.merge(partition, 1, Integer::sum) - 1;
                    compare(byPartition.get(partition), index, record);
                    remaining--;
                }
            }
        }
    }

    static void compare(List<Sent> expected, int index, ConsumerRecord<byte[], byte[]> record) {
        String where = record.topic() + "-" + record.partition() + "@" + record.offset();
        check(index < expected.size(), where + ": more records than were sent");
        Sent sent = expected.get(index);
        check(record.offset() == index, where + ": expected offset " + index);
        check(Arrays.equals(sent.key(), record.key()), where + ": key differs");
        check(Arrays.equals(sent.value(), record.value()), where + ": value differs");
        check(record.timestamp() == sent.timestampMs(), where + ": timestamp differs");
        List<Header> headers = Arrays.asList(record.headers().toArray());
        check(headers.size() == sent.headers().size(), where + ": header count differs");
        for (int i = 0; i < headers.size(); i++) {
            check(headers.get(i).key().equals(sent.headers().get(i).key())
                && Arrays.equals(headers.get(i).value(), sent.headers().get(i).value()),
                where + ": header " + i + " differs");
        }
    }

    static KafkaConsumer<byte[], byte[]> groupConsumer(String bootstrap, String group) {
        Properties properties = common(bootstrap);
        properties.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        properties.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        properties.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        properties.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        return new KafkaConsumer<>(properties, new ByteArrayDeserializer(),
            new ByteArrayDeserializer());
    }

    /** Polls until `count` records arrived (or fails after 60 s); returns them. */
    static List<ConsumerRecord<byte[], byte[]>> pollExactly(KafkaConsumer<byte[], byte[]> consumer,
            int count) {
        List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (records.size() < count) {
            check(System.nanoTime() < deadline, "group: " + records.size() + " of " + count);
            consumer.poll(Duration.ofMillis(200)).forEach(records::add);
        }
        return records;
    }

    static void group(String bootstrap, String prefix) throws Exception {
        String topic = prefix + "-data";
        String group = prefix + "-group";
        try (KafkaConsumer<byte[], byte[]> first = groupConsumer(bootstrap, group)) {
            first.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> all = pollExactly(first, RECORDS);
            check(all.size() == RECORDS, "group: read " + all.size() + ", expected " + RECORDS);
            first.commitSync(TIMEOUT);
        }
        int extra = 100;
        Properties properties = common(bootstrap);
        properties.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(properties,
                new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < extra; i++) {
                producer.send(new ProducerRecord<>(topic, i % DATA_PARTITIONS, null,
                    ("after-commit-" + i).getBytes(StandardCharsets.UTF_8))).get();
            }
        }
        try (KafkaConsumer<byte[], byte[]> second = groupConsumer(bootstrap, group)) {
            second.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> rest = pollExactly(second, extra);
            for (ConsumerRecord<byte[], byte[]> record : rest) {
                String value = new String(record.value(), StandardCharsets.UTF_8);
                check(value.startsWith("after-commit-"),
                    "group: the second member re-read " + record.topic() + "-"
                        + record.partition() + "@" + record.offset() + " below the commit");
            }
            check(second.poll(Duration.ofSeconds(1)).isEmpty(), "group: more than expected");
        }
    }

    static void offsetsAndSeek(String bootstrap, String topic,
            Map<TopicPartition, List<Sent>> byPartition) {
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap)) {
            Set<TopicPartition> partitions = byPartition.keySet();
            Map<TopicPartition, Long> beginning = consumer.beginningOffsets(partitions, TIMEOUT);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions, TIMEOUT);
            for (TopicPartition partition : partitions) {
                check(beginning.get(partition) == 0, "beginningOffsets " + partition);
                check(end.get(partition) == byPartition.get(partition).size(),
                    "endOffsets " + partition + ": " + end.get(partition));
            }
            TopicPartition first = new TopicPartition(topic, 0);
            List<Sent> firstSent = byPartition.get(first);
            int index = firstSent.size() / 2;
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(
                Map.of(first, firstSent.get(index).timestampMs()), TIMEOUT);
            check(found.get(first) != null && found.get(first).offset() == index,
                "offsetsForTimes: " + found.get(first) + ", expected offset " + index);
            Map<TopicPartition, OffsetAndTimestamp> beyond = consumer.offsetsForTimes(
                Map.of(first, BASE_TIMESTAMP_MS + RECORDS * 2L), TIMEOUT);
            check(beyond.get(first) == null, "offsetsForTimes past the end: " + beyond);

            TopicPartition second = new TopicPartition(topic, 1);
            consumer.assign(List.of(second));
            consumer.seek(second, 100);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (true) {
                check(System.nanoTime() < deadline, "nothing consumed after seek");
                var records = consumer.poll(Duration.ofMillis(500));
                if (!records.isEmpty()) {
                    long offset = records.iterator().next().offset();
                    check(offset == 100, "first record after seek(100) has offset " + offset);
                    break;
                }
            }
        }
    }
}
