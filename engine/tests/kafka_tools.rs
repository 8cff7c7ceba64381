//! Apache Kafka's own command-line tools (4.4.0, the `kafka-tools` classes that
//! `kafka-producer-perf-test.sh`, `kafka-consumer-perf-test.sh`, `kafka-topics.sh` and
//! `kafka-consumer-groups.sh` run), unchanged, against Tern: what an operator types first.
//! `benches/peers/kafka.sh tool <Class>` resolves them from Maven Central into a cache.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_checked, test_dir, TernServer};

const RECORDS: usize = 20_000;

fn kafka_tool(class: &str, arguments: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peers/kafka.sh");
    let output = run_checked(
        Command::new("bash").arg(script).arg("tool").arg(class).args(arguments),
        &format!("{class} {}", arguments.join(" ")),
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn data_dir(directory: &Path) -> PathBuf {
    directory.join("tern")
}

#[test]
fn kafkas_own_tools_work_unchanged_against_tern() {
    let directory = test_dir("kafka-tools");
    let mut tern = TernServer::start(&data_dir(&directory), &[]);
    let bootstrap = tern.bootstrap();
    let created = kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &["--bootstrap-server", &bootstrap, "--create", "--topic", "perf", "--partitions", "3"],
    );
    assert!(created.contains("Created topic perf"), "{created}");
    let described = kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &["--bootstrap-server", &bootstrap, "--describe", "--topic", "perf"],
    );
    assert!(described.contains("PartitionCount: 3"), "{described}");
    // The producer perf test with its defaults: acks=all and idempotence on.
    let records = RECORDS.to_string();
    let produced = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            "perf",
            "--num-records",
            &records,
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
        ],
    );
    assert!(produced.contains(&format!("{RECORDS} records sent")), "{produced}");
    // The consumer perf test joins a group and reads everything back.
    let consumed = kafka_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "perf",
            "--messages",
            &records,
            "--group",
            "perf-group",
            "--timeout",
            "60000",
        ],
    );
    let line = consumed.lines().last().unwrap_or_default();
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...
    assert_eq!(fields.get(4), Some(&records.as_str()), "{consumed}");
    // The group's committed offsets, as the operator's tool shows them: all read, no lag.
    let groups = kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--bootstrap-server", &bootstrap, "--describe", "--group", "perf-group"],
    );
    let lags: Vec<&str> = groups
        .lines()
        .filter(|line| line.starts_with("perf-group"))
        .filter_map(|line| line.split_whitespace().nth(5))
        .collect();
    assert_eq!(lags, ["0", "0", "0"], "{groups}");
    tern.stop();
}
