//! Real processes, a real client: brokers run as one `tern` process each, and the leader of a
//! partition is killed with SIGKILL again and again while confluent-kafka produces with
//! acks=all and idempotence. No acknowledged record may be lost, none stored twice.
//!
//! `clients/failover.py` produces, then reads every partition back and judges (a JSON
//! verdict). This test owns the brokers: it finds the leader (Metadata), kills it, restarts
//! it, and checks that every offset the consumer never saw is a control batch.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cluster::TernCluster;
use common::failover::{
    assert_gaps_are_control_batches, assert_verdict, wait_for_leader, FailoverScript,
    PROGRESS_RECORDS, TEST_SECONDS_MAX, TOPIC,
};
use common::kafka::Connection;
use common::python;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, MetadataResponse};

/// A three-broker cluster, partitions of three replicas: each kill leaves two brokers, a
/// majority; each killed broker comes back before the next kill.
#[test]
fn three_brokers_lose_no_acknowledged_record_through_three_leader_kills() {
    let deadline = Instant::now() + Duration::from_secs(TEST_SECONDS_MAX);
    let mut cluster = TernCluster::start("failover-3", 3, &["--shards", "2"]);
    let mut script = FailoverScript::start(&cluster, 3);
    let (killed, acked_seen) = kill_leaders(&mut cluster, &mut script, 3, deadline);
    assert_eq!(killed.len(), 3);
    assert!(
        acked_seen >= 7 * PROGRESS_RECORDS,
        "{acked_seen}: before, and after each kill and restart"
    );
    let verdict = script.verdict(deadline);
    assert_verdict(&verdict, 3, acked_seen);
    assert_gaps_are_control_batches(&mut cluster, &verdict);
    println!("killed leaders {killed:?}; verdict {verdict}");
    cluster.stop_all();
}

/// A rolling restart as an operator runs one (each broker in turn: SIGTERM, wait for its
/// exit, start it again) while confluent-kafka produces with acks=all and idempotence: each
/// broker hands its leaderships over before it exits, and no acknowledged record is lost or
/// stored twice.
#[test]
fn a_rolling_restart_by_sigterm_loses_no_acknowledged_record() {
    let deadline = Instant::now() + Duration::from_secs(TEST_SECONDS_MAX);
    let mut cluster = TernCluster::start("rolling-3", 3, &["--shards", "2"]);
    let mut script = FailoverScript::start(&cluster, 3);
    let mut acked = script.wait_for_acked(PROGRESS_RECORDS, deadline);
    let node_ids: Vec<i32> = cluster.node_ids().collect();
    for node_id in node_ids {
        cluster.stop(node_id);
        let log = cluster.broker(node_id).log();
        let handed_over = log.lines().filter(|line| line.contains("handed over for shutdown"));
        let lines: Vec<&str> = handed_over.collect();
        assert!(!lines.is_empty(), "node {node_id} handed nothing over:\n{log}");
        assert!(lines.iter().all(|line| line.contains("still_led=0")), "{lines:#?}");
        acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
        cluster.restart(node_id);
        acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
        println!("node {node_id} restarted at {acked} acked");
    }
    let verdict = script.verdict(deadline);
    assert_verdict(&verdict, 3, acked);
    assert_gaps_are_control_batches(&mut cluster, &verdict);
    cluster.stop_all();
}

/// The same test on one standalone broker (replication factor 1): the harness, the script
/// and the checks, runnable before the cluster exists. Nothing acknowledges while the only
/// broker is down, so it restarts before progress is awaited.
#[test]
fn one_standalone_broker_loses_no_acknowledged_record_through_a_kill_and_restart() {
    let deadline = Instant::now() + Duration::from_secs(TEST_SECONDS_MAX);
    let mut cluster = TernCluster::start_standalone("failover-standalone", 1, &["--shards", "2"]);
    let mut script = FailoverScript::start(&cluster, 1);
    let (killed, acked_seen) = kill_leaders(&mut cluster, &mut script, 1, deadline);
    assert_eq!(killed, vec![1]);
    assert!(acked_seen >= 2 * PROGRESS_RECORDS, "{acked_seen}: before the kill, after the restart");
    let verdict = script.verdict(deadline);
    assert_verdict(&verdict, 1, acked_seen);
    assert_gaps_are_control_batches(&mut cluster, &verdict);
    println!("killed leaders {killed:?}; verdict {verdict}");
    cluster.stop_all();
}

