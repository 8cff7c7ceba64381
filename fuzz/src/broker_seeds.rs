//! Seeds of the `broker` target (`fuzz/src/broker.rs`): well-formed requests of every API
//! Tern serves against the setup's topic and group, a consumer's life in the group, a long
//! poll, and the known crash reproducers. Written by `engine/tests/fuzz_seeds.rs`.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::broker::{
    check, encode, group_id, produce_request, topic_name, Frame, COMMITTED_OFFSET, PARTITIONS,
    RECORDS_PER_PARTITION, TOPIC,
};
use tern::io::block_on;
use tern::protocol::response::Response;

type TopicId = uuid::Uuid;

/// The seed corpus: every API Tern serves, well-formed and naming the topic and the group,
/// at its newest version and (where the layout differs) an old one; a consumer's whole life
/// in the group; a long poll that a produce completes. Each seed is checked to be answered
/// in full (so it is well-formed), then written by `engine/tests/fuzz_seeds.rs`.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let outcome = block_on(check(&[]));
    let Some(Response::CreateTopics(created)) = outcome.setup.first() else {
        panic!("the setup starts with CreateTopics");
    };
    let topic_id = created.topics[0].topic_id;
    let mut seeds: Vec<(String, Vec<Frame>)> = single_requests(topic_id);
    seeds.push(("long-poll-completed-by-produce".into(), long_poll(topic_id)));
    seeds.push(("consumer-group-life".into(), group_life()));
    for (name, frames) in &seeds {
        let outcome = block_on(check(frames));
        let unanswered = outcome.responses.iter().filter(|response| response.is_none()).count();
        assert_eq!(unanswered, 0, "seed {name} has requests that were not answered");
    }
    seeds.into_iter().map(|(name, frames)| (name, encode(&frames))).collect()
}

/// Known crash (issue 12): an OffsetCommit v8 whose group id is a 40,000-byte compact
/// string, naming the existing topic; the `__consumer_offsets` record encoder's int16
/// length `expect` aborted the broker.
pub fn offset_commit_huge_group_id() -> Vec<u8> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1)
        .with_committed_leader_epoch(-1);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string("g".repeat(40_000))))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![partition])]);
    encode(&[Frame::new(ApiKey::OffsetCommit, 8, &commit)])
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// One request per seed (several for APIs whose layout changed across versions).
fn single_requests(topic_id: TopicId) -> Vec<(String, Vec<Frame>)> {
    let mut requests = Vec::new();
    requests.extend(data_requests(topic_id));
    requests.extend(group_requests());
    requests.extend(admin_requests());
    requests.extend(config_requests());
    requests.into_iter().map(|(name, frame)| (name, vec![frame])).collect()
}

fn data_requests(topic_id: TopicId) -> Vec<(String, Frame)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let fetch_partitions: Vec<FetchPartition> = (0..PARTITIONS)
        .map(|partition| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let fetch = |topic: FetchTopic| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic.with_partitions(fetch_partitions.clone())])
    };
    let fetch_by_id = fetch(FetchTopic::default().with_topic_id(topic_id));
    let fetch_by_name = fetch(FetchTopic::default().with_topic(topic_name()));
    let list_partitions = [-1, -2, -3]
        .into_iter()
        .map(|timestamp| ListOffsetsPartition::default().with_timestamp(timestamp))
        .chain([ListOffsetsPartition::default().with_partition_index(1).with_timestamp(0)])
        .collect();
    let list_offsets =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(topic_name()).with_partitions(list_partitions),
        ]);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name()))]));
    let epochs =
        OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            OffsetForLeaderTopic::default().with_topic(topic_name()).with_partitions(
                (0..PARTITIONS)
                    .map(|partition| {
                        OffsetForLeaderPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0)
                    })
                    .collect(),
            ),
        ]);
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(text("fuzz"))
        .with_client_software_version(text("1.0"));
    vec![
        ("api-versions-v4".into(), Frame::new(ApiKey::ApiVersions, 4, &api_versions)),
        (
            "api-versions-v0".into(),
            Frame::new(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()),
        ),
        ("metadata-v12".into(), Frame::new(ApiKey::Metadata, 12, &metadata)),
        ("metadata-v1-all".into(), Frame::new(ApiKey::Metadata, 1, &MetadataRequest::default())),
        ("produce-v12".into(), Frame::new(ApiKey::Produce, 12, &produce_request(4))),
        ("produce-v3".into(), Frame::new(ApiKey::Produce, 3, &produce_request(1))),
        ("fetch-v17".into(), Frame::new(ApiKey::Fetch, 17, &fetch_by_id)),
        ("fetch-v4".into(), Frame::new(ApiKey::Fetch, 4, &fetch_by_name)),
        ("list-offsets-v9".into(), Frame::new(ApiKey::ListOffsets, 9, &list_offsets)),
        ("list-offsets-v1".into(), Frame::new(ApiKey::ListOffsets, 1, &list_offsets)),
        ("offset-for-leader-epoch-v4".into(), Frame::new(ApiKey::OffsetForLeaderEpoch, 4, &epochs)),
        ("init-producer-id-v5".into(), init_producer_id(5)),
        ("init-producer-id-v0".into(), init_producer_id(0)),
    ]
}

