//! Differential test of a cluster: three Tern brokers and a three-broker Apache Kafka 4.4.0
//! (KRaft, each node a broker and a controller voter: `benches/peers/kafka.sh start-cluster`)
//! asked the same questions about one topic of three partitions and three replicas.
//!
//! Which broker leads and which epoch numbers a leader gets differ by nature (Tern elects
//! per partition, Raft terms; Kafka's controller assigns them), so answers are compared by
//! their shape: how many brokers and replicas, whether the leader a broker names is the one
//! that leads, whether the epoch it names is the leader's, which error code a client gets.
//! Compared: Metadata (before, and while the old leader is down: fenced brokers are not
//! listed, their replicas are offline), the answers of a broker that does not lead
//! (Produce: NOT_LEADER_OR_FOLLOWER with KIP-951's current leader and endpoint; ListOffsets
//! and OffsetForLeaderEpoch), epoch fencing at the leader before and after the leader moves
//! (SIGTERM, a controlled shutdown on both sides), and where the old epoch ends.
//!
//! Not compared, documented in docs/compatibility.md: Fetch from a follower (Kafka serves
//! consumers from followers, KIP-392; Tern answers NOT_LEADER_OR_FOLLOWER), and how soon a
//! stopped broker is fenced (Kafka: at its controlled shutdown; Tern: after the session
//! timeout, 2 s here, which `settled` waits for).

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::thread::sleep;
use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;

use common::cluster::TernCluster;
use common::differential::*;
use common::kafka::Connection;
use common::kafka_peer::KafkaCluster;

const TOPIC: &str = "moves";
const PARTITIONS: i32 = 3;
/// Records produced to partition 0 before its leader moves.
const RECORDS_BEFORE_MOVE: usize = 5;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// One cluster under test: its brokers' bootstrap addresses by node id, and the nodes
/// stopped by the test.
struct Side {
    name: &'static str,
    bootstraps: BTreeMap<i32, String>,
    stopped: Vec<i32>,
}

/// Partition `partition`'s leadership as one broker answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Leadership {
    leader: i32,
    epoch: i32,
}

impl Side {
    fn running(&self) -> impl Iterator<Item = i32> + '_ {
        self.bootstraps.keys().copied().filter(|node| !self.stopped.contains(node))
    }

    fn connect(&self, node: i32) -> Connection {
        Connection::connect(&self.bootstraps[&node])
    }

    fn metadata(&self, asked: i32, version: i16) -> MetadataResponse {
        self.connect(asked).call(version, &metadata_request(Some(&[TOPIC]), false))
    }

    /// Partition `partition`'s leadership, once every running broker names the same leader,
    /// a running one, with every running replica in sync, and lists exactly the running
    /// brokers; waits at most 60 s.
    fn settled(&self, partition: i32) -> Leadership {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let named: Vec<Option<Leadership>> =
                self.running().map(|asked| self.full_leadership(asked, partition)).collect();
            if let Some(Some(first)) = named.first() {
                let agreed = named.iter().all(|each| *each == Some(*first));
                if agreed && self.running().any(|node| node == first.leader) {
                    return *first;
                }
            }
            assert!(Instant::now() < deadline, "{}: never settled: {named:?}", self.name);
            sleep(Duration::from_millis(200));
        }
    }

    /// The leadership `asked` names, if its in-sync replicas are exactly the running replicas
    /// and the brokers it lists exactly the running brokers.
    fn full_leadership(&self, asked: i32, partition: i32) -> Option<Leadership> {
        let mut connection = Connection::try_connect(&self.bootstraps[&asked])?;
        let response = connection.try_call(12, &metadata_request(Some(&[TOPIC]), false))?;
        let listed: Vec<i32> = response.brokers.iter().map(|broker| broker.node_id.0).collect();
        if listed != self.running().collect::<Vec<i32>>() {
            return None;
        }
        let topic = response.topics.first().filter(|topic| topic.error_code == 0)?;
        let answer = topic.partitions.iter().find(|answer| answer.partition_index == partition)?;
        let mut in_sync: Vec<i32> = answer.isr_nodes.iter().map(|node| node.0).collect();
        in_sync.sort_unstable();
        let mut running: Vec<i32> = answer.replica_nodes.iter().map(|node| node.0).collect();
        running.retain(|node| !self.stopped.contains(node));
        running.sort_unstable();
        let leader = answer.leader_id.0;
        let led = answer.error_code == 0 && leader >= 1;
        (led && in_sync == running).then_some(Leadership { leader, epoch: answer.leader_epoch })
    }

    /// A running broker that does not lead `leadership`'s partition.
    fn follower(&self, leadership: Leadership) -> i32 {
        self.running().find(|node| *node != leadership.leader).expect("a follower")
    }

    /// Creates the topic through whichever broker takes it (Tern's controller, any of
    /// Kafka's); waits at most 60 s.
    fn create_topic(&self) {
        let mut request = create_request(TOPIC, PARTITIONS, &[]);
        request.topics[0].replication_factor = 3;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            for asked in self.running() {
                let Some(mut connection) = Connection::try_connect(&self.bootstraps[&asked]) else {
                    continue;
                };
                let Some(response) = connection.try_call(5, &request) else { continue };
                if matches!(response.topics[0].error_code, 0 | 36) {
                    return;
                }
            }
            sleep(Duration::from_millis(200));
        }
        panic!("{}: {TOPIC} not created", self.name);
    }
}