/// The harness alone: brokers start together, each under its node id, and one killed comes
/// back on its own port with its own data; the others never notice.
#[test]
fn cluster_harness_restarts_a_killed_broker_on_its_port_and_data_directory() {
    let mut cluster = TernCluster::start_standalone("harness", 3, &["--shards", "1"]);
    assert_eq!(cluster.bootstrap().split(',').count(), 3);
    let ports: Vec<u16> = cluster.node_ids().map(|id| cluster.broker(id).port).collect();
    let pids: Vec<Option<u32>> = cluster.node_ids().map(|id| cluster.broker(id).pid()).collect();
    for node_id in cluster.node_ids() {
        assert_eq!(node_id_served(&cluster, node_id), node_id);
        assert_eq!(cluster.peer_port(node_id), None);
    }
    cluster.kill9(2);
    assert!(!cluster.is_running(2));
    assert!(cluster.is_running(1) && cluster.is_running(3));
    cluster.restart(2);
    assert!(cluster.is_running(2));
    assert_ne!(cluster.broker(2).pid(), pids[1], "a new process");
    let ports_after: Vec<u16> = cluster.node_ids().map(|id| cluster.broker(id).port).collect();
    assert_eq!(ports_after, ports);
    assert_eq!(node_id_served(&cluster, 2), 2, "the node id its data directory records");
    assert_eq!(cluster.broker(1).pid(), pids[0]);
    cluster.stop_all();
    assert!(cluster.node_ids().all(|id| cluster.broker(id).pid().is_none()));
}

