//! The driver over a real shard on the simulated disk: what the coordinator answers when a
//! `__consumer_offsets` partition cannot be rebuilt at startup.

use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::config::BrokerConfig;
use crate::broker::groups::{group_partition, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::broker::handlers::offsets::{offset_commit, offset_fetch};
use crate::broker::shard::{ClusterIdentity, Shard};
use crate::broker::topics::{TopicMeta, TopicSnapshot};
use crate::io::{block_on, mesh, Disk, SimDisk};
use crate::protocol::error_code::ErrorCode;

const DATA_DIR: &str = "/data";
const GROUP: &str = "group-0";
const TOPIC: &str = "t";

fn topic(name: &str, partition_count: i32, id: u128) -> TopicMeta {
    TopicMeta {
        name: name.to_string(),
        id: uuid::Uuid::from_u128(id),
        partition_count,
        configs: Default::default(),
        replicas: Vec::new(),
        replica_directories: Vec::new(),
    }
}

/// A one-shard broker's shard over `disk`: topics opened, groups rebuilt.
async fn start_shard(disk: &Disk) -> Rc<Shard> {
    let listen: SocketAddr = "127.0.0.1:9092".parse().expect("an address");
    let config = BrokerConfig::single_node(listen, DATA_DIR.into());
    let (sender, _receiver) = mesh::channel(16);
    let cluster = ClusterIdentity {
        cluster_id: "test".to_string(),
        node_id: 0,
        directory_id: uuid::Uuid::nil(),
    };
    let shard = Shard::new(
        0,
        Arc::new(config),
        cluster,
        disk.clone(),
        vec![sender],
        Arc::new(TopicSnapshot::default()),
        Default::default(),
    );
    let topics = [topic(OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, 1), topic(TOPIC, 1, 2)];
    shard.apply_topics(Arc::new(TopicSnapshot::new(topics))).await;
    shard.groups.load(&shard).await;
    shard
}

/// OffsetCommit of `offset` for partition 0 of the topic: its error code.
async fn commit(shard: &Rc<Shard>, offset: i64) -> i16 {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(-1);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![partition])]);
    let response = offset_commit(shard, request).await;
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch (v7) of partition 0 of the topic: (group error, committed offset).
async fn fetch(shard: &Rc<Shard>) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_indexes(vec![0])]));
    let response = offset_fetch(shard, request, 7).await;
    (response.error_code, response.topics[0].partitions[0].committed_offset)
}

/// Found by the simulator (`coordinator-crash`, seed 20): a process crash, then fsync EIO
/// while the restarted broker recovered the group's `__consumer_offsets` partition, so that
/// log stayed offline; the groups were "loaded" without it, and OffsetFetch answered "no
/// committed offset" (-1) for offsets acknowledged before the crash — a consumer would have
/// reset to `auto.offset.reset`. Now the partition's groups answer COORDINATOR_NOT_AVAILABLE
/// until a restart can rebuild them, and then the offset is there.
#[test]
fn committed_offsets_of_a_partition_that_stayed_offline_are_unavailable_not_missing() {
    block_on(async {
        let sim = SimDisk::new(11);
        let disk = Disk::Simulated(sim.clone());
        disk.create_dir_all(Path::new(DATA_DIR)).expect("data dir");
        let shard = start_shard(&disk).await;
        assert_eq!(commit(&shard, 42).await, 0);
        assert_eq!(fetch(&shard).await, (0, 42));
        drop(shard);

        let directory =
            Path::new(DATA_DIR).join(format!("{OFFSETS_TOPIC}-{}", group_partition(GROUP)));
        sim.fail_next_syncs(&directory, 100);
        let shard = start_shard(&disk).await;
        let unavailable = ErrorCode::CoordinatorNotAvailable.code();
        assert_eq!(fetch(&shard).await.0, unavailable, "no answer from a partial rebuild");
        assert_eq!(commit(&shard, 43).await, unavailable);
        drop(shard);

        sim.clear_failing_syncs();
        let shard = start_shard(&disk).await;
        assert_eq!(fetch(&shard).await, (0, 42), "the offset survived");
    });
}