/// What a Metadata answer says of the cluster, without identities.
#[derive(Debug, PartialEq)]
struct MetadataShape {
    brokers: usize,
    controller_named: bool,
    /// Per partition: error code, replicas, in-sync replicas, offline replicas, and whether
    /// the leader is one of the replicas.
    partitions: Vec<(i32, i16, usize, usize, usize, bool)>,
}

fn metadata_shape(response: &MetadataResponse) -> MetadataShape {
    let topic = response.topics.first();
    let partitions = topic.map(|topic| topic.partitions.as_slice()).unwrap_or_default();
    MetadataShape {
        brokers: response.brokers.len(),
        controller_named: response.controller_id.0 >= 1,
        partitions: partitions
            .iter()
            .map(|answer| {
                (
                    answer.partition_index,
                    answer.error_code,
                    answer.replica_nodes.len(),
                    answer.isr_nodes.len(),
                    answer.offline_replicas.len(),
                    answer.replica_nodes.contains(&answer.leader_id),
                )
            })
            .collect(),
    }
}

/// Every recorded difference, both sides side by side.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check<T: Debug>(&mut self, case: &str, tern: &T, kafka: &T) {
        let (tern, kafka) = (format!("{tern:#?}"), format!("{kafka:#?}"));
        if tern != kafka {
            self.0.push(format!("{case}\n{}", side_by_side(&tern, &kafka)));
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} mismatches against a three-broker Apache Kafka:\n\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// Asks both sides the same question (`ask` gets the side) and compares the answers.
fn compare<T: Debug>(
    mismatches: &mut Mismatches,
    case: &str,
    sides: (&Side, &Side),
    ask: impl Fn(&Side) -> T,
) {
    let (tern, kafka) = (ask(sides.0), ask(sides.1));
    mismatches.check(case, &tern, &kafka);
}