/// A broker back with an empty data directory is another incarnation: it makes a new
/// directory id, registers under it, and every broker says so.
#[test]
fn a_broker_back_with_a_wiped_data_directory_registers_under_a_new_directory_id() {
    let mut cluster = TernCluster::start("wiped", 3, &["--shards", "1"]);
    cluster.wait_until_registered();
    let first = directory_ids_made(&cluster, 3);
    assert_eq!(first.len(), 1, "{first:?}");
    cluster.stop(3);
    std::fs::remove_dir_all(&cluster.broker(3).data_dir).unwrap();
    cluster.restart(3);
    let made = directory_ids_made(&cluster, 3);
    assert_eq!(made.len(), 2, "{made:?}");
    assert_ne!(made[0], made[1], "a new id");
    let news = format!("known={} new={}", made[0], made[1]);
    let deadline = Instant::now() + Duration::from_secs(TEST_SECONDS_MAX);
    for node_id in [1, 2] {
        while !cluster.broker(node_id).log().contains(&news) {
            assert!(Instant::now() < deadline, "node {node_id} never said:\n{}", cluster.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cluster.stop_all();
}

/// The counter-example of docs/replication.md ("Wiped data directories") between real
/// processes: a record is acknowledged by the leader and one follower while the third
/// replica is down; then the leader goes down and the follower's disk is wiped. The third
/// replica, without the record, must not be elected by the wiped one (which has forgotten
/// everything, its votes too): it is a learner, pinned out of the voters by its new
/// directory id. The record is there once the leader is back, and the wiped broker rejoins
/// the in-sync replicas. Five brokers, the partition on three: the controller needs three
/// of its five voters, which the two brokers off the partition and the third replica make
/// (the wiped broker does not vote in the controller either until it is re-added).
#[test]
fn a_wiped_replica_cannot_elect_a_replica_that_lacks_an_acknowledged_record() {
    let mut cluster = TernCluster::start("wiped-vote", 5, &["--shards", "1"]);
    cluster.wait_until_registered();
    create_topic_on(&cluster, "kept", &[1, 2, 3]);
    let leader = leader_of_topic(&mut cluster, "kept");
    let mut followers = [1, 2, 3].into_iter().filter(|node| *node != leader);
    let (wiped, behind) = (followers.next().expect("two"), followers.next().expect("followers"));
    cluster.kill9(behind);
    let offset = produce_value(&cluster, leader, "kept", "precious");
    cluster.kill9(leader);
    cluster.kill9(wiped);
    std::fs::remove_dir_all(&cluster.broker(wiped).data_dir).unwrap();
    cluster.restart_together(&[behind, wiped]);
    // Many election timeouts (1 s each) with only the two of them up.
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < quiet_until {
        let named = cluster.leader_of("kept", 0);
        assert!(named.is_none(), "{named:?} leads without the record:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.restart(leader);
    assert_eq!(leader_of_topic(&mut cluster, "kept"), leader, "only it holds the record");
    let fetched = fetch_bytes(&cluster, leader, "kept", offset);
    assert!(fetched.windows(8).any(|window| window == b"precious"), "{fetched:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = metadata_partition(&cluster, leader, "kept", 0);
        let in_sync = answer.map(|answer| answer.isr_nodes.len()).unwrap_or_default();
        if in_sync == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "never back in sync:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster.stop_all();
}

/// Broker liveness as Kafka has it: a broker the controller cannot reach for the session
/// timeout is fenced (Metadata and DescribeCluster stop listing it, its replicas are
/// offline, no new partition goes to it), and unfenced once it is back and caught up.
#[test]
fn a_broker_away_for_the_session_timeout_is_fenced_until_it_is_back() {
    let arguments = ["--shards", "1", "--broker-session-timeout-ms", "2000"];
    let mut cluster = TernCluster::start("fencing", 3, &arguments);
    cluster.wait_until_registered();
    create_replicated_topic(&cluster, "spread", &[]);
    let away = 3;
    cluster.kill9(away);
    let fenced = |answer: &MetadataResponse| {
        let listed = answer.brokers.iter().map(|broker| broker.node_id.0).collect::<Vec<_>>();
        let offline = &answer.topics[0].partitions[0].offline_replicas;
        listed == [1, 2] && offline.iter().map(|node| node.0).collect::<Vec<_>>() == [away]
    };
    wait_for_metadata(&cluster, 1, "spread", fenced);
    let described: DescribeClusterResponse = Connection::connect(&cluster.broker(2).bootstrap())
        .call(1, &DescribeClusterRequest::default());
    let listed: Vec<i32> = described.brokers.iter().map(|broker| broker.broker_id.0).collect();
    assert_eq!(listed, [1, 2], "{described:?}");
    assert!(described.controller_id.0 == 1 || described.controller_id.0 == 2, "{described:?}");
    // Three replicas need three unfenced brokers, as Kafka's placement does.
    let mut request = common::differential::create_request("too-wide", 1, &[]);
    request.topics[0].replication_factor = 3;
    let controller = described.controller_id.0;
    let created = Connection::connect(&cluster.broker(controller).bootstrap()).call(5, &request);
    assert_eq!(created.topics[0].error_code, 38, "{created:?}");
    cluster.restart(away);
    let unfenced = |answer: &MetadataResponse| {
        let listed = answer.brokers.iter().map(|broker| broker.node_id.0).collect::<Vec<_>>();
        listed == [1, 2, 3] && answer.topics[0].partitions[0].offline_replicas.is_empty()
    };
    wait_for_metadata(&cluster, 1, "spread", unfenced);
    cluster.stop_all();
}

/// Waits (at most 30 s) until broker `asked`'s Metadata for `topic` satisfies `condition`.
fn wait_for_metadata(
    cluster: &TernCluster,
    asked: i32,
    topic: &str,
    condition: impl Fn(&MetadataResponse) -> bool,
) {
    let request = common::differential::metadata_request(Some(&[topic]), false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer: MetadataResponse =
            Connection::connect(&cluster.broker(asked).bootstrap()).call(12, &request);
        if condition(&answer) {
            return;
        }
        assert!(Instant::now() < deadline, "{answer:?}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The controller's metadata log is a Raft group too, and its first voters cannot come
/// pinned from anywhere: its leader pins them with voters batches. Once pinned, a broker back
/// on a wiped directory (it forgot its vote and its log) cannot help elect a controller that
/// lacks a committed metadata record; it votes again once re-added.
#[test]
fn a_wiped_broker_cannot_elect_a_controller_that_lacks_a_committed_record() {
    let mut cluster = TernCluster::start("wiped-controller", 3, &["--shards", "1"]);
    cluster.wait_until_registered();
    let controller = wait_for_pinned_controller(&cluster);
    let mut followers = cluster.node_ids().filter(|node| *node != controller);
    let (wiped, behind) = (followers.next().expect("two"), followers.next().expect("followers"));
    cluster.kill9(behind);
    create_replicated_topic(&cluster, "committed", &[]);
    cluster.kill9(controller);
    cluster.kill9(wiped);
    std::fs::remove_dir_all(&cluster.broker(wiped).data_dir).unwrap();
    // Brokers without a controller serve no client: they answer nothing at all.
    cluster.restart_unanswering(&[behind, wiped]);
    // Many election timeouts (1 s each) with only the two of them up.
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < quiet_until {
        for asked in [behind, wiped] {
            assert!(cluster.is_running(asked), "{asked} exited:\n{}", cluster.logs());
            let named = controller_named_by(&cluster, asked);
            assert!(named.is_none(), "{named:?} controls without the record:\n{}", cluster.logs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let changes_before = metadata_voter_changes(&cluster, controller);
    cluster.restart(controller);
    // It removes the wiped directory's voter, then adds the broker back on its new one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metadata_voter_changes(&cluster, controller) < changes_before + 2 {
        assert!(Instant::now() < deadline, "never re-added:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kill9(controller);
    create_replicated_topic(&cluster, "after", &[]);
    cluster.restart(controller);
    cluster.stop_all();
}

/// Waits (at most 30 s) until the controller's leader has pinned each of the three voters
/// of the metadata log to its broker's directory; the leader.
fn wait_for_pinned_controller(cluster: &TernCluster) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for node_id in cluster.node_ids() {
            if metadata_voter_changes(cluster, node_id) >= 3 {
                if let Some(leader) = controller_named_by(cluster, node_id) {
                    return leader;
                }
            }
        }
        assert!(Instant::now() < deadline, "voters never pinned:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The voters batches of the metadata log that `node_id` appended as its leader (each
/// logged once), through all its runs.
fn metadata_voter_changes(cluster: &TernCluster, node_id: i32) -> usize {
    let log = cluster.broker(node_id).log();
    let voters = log.lines().filter(|line| line.contains("partition: voters"));
    voters.filter(|line| line.contains("__cluster_metadata-0")).count()
}

/// The controller `asked` names in Metadata, if any.
fn controller_named_by(cluster: &TernCluster, asked: i32) -> Option<i32> {
    use kafka_protocol::messages::MetadataRequest;
    let mut connection = Connection::try_connect(&cluster.broker(asked).bootstrap())?;
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    let response = connection.try_call(12, &request)?;
    (response.controller_id.0 >= 1).then_some(response.controller_id.0)
}

/// Produces one record of `value` (acks=all) to partition 0 on `leader`; its offset.
fn produce_value(cluster: &TernCluster, leader: i32, topic: &str, value: &str) -> i64 {
    use common::differential::{batch, produce_request};
    let mut connection = Connection::connect(&cluster.broker(leader).bootstrap());
    let request = produce_request(topic, 0, -1, batch(1_700_000_000_000, &[value]));
    let response = connection.call(9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer.base_offset
}

/// The record bytes a fetch of partition 0 from `offset` on `asked` returns.
fn fetch_bytes(cluster: &TernCluster, asked: i32, topic: &str, offset: i64) -> Vec<u8> {
    let request = common::differential::fetch_request(topic, offset, 1 << 20, (0, 0));
    let mut connection = Connection::connect(&cluster.broker(asked).bootstrap());
    let response = connection.call(12, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{partition:?}");
    partition.records.as_ref().map(|records| records.to_vec()).unwrap_or_default()
}

/// The directory ids broker `node_id` logged making, oldest first.
fn directory_ids_made(cluster: &TernCluster, node_id: i32) -> Vec<String> {
    let log = cluster.broker(node_id).log();
    log.lines()
        .filter(|line| line.contains("new data directory initialised"))
        .filter_map(|line| line.split("directory_id=").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// The node id broker `node_id` gives itself in Metadata.
fn node_id_served(cluster: &TernCluster, node_id: i32) -> i32 {
    use kafka_protocol::messages::MetadataRequest;
    let mut connection = Connection::connect(&cluster.broker(node_id).bootstrap());
    let response = connection.call(12, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(response.brokers.len(), 1, "{response:?}");
    assert_eq!(response.brokers[0].port, cluster.broker(node_id).port as i32);
    response.brokers[0].node_id.0
}

/// Kills the leader of partition 0 `kills` times, each time once partition 0 has gained
/// PROGRESS_RECORDS acknowledgements; waits for acknowledgements from the next leader
/// (skipped on a single broker: there is none), restarts the killed broker and waits for
/// acknowledgements again. Returns the killed node ids, and the last count of partition 0's
/// acknowledged records seen.
fn kill_leaders(
    cluster: &mut TernCluster,
    script: &mut FailoverScript,
    kills: usize,
    deadline: Instant,
) -> (Vec<i32>, u64) {
    let mut acked = script.wait_for_acked(PROGRESS_RECORDS, deadline);
    let mut killed = Vec::with_capacity(kills);
    for kill in 0..kills {
        let leader = wait_for_leader(cluster, deadline);
        cluster.kill9(leader);
        killed.push(leader);
        println!("kill {}: node {leader} (leader of {TOPIC}-0) at {acked} acked", kill + 1);
        if cluster.nodes() > 1 {
            acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
        }
        cluster.restart(leader);
        acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
    }
    assert_eq!(killed.len(), kills);
    (killed, acked)
}

const GROUP: &str = "cluster-group";
const GROUP_TOPIC: &str = "grouped";
const GROUP_RECORDS: usize = 3000;

/// A consumer group on three brokers: a member consumes half the records committing each
/// one; the group's coordinator (the leader of its `__consumer_offsets` partition) is killed
/// with -9; a new member finds the new coordinator, reads exactly the offsets committed
/// before the kill, and consumes the rest: every record once, none lost.
#[test]
fn a_consumer_group_resumes_from_its_committed_offsets_after_its_coordinator_is_killed() {
    let mut cluster = TernCluster::start("groups-3", 3, &["--shards", "2"]);
    let records = GROUP_RECORDS.to_string();
    let first = run_groups_script(&cluster, &["produce-and-consume", "--records", &records]);
    let acked = strings(&first["acked"]);
    let read_first = values_read(&first["read"]);
    assert_eq!(acked.len(), GROUP_RECORDS, "every record acknowledged");
    assert!(read_first.len() >= GROUP_RECORDS / 2, "{}", read_first.len());
    let offsets_partition = tern::broker::groups::group_partition(GROUP);
    let coordinator = (0..100)
        .find_map(|_| {
            let leader = cluster.leader_of("__consumer_offsets", offsets_partition);
            leader.or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("the group's coordinator");
    cluster.kill9(coordinator);
    let remaining = (GROUP_RECORDS - read_first.len()).to_string();
    let second = run_groups_script(&cluster, &["resume", "--remaining", &remaining]);
    assert_eq!(second["committed_before"], first["committed"], "committed offsets intact");
    let read_second = values_read(&second["read"]);
    let mut all: Vec<String> = read_first.iter().chain(&read_second).cloned().collect();
    all.sort();
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(all, expected, "every acknowledged record read exactly once by the group");
    println!(
        "coordinator {coordinator} killed; read {} then {}",
        read_first.len(),
        read_second.len()
    );
    cluster.restart(coordinator);
    cluster.stop_all();
}

fn run_groups_script(cluster: &TernCluster, arguments: &[&str]) -> Value {
    let output = python("cluster_groups.py")
        .args(arguments)
        .args(["--bootstrap", &cluster.bootstrap(), "--topic", GROUP_TOPIC, "--group", GROUP])
        .output()
        .expect("run cluster_groups.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cluster_groups.py {arguments:?} failed: {}\n{stdout}\nbrokers:\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.logs()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn strings(value: &Value) -> Vec<String> {
    let items = value.as_array().expect("a list");
    items.iter().map(|item| item.as_str().expect("a string").to_string()).collect()
}

/// The values of `[partition, offset, value]` triples.
fn values_read(value: &Value) -> Vec<String> {
    let items = value.as_array().expect("a list");
    items.iter().map(|item| item[2].as_str().expect("a value").to_string()).collect()
}

/// kcat producing to a topic that does not exist yet, through each broker in turn: a broker
/// that does not lead the controller forwards the auto-creation, and every record lands.
#[test]
fn auto_creation_through_any_broker_reaches_the_controller() {
    let mut cluster = TernCluster::start("auto-create-3", 3, &["--shards", "1"]);
    for node_id in cluster.node_ids().collect::<Vec<_>>() {
        let topic = format!("auto-{node_id}");
        let broker = cluster.broker(node_id).bootstrap();
        let mut producer = std::process::Command::new("kcat")
            .args(["-P", "-b", &broker, "-t", &topic, "-X", "message.timeout.ms=30000"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("kcat");
        let mut stdin = producer.stdin.take().expect("kcat's stdin");
        writeln!(stdin, "through-{node_id}").expect("write to kcat");
        drop(stdin);
        let status = producer.wait().expect("kcat ends");
        assert!(status.success(), "kcat -P through node {node_id}:\n{}", cluster.logs());
        let consumed = std::process::Command::new("kcat")
            .args(["-C", "-b", &cluster.bootstrap(), "-t", &topic, "-e", "-q"])
            .output()
            .expect("kcat -C");
        let text = String::from_utf8_lossy(&consumed.stdout);
        assert_eq!(text.trim(), format!("through-{node_id}"), "{}", cluster.logs());
    }
    cluster.stop_all();
}

/// min.insync.replicas as Kafka means it: with a follower gone (out of the in-sync replicas
/// after replica.lag.time.max.ms), a topic that asks for 3 in sync refuses produce with
/// NOT_ENOUGH_REPLICAS and writes nothing, while one that asks for 2 (a majority) goes on.
#[test]
fn min_insync_replicas_refuses_produce_when_too_few_replicas_are_in_sync() {
    let arguments = ["--shards", "1", "--replica-lag-time-max-ms", "1000"];
    let mut cluster = TernCluster::start("min-insync-3", 3, &arguments);
    create_replicated_topic(&cluster, "strict", &[("min.insync.replicas", "3")]);
    create_replicated_topic(&cluster, "lenient", &[("min.insync.replicas", "2")]);
    let leaders = ["strict", "lenient"].map(|topic| leader_of_topic(&mut cluster, topic));
    for (topic, leader) in ["strict", "lenient"].iter().zip(leaders) {
        assert_eq!(produce_code(&cluster, leader, topic), 0, "{topic}: all three in sync");
    }
    let follower = cluster
        .node_ids()
        .find(|node| !leaders.contains(node))
        .or_else(|| cluster.node_ids().find(|node| *node != leaders[0]))
        .expect("a follower of the strict topic");
    cluster.kill9(follower);
    // Out of the in-sync replicas one lag time after its last catch-up.
    std::thread::sleep(Duration::from_millis(2500));
    for (topic, leader) in ["strict", "lenient"].iter().zip(leaders) {
        if leader == follower {
            continue;
        }
        let expected = if *topic == "strict" { 19 } else { 0 };
        assert_eq!(produce_code(&cluster, leader, topic), expected, "{topic} without {follower}");
    }
    cluster.restart(follower);
    cluster.stop_all();
}

/// Creates `topic` (one partition, three replicas) through whichever broker leads the
/// controller (the others answer NOT_CONTROLLER).
fn create_replicated_topic(cluster: &TernCluster, topic: &str, configs: &[(&str, &str)]) {
    let mut request = common::differential::create_request(topic, 1, configs);
    request.topics[0].replication_factor = 3;
    create_through_controller(cluster, topic, &request);
}

/// Creates `topic` with one partition on `replicas`, the first its preferred leader.
fn create_topic_on(cluster: &TernCluster, topic: &str, replicas: &[i32]) {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    use kafka_protocol::messages::BrokerId;
    let mut request = common::differential::create_request(topic, -1, &[]);
    request.topics[0].replication_factor = -1;
    let mut assignment = CreatableReplicaAssignment::default();
    assignment.partition_index = 0;
    assignment.broker_ids = replicas.iter().map(|id| BrokerId(*id)).collect();
    request.topics[0].assignments.push(assignment);
    create_through_controller(cluster, topic, &request);
}

fn create_through_controller(
    cluster: &TernCluster,
    topic: &str,
    request: &kafka_protocol::messages::CreateTopicsRequest,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for node_id in cluster.node_ids() {
            let bootstrap = cluster.broker(node_id).bootstrap();
            let Some(mut connection) = Connection::try_connect(&bootstrap) else { continue };
            let Some(response) = connection.try_call(5, request) else { continue };
            match response.topics[0].error_code {
                0 | 36 => return,
                _ => continue,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{topic} not created:\n{}", cluster.logs());
}

fn leader_of_topic(cluster: &mut TernCluster, topic: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(leader) = cluster.leader_of(topic, 0) {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader for {topic}:\n{}", cluster.logs());
}

/// The error code of an acks=all produce of one record to partition 0 on `leader`.
fn produce_code(cluster: &TernCluster, leader: i32, topic: &str) -> i16 {
    use common::differential::{batch, produce_request};
    let mut connection = Connection::connect(&cluster.broker(leader).bootstrap());
    let request = produce_request(topic, 0, -1, batch(1_700_000_000_000, &["value"]));
    let response = connection.call(9, &request);
    response.responses[0].partition_responses[0].error_code
}

/// KIP-951: a broker that is not the leader says who is. A follower answers Produce v10+ and
/// Fetch v12+ with NOT_LEADER_OR_FOLLOWER and the leader's id and epoch (CurrentLeader), and
/// Produce also with that leader's endpoint (NodeEndpoints), so a client moves at once.
#[test]
fn a_follower_names_the_leader_and_its_endpoint_in_not_leader_answers() {
    use common::differential::{batch, fetch_request, produce_request};
    let mut cluster = TernCluster::start("leader-hints", 3, &["--shards", "1"]);
    create_replicated_topic(&cluster, "hinted", &[]);
    let leader = leader_of_topic(&mut cluster, "hinted");
    let follower = cluster.node_ids().find(|node| *node != leader).expect("three brokers");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut connection = Connection::connect(&cluster.broker(follower).bootstrap());
    let request = produce_request("hinted", 0, -1, batch(1_700_000_000_000, &["value"]));
    // Until the follower has heard from this leader, it may not know it yet.
    let answer = loop {
        let response = connection.call(11, &request);
        let partition = response.responses[0].partition_responses[0].clone();
        if partition.current_leader.leader_id.0 == leader || Instant::now() > deadline {
            break (partition, response.node_endpoints);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (partition, endpoints) = answer;
    assert_eq!(partition.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(partition.current_leader.leader_id.0, leader, "{}", cluster.logs());
    assert!(partition.current_leader.leader_epoch >= 1, "{partition:?}");
    let named: Vec<(i32, u16)> =
        endpoints.iter().map(|node| (node.node_id.0, node.port as u16)).collect();
    assert_eq!(named, [(leader, cluster.broker(leader).port)]);
    let fetched = connection.call(12, &fetch_request("hinted", 0, 1 << 20, (0, 1)));
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, 6);
    assert_eq!(partition.current_leader.leader_id.0, leader);
    // Before KIP-951's versions the hint is not encoded: the client sees the default.
    let older = connection.call(9, &request);
    assert_eq!(older.responses[0].partition_responses[0].current_leader.leader_id.0, -1);
    cluster.stop_all();
}

/// A replicated partition refuses DeleteRecords (POLICY_VIOLATION), as Kafka answers when a
/// topic's policy forbids it: a log start moved on the leader alone would leave a log its
/// replica cannot re-open. Its records stay readable from offset 0.
#[test]
fn delete_records_is_refused_on_a_replicated_partition() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::DeleteRecordsRequest;
    let mut cluster = TernCluster::start("delete-records", 3, &["--shards", "1"]);
    create_replicated_topic(&cluster, "kept", &[]);
    let leader = leader_of_topic(&mut cluster, "kept");
    assert_eq!(produce_code(&cluster, leader, "kept"), 0);
    let partition = DeleteRecordsPartition::default().with_partition_index(0).with_offset(-1);
    let topic = DeleteRecordsTopic::default()
        .with_name(common::differential::name("kept"))
        .with_partitions(vec![partition]);
    let request = DeleteRecordsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
    let mut connection = Connection::connect(&cluster.broker(leader).bootstrap());
    let response = connection.call(2, &request);
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 44, "POLICY_VIOLATION: {answer:?}");
    cluster.stop_all();
}

/// Controlled shutdown: SIGTERM moves leadership to another replica before the process
/// exits, so clients find a leader at once instead of after an election timeout. Right after
/// the exit the survivors already name one of them; without the hand-over they would name
/// the stopped broker for at least an election timeout (1 s: their promise to it holds that
/// long after its last heartbeat), so the 800 ms allowed here cannot be met by an election.
#[test]
fn sigterm_hands_leadership_over_before_the_broker_exits() {
    let mut cluster = TernCluster::start("controlled-shutdown", 3, &["--shards", "1"]);
    create_replicated_topic(&cluster, "handed", &[]);
    let leader = leader_of_topic(&mut cluster, "handed");
    assert_eq!(produce_code(&cluster, leader, "handed"), 0);
    cluster.stop(leader);
    let exited = Instant::now();
    let successor = loop {
        if let Some(successor) = cluster.leader_of("handed", 0) {
            break successor;
        }
        let waited = exited.elapsed();
        assert!(waited < Duration::from_millis(800), "no leader {waited:?} after the exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(successor, leader);
    let log = cluster.broker(leader).log();
    assert!(log.contains("leadership handed over for shutdown"), "{log}");
    assert!(!log.contains("still_led=1"), "{log}");
    assert_eq!(produce_code(&cluster, successor, "handed"), 0, "{}", cluster.logs());
    cluster.stop_all();
}

/// The preferred replica (the first of the replicas Metadata lists) of `topic`'s partition 0,
/// as broker `asked` knows it (once it has applied the topic's creation).
fn preferred_replica(cluster: &TernCluster, asked: i32, topic: &str) -> i32 {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let request =
        MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::differential::name(topic))),
        ]));
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the broker has applied the topic's creation, it does not list its replicas.
    loop {
        let mut connection = Connection::connect(&cluster.broker(asked).bootstrap());
        let response = connection.call(12, &request);
        let partitions = response.topics.first().map(|topic| &topic.partitions);
        let first = partitions.and_then(|partitions| partitions.first());
        if let Some(replica) = first.and_then(|partition| partition.replica_nodes.first()) {
            return replica.0;
        }
        assert!(Instant::now() < deadline, "{topic} has no replicas: {response:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Makes sure `preferred` does not lead `topic`-0: if it does, a clean restart hands the
/// leadership to another replica. Returns the leader then.
fn lead_elsewhere(cluster: &mut TernCluster, topic: &str, preferred: i32) -> i32 {
    if leader_of_topic(cluster, topic) == preferred {
        cluster.stop(preferred);
        cluster.restart(preferred);
        assert_eq!(preferred_replica(cluster, preferred, topic), preferred);
    }
    let leader = leader_of_topic(cluster, topic);
    assert_ne!(leader, preferred, "{}", cluster.logs());
    leader
}

/// ElectLeaders v2 of `election_type` for `partitions` of `topic`, asked of `asked`: each
/// partition's error code.
fn elect(
    cluster: &TernCluster,
    asked: i32,
    topic: &str,
    partitions: &[i32],
    election_type: i8,
) -> Vec<(i32, i16)> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::ElectLeadersRequest;
    let topics = vec![TopicPartitions::default()
        .with_topic(common::differential::name(topic))
        .with_partitions(partitions.to_vec())];
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(Some(topics))
        .with_timeout_ms(20_000);
    let mut connection = Connection::connect(&cluster.broker(asked).bootstrap());
    let response = connection.call(2, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    let results = &response.replica_election_results;
    assert_eq!(results.len(), 1, "{response:?}");
    let codes: Vec<(i32, i16)> = results[0]
        .partition_result
        .iter()
        .map(|result| (result.partition_id, result.error_code))
        .collect();
    // The error messages say why an election failed.
    eprintln!("ElectLeaders asked of broker {asked}: {codes:?} {response:?}");
    codes
}

/// ElectLeaders (API 43) gives a partition back to its preferred replica after a failover,
/// whichever broker is asked (the others forward to the preferred replica's broker); a second
/// election is not needed; an unclean one is never done.
#[test]
fn elect_leaders_gives_the_leadership_back_to_the_preferred_replica() {
    let arguments = ["--shards", "1", "--leader-rebalance-interval-ms", "0"];
    let mut cluster = TernCluster::start("elect-leaders", 3, &arguments);
    create_replicated_topic(&cluster, "elected", &[]);
    let preferred = preferred_replica(&cluster, 1, "elected");
    let leader = lead_elsewhere(&mut cluster, "elected", preferred);
    assert_eq!(produce_code(&cluster, leader, "elected"), 0);
    let asked = cluster.node_ids().find(|node| *node != preferred).expect("three brokers");
    // 0: NONE; 7: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(elect(&cluster, asked, "elected", &[0, 7], 0), [(0, 0), (7, 3)]);
    assert_eq!(leader_of_topic(&mut cluster, "elected"), preferred, "{}", cluster.logs());
    assert_eq!(elect(&cluster, preferred, "elected", &[0], 0), [(0, 84)], "ELECTION_NOT_NEEDED");
    assert_eq!(elect(&cluster, asked, "elected", &[0], 1), [(0, 44)], "unclean: POLICY_VIOLATION");
    assert_eq!(produce_code(&cluster, preferred, "elected"), 0);
    cluster.stop_all();
}

/// Brokers rebalance leadership by themselves (Kafka's auto.leader.rebalance.enable): once a
/// failover heals, the preferred replica asks for its partition back and gets it.
#[test]
fn the_preferred_replica_takes_its_partition_back_after_a_failover() {
    let arguments = ["--shards", "1", "--leader-rebalance-interval-ms", "1000"];
    let mut cluster = TernCluster::start("leader-rebalance", 3, &arguments);
    create_replicated_topic(&cluster, "rebalanced", &[]);
    let preferred = preferred_replica(&cluster, 1, "rebalanced");
    lead_elsewhere(&mut cluster, "rebalanced", preferred);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.leader_of("rebalanced", 0) != Some(preferred) {
        assert!(Instant::now() < deadline, "not rebalanced:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(produce_code(&cluster, preferred, "rebalanced"), 0);
    cluster.stop_all();
}

/// With more brokers than replicas, a broker that hosts no replica of a partition still names
/// its leader, epoch and in-sync replicas (the leader's news), and follows a failover; asked
/// to produce there, it points the client at the leader (KIP-951).
#[test]
fn a_broker_hosting_no_replica_names_the_leader_and_follows_a_failover() {
    let mut cluster = TernCluster::start("leadership-news", 4, &["--shards", "2"]);
    create_topic_of_replicas(&cluster, "news", 4, 3);
    for partition in 0..4 {
        let leader = leader_of_partition(&mut cluster, "news", partition);
        let outsider = outsider_of(&cluster, "news", partition);
        let (named, epoch, in_sync) = named_by(&cluster, outsider, "news", partition, leader, 0);
        assert_eq!(named, leader, "partition {partition}: {}", cluster.logs());
        assert!(epoch >= 1 && in_sync.contains(&leader), "{epoch} {in_sync:?}");
    }
    // Produce v11 at a broker that hosts no replica: NOT_LEADER_OR_FOLLOWER, and who leads.
    use common::differential::{batch, produce_request};
    let leader = leader_of_partition(&mut cluster, "news", 0);
    let outsider = outsider_of(&cluster, "news", 0);
    let mut connection = Connection::connect(&cluster.broker(outsider).bootstrap());
    let request = produce_request("news", 0, -1, batch(1_700_000_000_000, &["value"]));
    let response = connection.call(11, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(answer.current_leader.leader_id.0, leader, "{answer:?}");
    let endpoints: Vec<i32> = response.node_endpoints.iter().map(|node| node.node_id.0).collect();
    assert_eq!(endpoints, [leader]);
    // The leader dies: the outsider learns the new leader from it, at a newer epoch.
    let (_, epoch_before, _) = named_by(&cluster, outsider, "news", 0, leader, 0);
    cluster.kill9(leader);
    let successor = leader_of_partition(&mut cluster, "news", 0);
    assert_ne!(successor, leader);
    if successor != outsider {
        let (named, epoch, _) = named_by(&cluster, outsider, "news", 0, successor, epoch_before);
        assert_eq!(named, successor, "{}", cluster.logs());
        assert!(epoch > epoch_before, "{epoch} after {epoch_before}");
    }
    cluster.stop_all();
}

/// Creates `topic` with `partitions` partitions of `replication_factor` replicas through
/// whichever broker leads the controller.
fn create_topic_of_replicas(
    cluster: &TernCluster,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) {
    let mut request = common::differential::create_request(topic, partitions, &[]);
    request.topics[0].replication_factor = replication_factor;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for node_id in cluster.node_ids() {
            let bootstrap = cluster.broker(node_id).bootstrap();
            let Some(mut connection) = Connection::try_connect(&bootstrap) else { continue };
            let Some(response) = connection.try_call(5, &request) else { continue };
            if let 0 | 36 = response.topics[0].error_code {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{topic} not created:\n{}", cluster.logs());
}

fn leader_of_partition(cluster: &mut TernCluster, topic: &str, partition: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(leader) = cluster.leader_of(topic, partition) {
            return leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader for {topic}-{partition}:\n{}", cluster.logs());
}

/// The partition's Metadata (v12) as broker `asked` answers it.
fn metadata_partition(
    cluster: &TernCluster,
    asked: i32,
    topic: &str,
    partition: i32,
) -> Option<kafka_protocol::messages::metadata_response::MetadataResponsePartition> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let request =
        MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(common::differential::name(topic))),
        ]));
    let mut connection = Connection::connect(&cluster.broker(asked).bootstrap());
    let response = connection.try_call(12, &request)?;
    let topic = response.topics.into_iter().next()?;
    topic.partitions.into_iter().find(|answer| answer.partition_index == partition)
}

/// The broker that holds no replica of the partition (four brokers, three replicas).
fn outsider_of(cluster: &TernCluster, topic: &str, partition: i32) -> i32 {
    let answer = metadata_partition(cluster, 1, topic, partition).expect("metadata");
    let replicas: Vec<i32> = answer.replica_nodes.iter().map(|node| node.0).collect();
    assert_eq!(replicas.len(), 3, "{answer:?}");
    cluster.node_ids().find(|node| !replicas.contains(node)).expect("a fourth broker")
}

/// (leader, epoch, in-sync replicas) as `asked` names them, once it names `expected` at an
/// epoch above `epoch_above` (at most 10 s: announcements go out every 250 ms).
fn named_by(
    cluster: &TernCluster,
    asked: i32,
    topic: &str,
    partition: i32,
    expected: i32,
    epoch_above: i32,
) -> (i32, i32, Vec<i32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = metadata_partition(cluster, asked, topic, partition);
        let named = answer.map(|answer| {
            let in_sync = answer.isr_nodes.iter().map(|node| node.0).collect::<Vec<_>>();
            (answer.leader_id.0, answer.leader_epoch, in_sync)
        });
        match named {
            Some(named) if named.0 == expected && named.1 > epoch_above => return named,
            Some(named) if Instant::now() > deadline => return named,
            None if Instant::now() > deadline => return (-1, -1, Vec::new()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