fn init_producer_id(version: i16) -> Frame {
    let request = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    Frame::new(ApiKey::InitProducerId, version, &request)
}

fn group_requests() -> Vec<(String, Frame)> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    let commit = OffsetCommitRequest::default()
        .with_group_id(group_id())
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_committed_offset(COMMITTED_OFFSET + 1)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(text("seed")))])]);
    let all_partitions: Vec<i32> = (0..PARTITIONS).collect();
    let fetch_old =
        OffsetFetchRequest::default().with_group_id(group_id()).with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic_name())
                .with_partition_indexes(all_partitions.clone()),
        ]));
    let fetch_groups = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default().with_group_id(group_id()).with_topics(Some(vec![
            OffsetFetchRequestTopics::default()
                .with_name(topic_name())
                .with_partition_indexes(all_partitions),
        ])),
        OffsetFetchRequestGroup::default().with_group_id(GroupId(text("no-such-group"))),
    ]);
    let offset_delete = OffsetDeleteRequest::default().with_group_id(group_id()).with_topics(vec![
        OffsetDeleteRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(1)]),
    ]);
    let find_keys =
        FindCoordinatorRequest::default().with_coordinator_keys(vec![text(super::broker::GROUP)]);
    let find_key = FindCoordinatorRequest::default().with_key(text(super::broker::GROUP));
    let describe = DescribeGroupsRequest::default().with_groups(vec![group_id()]);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![group_id()]);
    vec![
        ("offset-commit-v9".into(), Frame::new(ApiKey::OffsetCommit, 9, &commit)),
        ("offset-commit-v2".into(), Frame::new(ApiKey::OffsetCommit, 2, &commit)),
        ("offset-fetch-v9".into(), Frame::new(ApiKey::OffsetFetch, 9, &fetch_groups)),
        ("offset-fetch-v7".into(), Frame::new(ApiKey::OffsetFetch, 7, &fetch_old)),
        ("offset-fetch-v1".into(), Frame::new(ApiKey::OffsetFetch, 1, &fetch_old)),
        ("offset-delete-v0".into(), Frame::new(ApiKey::OffsetDelete, 0, &offset_delete)),
        ("find-coordinator-v6".into(), Frame::new(ApiKey::FindCoordinator, 6, &find_keys)),
        ("find-coordinator-v0".into(), Frame::new(ApiKey::FindCoordinator, 0, &find_key)),
        ("describe-groups-v5".into(), Frame::new(ApiKey::DescribeGroups, 5, &describe)),
        ("list-groups-v5".into(), Frame::new(ApiKey::ListGroups, 5, &ListGroupsRequest::default())),
        ("delete-groups-v2".into(), Frame::new(ApiKey::DeleteGroups, 2, &delete)),
    ]
}

fn admin_requests() -> Vec<(String, Frame)> {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(TopicName(text("fuzz-topic-new")))
            .with_num_partitions(3)
            .with_replication_factor(-1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(text("cleanup.policy"))
                .with_value(Some(text("compact")))]),
    ]);
    let delete_topics = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name()))]);
    let delete_topic_names =
        DeleteTopicsRequest::default().with_timeout_ms(30_000).with_topic_names(vec![topic_name()]);
    let delete_records = DeleteRecordsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        DeleteRecordsTopic::default().with_name(topic_name()).with_partitions(vec![
            DeleteRecordsPartition::default().with_partition_index(0).with_offset(1),
        ]),
    ]);
    let partitions = CreatePartitionsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        CreatePartitionsTopic::default().with_name(topic_name()).with_count(PARTITIONS + 1),
    ]);
    vec![
        ("create-topics-v7".into(), Frame::new(ApiKey::CreateTopics, 7, &create)),
        ("create-topics-v2".into(), Frame::new(ApiKey::CreateTopics, 2, &create)),
        ("delete-topics-v6".into(), Frame::new(ApiKey::DeleteTopics, 6, &delete_topics)),
        ("delete-topics-v1".into(), Frame::new(ApiKey::DeleteTopics, 1, &delete_topic_names)),
        ("delete-records-v2".into(), Frame::new(ApiKey::DeleteRecords, 2, &delete_records)),
        ("create-partitions-v3".into(), Frame::new(ApiKey::CreatePartitions, 3, &partitions)),
        (
            "describe-cluster-v1".into(),
            Frame::new(ApiKey::DescribeCluster, 1, &DescribeClusterRequest::default()),
        ),
    ]
}

