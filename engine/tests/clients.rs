//! End-to-end: the real `tern` binary driven by real Kafka clients — confluent-kafka
//! (librdkafka 2.1x), kafka-python and Debian's kcat (librdkafka 2.0) — on 127.0.0.1.
//! `.ci/run` installs the clients.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{batch_producers, Connection};
use common::{python, run_checked, test_dir, TernServer};

const RECORDS: &str = "100000";

fn roundtrip(server: &TernServer, client: &str, topic: &str, phase: &str) {
    run_checked(
        python("roundtrip.py").args([
            "--client",
            client,
            "--bootstrap",
            &server.bootstrap(),
            "--topic",
            topic,
            "--partitions",
            "3",
            "--records",
            RECORDS,
            "--phase",
            phase,
        ]),
        &format!("{client} {phase}"),
    );
}

/// Every stored batch of the topic's 3 partitions carries a producer id: the client really
/// produced idempotently (InitProducerId served), and the consume phase saw no duplicates.
fn assert_produced_idempotently(server: &TernServer, topic: &str) {
    let mut connection = Connection::connect(&server.bootstrap());
    for partition in 0..3 {
        let batches = batch_producers(&mut connection, topic, partition);
        assert!(!batches.is_empty(), "{topic}-{partition} is empty");
        for (base_offset, producer_id) in batches {
            assert!(producer_id >= 0, "{topic}-{partition} batch at {base_offset}: no producer id");
        }
    }
}

#[test]
fn confluent_kafka_round_trip_survives_a_restart() {
    let directory = test_dir("confluent");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    roundtrip(&server, "confluent", "confluent-roundtrip", "create,produce,consume");
    assert_produced_idempotently(&server, "confluent-roundtrip");
    server.stop();
    server.restart();
    roundtrip(&server, "confluent", "confluent-roundtrip", "consume");
    server.stop();
}

#[test]
fn kafka_python_round_trip_survives_a_restart() {
    let directory = test_dir("kafka-python");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    roundtrip(&server, "kafka-python", "kafka-python-roundtrip", "create,produce,consume");
    assert_produced_idempotently(&server, "kafka-python-roundtrip");
    server.stop();
    server.restart();
    roundtrip(&server, "kafka-python", "kafka-python-roundtrip", "consume");
    server.stop();
}

#[test]
fn kcat_produces_and_consumes_with_keys() {
    let directory = test_dir("kcat");
    let mut server = TernServer::start(&directory.join("data"), &["--default-partitions", "2"]);
    let lines: String = (0..1000).map(|i| format!("key{i}:value {i}\n")).collect();
    let mut producer = Command::new("kcat")
        .args(["-b", &server.bootstrap(), "-t", "kcat-topic", "-P", "-K:", "-p", "0"])
        .args(["-X", "acks=all"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed by .ci/run");
    producer.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(producer.wait().unwrap().success(), "kcat -P failed; log:\n{}", server.log());
    let output = run_checked(
        Command::new("kcat").args([
            "-b",
            &server.bootstrap(),
            "-t",
            "kcat-topic",
            "-C",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ]),
        "kcat -C",
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), lines);
    let metadata = run_checked(
        Command::new("kcat").args(["-b", &server.bootstrap(), "-L", "-t", "kcat-topic"]),
        "kcat -L",
    );
    let metadata = String::from_utf8_lossy(&metadata.stdout);
    assert!(metadata.contains("topic \"kcat-topic\" with 2 partitions"), "{metadata}");
    server.stop();
}

#[test]
fn acknowledged_records_survive_kill_minus_nine() {
    let directory = test_dir("kill9");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    let acked = directory.join("acked.txt");
    let bootstrap = server.bootstrap();
    let topic_args = ["--topic", "crash", "--partitions", "3"];
    run_checked(
        python("roundtrip.py")
            .args(["--client", "confluent", "--bootstrap", &bootstrap])
            .args(topic_args)
            .args(["--phase", "create"]),
        "create topic",
    );
    let mut producer = python("acked.py")
        .args(["produce", "--bootstrap", &bootstrap, "--acked"])
        .arg(&acked)
        .args(topic_args)
        .stdout(Stdio::null())
        .spawn()
        .expect("start producer");
    let deadline = Instant::now() + Duration::from_secs(120);
    let acknowledged = || std::fs::read_to_string(&acked).map(|s| s.lines().count()).unwrap_or(0);
    while acknowledged() < 30_000 {
        assert!(Instant::now() < deadline, "producer too slow; log:\n{}", server.log());
        assert!(producer.try_wait().unwrap().is_none(), "producer exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let _ = producer.kill();
    let _ = producer.wait();
    server.restart();
    run_checked(
        python("acked.py")
            .args(["verify", "--bootstrap", &server.bootstrap(), "--acked"])
            .arg(&acked)
            .args(topic_args),
        "verify acknowledged records",
    );
    server.stop();
}

/// Runs one features.py check against a fresh broker; returns the data directory.
fn features(check: &str) -> std::path::PathBuf {
    let directory = test_dir(&format!("features-{check}"));
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    run_checked(
        python("features.py").args(["--bootstrap", &server.bootstrap(), check]),
        &format!("features.py {check}"),
    );
    server.stop();
    directory.join("data")
}

/// Also proves the batches were stored compressed, as librdkafka sent them: librdkafka
/// silently produces uncompressed unless the broker advertises Produce v0 (KAFKA-18659).
#[test]
fn every_compression_codec_round_trips_as_stored() {
    let data_dir = features("compression");
    // librdkafka enables lz4 only when FindCoordinator is served (its LZ4 feature check).
    for (codec, codec_id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let segment = data_dir.join(format!("compressed-{codec}-0/00000000000000000000.log"));
        let bytes = std::fs::read(&segment).expect("the codec's first segment");
        // Record batch v2: attributes (int16) at byte 21; codec in the low three bits.
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]);
        assert_eq!(attributes & 0x7, codec_id, "{codec}: the first batch is not {codec}");
    }
}

/// The broker converts batches of topics that ask for it (Kafka's `LogValidator`): the
/// stored batches carry the topic's codec and the LogAppendTime bit, and clients read every
/// record back as produced.
#[test]
fn topics_with_compression_type_or_log_append_time_store_converted_batches() {
    let data_dir = features("conversion");
    let expected = [
        ("converted-zstd-from-none", 4, false),
        ("converted-gzip-from-lz4", 1, false),
        ("converted-uncompressed-from-snappy", 0, false),
        ("converted-appendtime", 0, true),
        ("converted-appendtime-lz4-from-zstd", 3, true),
    ];
    for (topic, codec_id, log_append_time) in expected {
        let segment = data_dir.join(format!("{topic}-0/00000000000000000000.log"));
        let bytes = std::fs::read(&segment).expect("the topic's first segment");
        // Record batch v2: attributes (int16) at byte 21: codec in the low three bits,
        // timestamp type in bit 3.
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]);
        assert_eq!(attributes & 0x7, codec_id, "{topic}: stored codec");
        assert_eq!(attributes & 0x8 != 0, log_append_time, "{topic}: timestamp type");
    }
}

