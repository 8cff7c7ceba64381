//! End-to-end consumer groups: the real `tern` binary and real group consumers
//! (confluent-kafka/librdkafka 2.1x, kafka-python, Debian's kcat) on 127.0.0.1. The scenarios
//! live in `clients/groups.py`; each checks that the group reads every record (none skipped
//! or lost) and that a consumer taking a partition over reads from exactly the committed
//! offset. Clients use a 3 s session timeout, which the broker is told to allow.

mod common;

use std::process::Command;

use common::{python, run_checked, test_dir, TernServer};

/// Lets the clients use short sessions, so takeovers after a crash take seconds, and lets a
/// new group's first rebalance wait 1 s (Kafka: 3 s) so consumers starting together share it.
const SERVER_ARGUMENTS: &[&str] = &[
    "--shards",
    "2",
    "--group-min-session-timeout-ms",
    "1000",
    "--group-initial-rebalance-delay-ms",
    "1000",
];

fn scenario(server: &TernServer, client: &str, assignor: &str, name: &str, topic: &str) {
    run_checked(
        python("groups.py").args([
            "--client",
            client,
            "--bootstrap",
            &server.bootstrap(),
            "--topic",
            topic,
            "--group",
            &format!("{topic}-group"),
            "--assignor",
            assignor,
            "--scenario",
            name,
        ]),
        &format!("groups.py {client} {assignor} {name}; broker log:\n{}", server.log()),
    );
}

#[test]
fn confluent_consumers_share_a_topic_and_one_takes_over_when_the_other_leaves() {
    let directory = test_dir("groups-share");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "confluent", "range", "share", "share-range");
    server.stop();
}

#[test]
fn every_client_side_assignor_works_through_the_coordinator() {
    let directory = test_dir("groups-assignors");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "confluent", "roundrobin", "share", "share-roundrobin");
    scenario(&server, "confluent", "cooperative-sticky", "share", "share-cooperative");
    server.stop();
}

#[test]
fn kafka_python_consumers_share_a_topic_and_take_over() {
    let directory = test_dir("groups-kafka-python");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "kafka-python", "range", "share", "share-kafka-python");
    scenario(&server, "kafka-python", "roundrobin", "share", "share-kafka-python-rr");
    server.stop();
}

#[test]
fn a_killed_consumer_loses_its_partitions_after_its_session_timeout() {
    let directory = test_dir("groups-kill");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "confluent", "range", "kill", "kill-9");
    server.stop();
}

#[test]
fn a_restarted_static_member_gets_its_partitions_back_without_a_rebalance() {
    let directory = test_dir("groups-static");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "confluent", "range", "static", "static-members");
    // The group's leader restarting: told it leads, it must not make the group rebalance.
    scenario(&server, "confluent", "range", "static-leader", "static-leader");
    scenario(&server, "kafka-python", "range", "static-leader", "static-leader-kafka-python");
    server.stop();
}

#[test]
fn committed_offsets_and_metadata_survive_a_broker_restart() {
    let directory = test_dir("groups-restart");
    let mut server = TernServer::start(&directory.join("data"), SERVER_ARGUMENTS);
    scenario(&server, "confluent", "range", "resume-first", "resume-confluent");
    scenario(&server, "kafka-python", "range", "resume-first", "resume-kafka-python");
    server.stop();
    server.restart();
    scenario(&server, "confluent", "range", "resume-second", "resume-confluent");
    scenario(&server, "kafka-python", "range", "resume-second", "resume-kafka-python");
    // kill -9: commits were acknowledged only once durable, so none is lost.
    server.kill9();
    server.restart();
    scenario(&server, "confluent", "range", "resume-second", "resume-confluent");
    server.stop();
}

/// Debian's kcat (librdkafka 2.0) as a balanced consumer: it reads everything once and
/// commits on close; the next run of the same group reads only what was produced since.
#[test]
fn kcat_balanced_consumer_commits_and_resumes() {
    let directory = test_dir("groups-kcat");
    let mut server = TernServer::start(&directory.join("data"), &["--default-partitions", "3"]);
    let values = |range: std::ops::Range<i32>| -> Vec<String> {
        let mut values: Vec<String> = range.map(|i| format!("value {i}")).collect();
        values.sort();
        values
    };
    kcat_produce(&server, &values(0..300));
    assert_eq!(kcat_consume(&server), values(0..300), "the first run reads everything");
    assert!(kcat_consume(&server).is_empty(), "the second run starts after the commits");
    kcat_produce(&server, &values(300..310));
    assert_eq!(kcat_consume(&server), values(300..310), "the third run reads only the new");
    server.stop();
}

fn kcat_produce(server: &TernServer, values: &[String]) {
    use std::io::Write;
    let mut producer = Command::new("kcat")
        .args(["-b", &server.bootstrap(), "-t", "kcat-group", "-P", "-X", "acks=all"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed by .ci/run");
    let lines: String = values.iter().map(|value| format!("{value}\n")).collect();
    producer.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(producer.wait().unwrap().success(), "kcat -P failed; log:\n{}", server.log());
}

/// One balanced-consumer run to the end of every partition (`-e`); the values read, sorted.
/// (`-o` would override the committed offsets, so the reset policy is set instead.)
fn kcat_consume(server: &TernServer) -> Vec<String> {
    let bootstrap = server.bootstrap();
    let output = run_checked(
        Command::new("timeout").args([
            "60",
            "kcat",
            "-b",
            &bootstrap,
            "-G",
            "kcat-consumers",
            "kcat-group",
            "-X",
            "auto.offset.reset=earliest",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ]),
        "kcat -G",
    );
    let mut values: Vec<String> =
        String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect();
    values.sort();
    values
}
