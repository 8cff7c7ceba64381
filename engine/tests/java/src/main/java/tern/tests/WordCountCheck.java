package tern.tests;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams word count (a state store with a compacted changelog topic, and a repartition
 * topic from groupBy) against a broker: the latest count per word on the output topic must
 * equal the counts of the generated input. The input is generated from a fixed seed, so the
 * expected output is the same for every broker; engine/tests/java_client.rs runs it against
 * Tern and against Apache Kafka.
 *
 * Usage: WordCountCheck BOOTSTRAP PREFIX STATE-DIR
 */
public final class WordCountCheck {
    private static final int LINES = 2_000;
    private static final int PARTITIONS = 3;
    private static final String[] WORDS = {
        "kafka", "tern", "stream", "log", "broker", "replica", "offset", "batch", "record",
        "topic", "partition", "consumer", "producer", "group", "commit", "fsync",
    };

    private WordCountCheck() {}

    public static void main(String[] arguments) throws Exception {
        if (arguments.length != 3) {
            JavaClientChecks.fail("usage: WordCountCheck BOOTSTRAP PREFIX STATE-DIR");
        }
        String bootstrap = arguments[0];
        String input = arguments[1] + "-wordcount-input";
        String output = arguments[1] + "-wordcount-output";
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG,
                (Object) bootstrap))) {
            admin.createTopics(List.of(new NewTopic(input, PARTITIONS, (short) 1),
                new NewTopic(output, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
        Map<String, Long> expected = produceLines(bootstrap, input);
        try (KafkaStreams streams = new KafkaStreams(topology(input, output),
                streamsConfig(bootstrap, arguments[1], arguments[2]))) {
            streams.start();
            Map<String, Long> counted = readCounts(bootstrap, output, expected);
            JavaClientChecks.check(counted.equals(expected),
                "word counts differ:\n  expected " + expected + "\n  counted  " + counted);
            streams.close(Duration.ofSeconds(30));
        }
        System.out.println("OK wordcount " + expected.size() + " words");
    }

    static Properties streamsConfig(String bootstrap, String prefix, String stateDir) {
        Properties properties = new Properties();
        properties.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix + "-wordcount");
        properties.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        properties.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        properties.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        properties.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        properties.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        properties.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        properties.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG),
            "earliest");
        return properties;
    }

    static org.apache.kafka.streams.Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> lines =
            builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()));
        lines.flatMapValues(line -> Arrays.asList(line.split(" ")))
            .groupBy((key, word) -> word)
            .count(Materialized.as("word-counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static Map<String, Long> produceLines(String bootstrap, String input) throws Exception {
        Random random = new Random(7);
        Map<String, Long> expected = new TreeMap<>();
        Properties properties = new Properties();
        properties.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        properties.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(properties,
                new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < LINES; i++) {
                List<String> words = new ArrayList<>();
                for (int w = 1 + random.nextInt(8); w > 0; w--) {
                    String word = WORDS[random.nextInt(WORDS.length)];
                    words.add(word);
                    expected.merge(word, 1L, Long::sum);
                }
                producer.send(new ProducerRecord<>(input, "line-" + i, String.join(" ", words)));
            }
            producer.flush();
        }
        return expected;
    }

    /** Latest count per word on the output topic, read until it equals `expected` or 90 s. */
    static Map<String, Long> readCounts(String bootstrap, String output,
            Map<String, Long> expected) {
        Properties properties = new Properties();
        properties.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        properties.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        Map<String, Long> counted = new TreeMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(properties,
                new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                partitions.add(new TopicPartition(output, p));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            while (!counted.equals(expected) && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, Long> record : consumer.poll(Duration.ofMillis(200))) {
                    counted.put(record.key(), record.value());
                }
            }
        }
        return counted;
    }
}