#[test]
fn offsets_for_times_and_watermarks_match_what_was_produced() {
    features("timestamps");
}

#[test]
fn admin_client_creates_describes_refuses_and_deletes() {
    features("admin");
}

#[test]
fn a_parked_fetch_returns_when_a_record_arrives() {
    features("longpoll");
}

#[test]
fn idempotent_producer_survives_connections_cut_mid_flight_without_duplicates() {
    let directory = test_dir("flaky-proxy");
    let proxy_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = format!("127.0.0.1:{proxy_port}");
    let mut server =
        TernServer::start(&directory.join("data"), &["--shards", "2", "--advertise", &proxy]);
    run_checked(
        python("flaky_proxy.py")
            .args(["--listen", &proxy, "--upstream", &server.bootstrap()])
            .args(["--topic", "flaky", "--partitions", "3", "--records", RECORDS])
            .args(["--cut-ms", "300"]),
        "flaky_proxy.py",
    );
    server.stop();
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_per_key_across_a_restart() {
    let directory = test_dir("compaction");
    let arguments =
        ["--shards", "2", "--log-cleaner-interval-ms", "100", "--internal-topic-configs"];
    let mut server = TernServer::start(&directory.join("data"), &arguments);
    let compaction = |server: &TernServer, topic: &str, codecs: &str, phase: &str| {
        let output = run_checked(
            python("compaction.py")
                .args(["--bootstrap", &server.bootstrap(), "--topic", topic])
                .args(["--codecs", codecs, "--phase", phase]),
            &format!("compaction.py {phase}"),
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
    };
    let all = "none,gzip,snappy,lz4,zstd";
    compaction(&server, "compacted", all, "create,produce,wait,verify");
    // kafka-python has only gzip among the codecs here; it must skip the filler batches too.
    let plain = "none,gzip";
    compaction(&server, "compacted-plain", plain, "create,produce,wait,verify-kafka-python");
    server.stop();
    server.restart();
    compaction(&server, "compacted", all, "verify");
    compaction(&server, "compacted-plain", plain, "verify-kafka-python");
    server.stop();
}

/// AlterConfigs, IncrementalAlterConfigs and DeleteRecords through confluent-kafka's admin
/// client (records_admin.py: configs reported with their source, applied to a live topic's
/// segments and retention, records deleted and consumed from the new start). The process is
/// then killed (no clean shutdown): the deletion and the configs must still be there.
#[test]
fn admin_client_alters_configs_and_deletes_records_durably() {
    let directory = test_dir("records-admin");
    let arguments =
        ["--shards", "2", "--retention-check-interval-ms", "200", "--internal-topic-configs"];
    let mut server = TernServer::start(&directory.join("data"), &arguments);
    let records_admin = |server: &TernServer, phases: &str| {
        let output = run_checked(
            python("records_admin.py").args([
                "--bootstrap",
                &server.bootstrap(),
                "--topic",
                "records-admin",
                phases,
            ]),
            &format!("records_admin.py {phases}"),
        );
        print!("{}", String::from_utf8_lossy(&output.stdout));
    };
    records_admin(&server, "alter,retention,delete");
    server.kill9();
    server.restart();
    records_admin(&server, "verify");
    server.stop();
}