#[test]
fn three_tern_brokers_answer_like_a_three_broker_kafka() {
    let arguments = ["--shards", "1", "--broker-session-timeout-ms", "2000"];
    let tern_cluster = TernCluster::start("differential-cluster", 3, &arguments);
    tern_cluster.wait_until_registered();
    let kafka_cluster = KafkaCluster::start(3);
    let mut tern = side("tern", tern_cluster.node_ids().map(|n| (n, tern_cluster.broker(n))));
    let mut kafka = Side {
        name: "kafka",
        bootstraps: kafka_cluster.node_ids().map(|n| (n, kafka_cluster.bootstrap(n))).collect(),
        stopped: Vec::new(),
    };
    for each in [&tern, &kafka] {
        each.create_topic();
        for partition in 0..PARTITIONS {
            each.settled(partition);
        }
    }
    let mut mismatches = Mismatches::default();
    compare_metadata(&mut mismatches, (&tern, &kafka), "all three up");
    compare_not_leader_answers(&mut mismatches, (&tern, &kafka));
    compare_fencing(&mut mismatches, (&tern, &kafka), 1, "current epoch + 1");
    for each in [&tern, &kafka] {
        produce_to_leader(each);
    }
    let before = (log_end(&tern), log_end(&kafka));
    let moved_from = (tern.settled(0), kafka.settled(0));
    let mut tern_cluster = tern_cluster;
    tern_cluster.stop(moved_from.0.leader);
    tern.stopped.push(moved_from.0.leader);
    kafka_cluster.stop(moved_from.1.leader);
    kafka.stopped.push(moved_from.1.leader);
    let moved_to = (tern.settled(0), kafka.settled(0));
    assert!(moved_to.0.epoch > moved_from.0.epoch && moved_to.1.epoch > moved_from.1.epoch);
    compare_metadata(&mut mismatches, (&tern, &kafka), "the old leader shut down");
    compare_not_leader_answers(&mut mismatches, (&tern, &kafka));
    compare_fencing(&mut mismatches, (&tern, &kafka), -1, "the old leader's epoch");
    compare_epoch_ends(&mut mismatches, (&tern, &kafka), (moved_from, before));
    mismatches.assert_none();
    tern_cluster.stop_all();
}

fn side<'a>(
    name: &'static str,
    brokers: impl Iterator<Item = (i32, &'a common::TernServer)>,
) -> Side {
    let bootstraps = brokers.map(|(node, broker)| (node, broker.bootstrap())).collect();
    Side { name, bootstraps, stopped: Vec::new() }
}

fn compare_metadata(mismatches: &mut Mismatches, sides: (&Side, &Side), when: &str) {
    for version in [4, 9, 12] {
        compare(mismatches, &format!("Metadata v{version}, {when}"), sides, |side| {
            let shapes: Vec<MetadataShape> = side
                .running()
                .map(|asked| metadata_shape(&side.metadata(asked, version)))
                .collect();
            shapes
        });
    }
}

/// What a follower answers about partition 0: to Produce, before and after KIP-951, (error
/// code, whether the leader it names is the leader, whether the epoch it names is the
/// leader's, whether the endpoint it gives is the leader's); to ListOffsets and
/// OffsetForLeaderEpoch, the error codes.
fn compare_not_leader_answers(mismatches: &mut Mismatches, sides: (&Side, &Side)) {
    for version in [9, 10, 12] {
        compare(mismatches, &format!("Produce v{version} to a follower"), sides, |side| {
            let leadership = side.settled(0);
            let mut connection = side.connect(side.follower(leadership));
            let request = produce_request(TOPIC, 0, -1, batch(1_700_000_000_000, &["moved"]));
            let response = connection.call(version, &request);
            let answer = &response.responses[0].partition_responses[0];
            let named = &answer.current_leader;
            let endpoint =
                response.node_endpoints.iter().find(|node| node.node_id == named.leader_id);
            let endpoint_port = endpoint.map(|node| format!("127.0.0.1:{}", node.port));
            (
                answer.error_code,
                named.leader_id.0 == leadership.leader,
                named.leader_epoch == leadership.epoch,
                endpoint_port.as_ref() == side.bootstraps.get(&leadership.leader),
            )
        });
    }
    compare(
        mismatches,
        "ListOffsets v9 and OffsetForLeaderEpoch v4 to a follower",
        sides,
        |side| {
            let leadership = side.settled(0);
            let follower = side.follower(leadership);
            let listed = list_offsets_code(side, follower, -1, leadership.epoch);
            let ended = epoch_end(side, follower, leadership.epoch, leadership.epoch).error_code;
            (listed, ended)
        },
    );
}

