//! Real network faults between real processes: three `tern` brokers, each in its own network
//! namespace on a bridge (`common/netns.rs`), while confluent-kafka produces with acks=all
//! and idempotence from the test's namespace (`clients/failover.py`). The faults are the
//! kernel's: the leader of partition 0 black-holed from its peers but not from its clients,
//! then the next leader's link taken down, then every link congested (delay, jitter, loss). After
//! each fault and each heal the producer must make progress again; at the end every
//! acknowledged record is read back once, in order, at its offset, and every offset the
//! consumer never saw is a control batch. Needs CAP_NET_ADMIN (root in CI).

mod common;

use std::time::{Duration, Instant};

use common::cluster::TernCluster;
use common::failover::{
    assert_gaps_are_control_batches, assert_verdict, wait_for_leader, FailoverScript,
    PROGRESS_RECORDS, TEST_SECONDS_MAX, TOPIC,
};
use common::netns::Network;

#[test]
fn no_acknowledged_record_is_lost_through_partitions_isolation_and_lossy_links() {
    let network = Network::create(3).unwrap_or_else(|error| {
        panic!("cannot make network namespaces (run as root, or under `unshare -Urnm`): {error}")
    });
    let deadline = Instant::now() + Duration::from_secs(TEST_SECONDS_MAX);
    let placements = network.placements(9092, 19092);
    let mut cluster = TernCluster::start_placed("network-faults", &placements, &["--shards", "2"]);
    let mut script = FailoverScript::start(&cluster, 3);
    let mut acked = script.wait_for_acked(PROGRESS_RECORDS, deadline);

    // The leader loses its peers, not its clients: it must stop acknowledging (it cannot
    // commit), and another broker must take over.
    let cut_off = wait_for_leader(&mut cluster, deadline);
    for other in cluster.node_ids().filter(|node| *node != cut_off) {
        network.cut(cut_off, other);
    }
    let successor = wait_for_other_leader(&mut cluster, cut_off, deadline);
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
    println!("cut node {cut_off} from its peers: node {successor} leads, {acked} acked");
    network.heal_cuts();
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);

    // The leader's link goes down: nobody reaches it, nor it anybody. No RST reaches the
    // client either: librdkafka gives up on its requests in flight there only after
    // socket.timeout.ms (60 s), as it would with Kafka; this phase takes about that long.
    let isolated = wait_for_leader(&mut cluster, deadline);
    network.isolate(isolated);
    let successor = wait_for_other_leader(&mut cluster, isolated, deadline);
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
    println!("isolated node {isolated}: node {successor} leads, {acked} acked");
    network.rejoin(isolated);
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);

    // Every link congested: 2 Mbit/s out of each broker, 50 ms of queue, drops beyond.
    network.congest(2_000, 50);
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
    network.restore();
    acked = script.wait_for_acked(acked + PROGRESS_RECORDS, deadline);
    println!("congestion over: {acked} acked");

    println!("after the faults: {}", leadership(&cluster));
    let verdict = script.verdict(deadline);
    assert_verdict(&verdict, 3, acked);
    assert_gaps_are_control_batches(&mut cluster, &verdict);
    println!("verdict {verdict}");
    cluster.stop_all();
}

/// The leader of partition 0 once it is not `previous`.
fn wait_for_other_leader(cluster: &mut TernCluster, previous: i32, deadline: Instant) -> i32 {
    loop {
        match cluster.leader_of(TOPIC, 0) {
            Some(leader) if leader != previous => return leader,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no leader other than {previous}:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Per broker, per partition of the topic: (leader, epoch, error code) as Metadata names them.
fn leadership(cluster: &TernCluster) -> String {
    use common::kafka::Connection;
    use kafka_protocol::messages::MetadataRequest;
    let mut lines = Vec::new();
    for node in cluster.node_ids() {
        let address = cluster.broker(node).bootstrap();
        let answer = Connection::try_connect(&address).and_then(|mut connection| {
            connection.try_call(12, &MetadataRequest::default().with_topics(None))
        });
        let Some(answer) = answer else {
            lines.push(format!("node {node}: no answer"));
            continue;
        };
        for topic in answer.topics.iter().filter(|topic| topic.partitions.len() < 10) {
            let named: Vec<(i32, i32, i16)> = topic
                .partitions
                .iter()
                .map(|p| (p.leader_id.0, p.leader_epoch, p.error_code))
                .collect();
            lines.push(format!("node {node}: {:?} {named:?}", topic.name));
        }
    }
    lines.join("\n")
}