/// A Fetch at the end of both partitions that waits (pipelined), then a Produce that
/// completes it.
fn long_poll(topic_id: TopicId) -> Vec<Frame> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let end = i64::try_from(RECORDS_PER_PARTITION).expect("small");
    let partitions = (0..PARTITIONS)
        .map(|partition| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(end)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(super::broker::LONG_POLL_MS_MIN)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions)]);
    let mut wait = Frame::new(ApiKey::Fetch, 17, &fetch);
    wait.pipelined = true;
    vec![wait, Frame::new(ApiKey::Produce, 12, &produce_request(1))]
}

/// A consumer's life: join (MEMBER_ID_REQUIRED, then again with the id), sync as leader,
/// heartbeat, commit in its generation, fetch offsets, describe, leave. The member id is
/// learned from a run (random numbers are seeded, so it is the same in every run).
fn group_life() -> Vec<Frame> {
    let join = |member_id: &str| {
        use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
        let protocol = JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"\0\x03\0\0\0\x01\0\x0afuzz-topic\xff\xff\xff\xff"));
        let request = JoinGroupRequest::default()
            .with_group_id(group_id())
            .with_session_timeout_ms(45_000)
            .with_rebalance_timeout_ms(300_000)
            .with_member_id(text(member_id))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![protocol]);
        Frame::new(ApiKey::JoinGroup, 9, &request)
    };
    let first = block_on(check(&[join("")]));
    let Some(Some(Response::JoinGroup(answer))) = first.responses.first() else {
        panic!("JoinGroup is answered at once");
    };
    assert_eq!(answer.error_code, 79, "a new member is told MEMBER_ID_REQUIRED");
    let member_id = answer.member_id.to_string();
    let generation = 1;
    let member = text(&member_id);
    let sync = SyncGroupRequest::default()
        .with_group_id(group_id())
        .with_generation_id(generation)
        .with_member_id(member.clone())
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(Bytes::from_static(
                b"\0\x03\0\0\0\x01\0\x0afuzz-topic\0\0\0\x02\0\0\0\0\0\0\0\x01\xff\xff\xff\xff",
            ))]);
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group_id())
        .with_generation_id(generation)
        .with_member_id(member.clone());
    let commit = member_commit(&member, generation);
    let fetch = OffsetFetchRequest::default().with_group_id(group_id()).with_topics(None);
    let describe = DescribeGroupsRequest::default().with_groups(vec![group_id()]);
    let leave = LeaveGroupRequest::default().with_group_id(group_id()).with_members(vec![
        leave_group_request::MemberIdentity::default()
            .with_member_id(member)
            .with_reason(Some(text("seed done"))),
    ]);
    vec![
        join(""),
        join(&member_id),
        Frame::new(ApiKey::SyncGroup, 5, &sync),
        Frame::new(ApiKey::Heartbeat, 4, &heartbeat),
        Frame::new(ApiKey::OffsetCommit, 9, &commit),
        Frame::new(ApiKey::OffsetFetch, 7, &fetch),
        Frame::new(ApiKey::DescribeGroups, 5, &describe),
        Frame::new(ApiKey::ListGroups, 5, &ListGroupsRequest::default()),
        Frame::new(ApiKey::LeaveGroup, 5, &leave),
    ]
}

/// OffsetCommit of partition 1 by `member` in `generation`.
fn member_commit(member: &StrBytes, generation: i32) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    OffsetCommitRequest::default()
        .with_group_id(group_id())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member.clone())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(3)
                .with_committed_leader_epoch(0)])])
}

/// DescribeConfigs, AlterConfigs and IncrementalAlterConfigs of the topic (and the broker).
fn config_requests() -> Vec<(String, Frame)> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{alter_configs_request, incremental_alter_configs_request};
    const TOPIC_RESOURCE: i8 = 2;
    const BROKER_RESOURCE: i8 = 4;
    let describe_configs = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(TOPIC)),
        DescribeConfigsResource::default()
            .with_resource_type(BROKER_RESOURCE)
            .with_resource_name(text("0")),
    ]);
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(TOPIC))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(text("retention.ms"))
                .with_value(Some(text("3600000")))]),
    ]);
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(text(TOPIC))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text("message.timestamp.type"))
                .with_config_operation(0)
                .with_value(Some(text("LogAppendTime")))]),
    ]);
    vec![
        ("describe-configs-v4".into(), Frame::new(ApiKey::DescribeConfigs, 4, &describe_configs)),
        ("alter-configs-v2".into(), Frame::new(ApiKey::AlterConfigs, 2, &alter)),
        (
            "incremental-alter-configs-v1".into(),
            Frame::new(ApiKey::IncrementalAlterConfigs, 1, &incremental),
        ),
    ]
}