/// The codes the leader of partition 0 answers a client that names its epoch plus
/// `epoch_delta`: (Fetch v12, ListOffsets v9, OffsetForLeaderEpoch v4). Kafka's must be the
/// fencing code, or the comparison would prove nothing.
fn compare_fencing(
    mismatches: &mut Mismatches,
    sides: (&Side, &Side),
    epoch_delta: i32,
    what: &str,
) {
    let codes = |side: &Side| {
        let leadership = side.settled(0);
        let epoch = leadership.epoch + epoch_delta;
        let mut fetch = fetch_request(TOPIC, 0, 1 << 20, (0, 0));
        fetch.topics[0].partitions[0].current_leader_epoch = epoch;
        let fetched = side.connect(leadership.leader).call(12, &fetch);
        let fetch_code = fetched.responses[0].partitions[0].error_code;
        let list_code = list_offsets_code(side, leadership.leader, -1, epoch);
        let end_code = epoch_end(side, leadership.leader, epoch, leadership.epoch).error_code;
        (fetch_code, list_code, end_code)
    };
    let (tern, kafka) = (codes(sides.0), codes(sides.1));
    let case = format!("Fetch v12, ListOffsets v9, OffsetForLeaderEpoch v4 naming {what}");
    mismatches.check(&case, &tern, &kafka);
    let expected = if epoch_delta > 0 { UNKNOWN_LEADER_EPOCH } else { FENCED_LEADER_EPOCH };
    assert_eq!(kafka.0, expected, "Kafka's Fetch naming {what}");
    // The current epoch itself is always accepted.
    compare(mismatches, "the same naming the current epoch", sides, |side| {
        let leadership = side.settled(0);
        let list_code = list_offsets_code(side, leadership.leader, -1, leadership.epoch);
        (list_code, epoch_end(side, leadership.leader, leadership.epoch, 0).error_code)
    });
}

/// Where the old leader's epoch ends, asked of the new leader: (error, whether the epoch it
/// answers is the old one, whether its end is the log end the old leader had).
fn compare_epoch_ends(
    mismatches: &mut Mismatches,
    sides: (&Side, &Side),
    moved: ((Leadership, Leadership), (i64, i64)),
) {
    let ((tern_from, kafka_from), (tern_end, kafka_end)) = moved;
    let answer = |side: &Side, from: Leadership, log_end: i64| {
        let leadership = side.settled(0);
        let ended = epoch_end(side, leadership.leader, leadership.epoch, from.epoch);
        (ended.error_code, ended.leader_epoch == from.epoch, ended.end_offset == log_end)
    };
    let tern = answer(sides.0, tern_from, tern_end);
    let kafka = answer(sides.1, kafka_from, kafka_end);
    mismatches.check("OffsetForLeaderEpoch v4: where the old epoch ends", &tern, &kafka);
}

fn list_offsets_code(side: &Side, asked: i32, timestamp: i64, epoch: i32) -> i16 {
    let mut request = list_offsets_request(TOPIC, timestamp);
    request.topics[0].partitions[0].current_leader_epoch = epoch;
    let response = side.connect(asked).call(9, &request);
    response.topics[0].partitions[0].error_code
}

/// OffsetForLeaderEpoch v4 for partition 0 on `asked`, naming `current_epoch` and asking
/// where `epoch` ends.
fn epoch_end(
    side: &Side,
    asked: i32,
    current_epoch: i32,
    epoch: i32,
) -> offset_for_leader_epoch_response::EpochEndOffset {
    let partition = OffsetForLeaderPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(current_epoch)
        .with_leader_epoch(epoch);
    let topic =
        OffsetForLeaderTopic::default().with_topic(name(TOPIC)).with_partitions(vec![partition]);
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic]);
    let mut response = side.connect(asked).call(4, &request);
    response.topics.remove(0).partitions.remove(0)
}

/// Produces RECORDS_BEFORE_MOVE records (acks=all) to partition 0's leader.
fn produce_to_leader(side: &Side) {
    let leadership = side.settled(0);
    let values: Vec<String> = (0..RECORDS_BEFORE_MOVE).map(|index| format!("r{index}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let request = produce_request(TOPIC, 0, -1, batch(1_700_000_000_000, &values));
    let response = side.connect(leadership.leader).call(9, &request);
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, 0, "{}: produce to the leader", side.name);
}

/// Partition 0's log end offset (ListOffsets latest) on its leader.
fn log_end(side: &Side) -> i64 {
    let leadership = side.settled(0);
    let response = side.connect(leadership.leader).call(9, &list_offsets_request(TOPIC, -1));
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0, "{}: {answer:?}", side.name);
    answer.offset
}
