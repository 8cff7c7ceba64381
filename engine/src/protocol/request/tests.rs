use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, create_topics_request,
    delete_records_request, delete_topics_request, describe_configs_request, elect_leaders_request,
    fetch_request, incremental_alter_configs_request, join_group_request, leave_group_request,
    list_offsets_request, metadata_request, offset_commit_request, offset_delete_request,
    offset_fetch_request, offset_for_leader_epoch_request, produce_request, sync_group_request,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

const CORRELATION_ID: i32 = 0x0102_0304;

/// A frame body (no size prefix): header at the API's header version, then `body`.
fn frame_with<T: Encodable>(api_key: ApiKey, version: i16, body: &T) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = CORRELATION_ID;
    header.client_id = Some(StrBytes::from_static_str("tern-test"));
    let mut out = BytesMut::new();
    header.encode(&mut out, api_key.request_header_version(version)).unwrap();
    body.encode(&mut out, version).unwrap();
    out.freeze()
}

/// A request of every supported API with every array populated, so the bounds walk visits
/// every nested structure (and known tagged fields where the version has them).
fn populated_request(api_key: ApiKey, version: i16) -> Request {
    match api_key {
        ApiKey::ApiVersions => {
            let mut body = ApiVersionsRequest::default();
            if version >= 3 {
                body.client_software_name = StrBytes::from_static_str("tern");
                body.client_software_version = StrBytes::from_static_str("0.1");
            }
            Request::ApiVersions(body)
        }
        ApiKey::Metadata => {
            let mut body = MetadataRequest::default();
            let mut topic = metadata_request::MetadataRequestTopic::default();
            topic.name = Some(StrBytes::from_static_str("orders").into());
            body.topics = Some(vec![topic.clone(), topic]);
            Request::Metadata(body)
        }
        ApiKey::Produce => Request::Produce(populated_produce(version)),
        ApiKey::Fetch => Request::Fetch(populated_fetch(version)),
        ApiKey::ListOffsets => {
            let mut topic = list_offsets_request::ListOffsetsTopic::default();
            topic.name = StrBytes::from_static_str("orders").into();
            topic.partitions = vec![Default::default(), Default::default()];
            let mut body = ListOffsetsRequest::default();
            body.topics = vec![topic];
            Request::ListOffsets(body)
        }
        ApiKey::CreateTopics => Request::CreateTopics(populated_create_topics()),
        ApiKey::DeleteTopics => {
            let mut body = DeleteTopicsRequest::default();
            if version >= 6 {
                let mut topic = delete_topics_request::DeleteTopicState::default();
                topic.name = Some(StrBytes::from_static_str("orders").into());
                body.topics = vec![topic];
            } else {
                body.topic_names = vec![StrBytes::from_static_str("orders").into()];
            }
            Request::DeleteTopics(body)
        }
        ApiKey::DescribeConfigs => {
            let mut resource = describe_configs_request::DescribeConfigsResource::default();
            resource.resource_type = 2;
            resource.resource_name = StrBytes::from_static_str("orders");
            resource.configuration_keys = Some(vec![StrBytes::from_static_str("retention.ms")]);
            let mut body = DescribeConfigsRequest::default();
            body.resources = vec![resource];
            Request::DescribeConfigs(body)
        }
        ApiKey::InitProducerId => {
            let mut body = InitProducerIdRequest::default();
            body.transactional_id = Some(StrBytes::from_static_str("txn").into());
            body.transaction_timeout_ms = 60_000;
            if version >= 3 {
                body.producer_id = 42.into();
                body.producer_epoch = 3;
            }
            Request::InitProducerId(body)
        }
        ApiKey::DescribeCluster => Request::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::CreatePartitions => Request::CreatePartitions(populated_create_partitions()),
        other => populated_group_request(other, version),
    }
}

fn text(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

/// The consumer-group APIs, every array and nullable field populated where the version has it.
fn populated_group_request(api_key: ApiKey, version: i16) -> Request {
    let group = || text("group-a").into();
    let instance = |from: i16| (version >= from).then(|| text("instance-1"));
    match api_key {
        ApiKey::FindCoordinator => {
            let mut body = FindCoordinatorRequest::default();
            if version <= 3 {
                body.key = text("group-a");
            } else {
                body.coordinator_keys = vec![text("group-a"), text("group-b")];
            }
            Request::FindCoordinator(body)
        }
        ApiKey::JoinGroup => {
            let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
            protocol.name = text("range");
            protocol.metadata = bytes::Bytes::from_static(b"subscription");
            let mut body = JoinGroupRequest::default();
            body.group_id = group();
            body.session_timeout_ms = 6000;
            body.rebalance_timeout_ms = if version >= 1 { 9000 } else { -1 };
            body.member_id = text("member-1");
            body.group_instance_id = instance(5);
            body.protocol_type = text("consumer");
            body.protocols = vec![protocol.clone(), protocol.with_name(text("roundrobin"))];
            body.reason = (version >= 8).then(|| text("rejoin"));
            Request::JoinGroup(body)
        }
        ApiKey::SyncGroup => {
            let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
            assignment.member_id = text("member-1");
            assignment.assignment = bytes::Bytes::from_static(b"partitions");
            let mut body = SyncGroupRequest::default();
            body.group_id = group();
            body.generation_id = 3;
            body.member_id = text("member-1");
            body.group_instance_id = instance(3);
            body.protocol_type = (version >= 5).then(|| text("consumer"));
            body.protocol_name = (version >= 5).then(|| text("range"));
            body.assignments = vec![assignment.clone(), assignment];
            Request::SyncGroup(body)
        }
        other => populated_group_request_more(other, version),
    }
}

fn populated_group_request_more(api_key: ApiKey, version: i16) -> Request {
    let group = || text("group-a").into();
    let instance = |from: i16| (version >= from).then(|| text("instance-1"));
    match api_key {
        ApiKey::Heartbeat => {
            let mut body = HeartbeatRequest::default();
            body.group_id = group();
            body.generation_id = 3;
            body.member_id = text("member-1");
            body.group_instance_id = instance(3);
            Request::Heartbeat(body)
        }
        ApiKey::LeaveGroup => {
            let mut body = LeaveGroupRequest::default();
            body.group_id = group();
            if version <= 2 {
                body.member_id = text("member-1");
            } else {
                let mut member = leave_group_request::MemberIdentity::default();
                member.member_id = text("member-1");
                member.group_instance_id = instance(3);
                member.reason = (version >= 5).then(|| text("closing"));
                body.members = vec![member.clone(), member];
            }
            Request::LeaveGroup(body)
        }
        ApiKey::OffsetCommit => Request::OffsetCommit(populated_offset_commit(version)),
        ApiKey::OffsetFetch => Request::OffsetFetch(populated_offset_fetch(version)),
        ApiKey::ListGroups => {
            let mut body = ListGroupsRequest::default();
            if version >= 4 {
                body.states_filter = vec![text("Stable"), text("Empty")];
            }
            if version >= 5 {
                body.types_filter = vec![text("classic")];
            }
            Request::ListGroups(body)
        }
        ApiKey::DescribeGroups => {
            let mut body = DescribeGroupsRequest::default();
            body.groups = vec![group(), group()];
            body.include_authorized_operations = version >= 3;
            Request::DescribeGroups(body)
        }
        ApiKey::DeleteGroups => Request::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![group(); 2]),
        ),
        ApiKey::OffsetDelete => {
            let partition = offset_delete_request::OffsetDeleteRequestPartition::default();
            let mut topic = offset_delete_request::OffsetDeleteRequestTopic::default();
            topic.name = text("orders").into();
            topic.partitions = vec![partition.clone(), partition.with_partition_index(4)];
            let mut body = OffsetDeleteRequest::default();
            body.group_id = group();
            body.topics = vec![topic];
            Request::OffsetDelete(body)
        }
        ApiKey::DeleteRecords => Request::DeleteRecords(populated_delete_records()),
        ApiKey::ElectLeaders => Request::ElectLeaders(populated_elect_leaders(version)),
        ApiKey::OffsetForLeaderEpoch => {
            Request::OffsetForLeaderEpoch(populated_offset_for_leader_epoch())
        }
        ApiKey::AlterConfigs => Request::AlterConfigs(populated_alter_configs()),
        ApiKey::IncrementalAlterConfigs => {
            Request::IncrementalAlterConfigs(populated_incremental_alter_configs())
        }
        other => panic!("no populated request for {other:?}"),
    }
}

fn populated_offset_for_leader_epoch() -> OffsetForLeaderEpochRequest {
    let partition = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
        .with_current_leader_epoch(-1);
    let later = partition.clone().with_partition(2).with_leader_epoch(3);
    let topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
        .with_topic(text("orders").into())
        .with_partitions(vec![partition, later]);
    OffsetForLeaderEpochRequest::default().with_topics(vec![topic])
}

fn populated_elect_leaders(version: i16) -> ElectLeadersRequest {
    let topic = elect_leaders_request::TopicPartitions::default()
        .with_topic(text("orders").into())
        .with_partitions(vec![0, 3]);
    ElectLeadersRequest::default()
        .with_election_type(if version >= 1 { 1 } else { 0 })
        .with_topic_partitions(Some(vec![topic]))
        .with_timeout_ms(60_000)
}

fn populated_delete_records() -> DeleteRecordsRequest {
    let partition = delete_records_request::DeleteRecordsPartition::default().with_offset(-1);
    let mut topic = delete_records_request::DeleteRecordsTopic::default();
    topic.name = text("orders").into();
    topic.partitions = vec![partition.clone(), partition.with_partition_index(3).with_offset(9)];
    DeleteRecordsRequest::default().with_topics(vec![topic.clone(), topic]).with_timeout_ms(500)
}

fn populated_alter_configs() -> AlterConfigsRequest {
    let config = alter_configs_request::AlterableConfig::default()
        .with_name(text("retention.ms"))
        .with_value(Some(text("1000")));
    let resource = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configs(vec![config.clone(), config.with_value(None)]);
    AlterConfigsRequest::default().with_resources(vec![resource.clone(), resource])
}

fn populated_incremental_alter_configs() -> IncrementalAlterConfigsRequest {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(text("cleanup.policy"))
        .with_config_operation(2)
        .with_value(Some(text("compact")));
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configs(vec![config.clone(), config.with_value(None)]);
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource.clone(), resource])
        .with_validate_only(true)
}

fn populated_offset_commit(version: i16) -> OffsetCommitRequest {
    let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
    partition.partition_index = 2;
    partition.committed_offset = 77;
    partition.committed_leader_epoch = if version >= 6 { 4 } else { -1 };
    partition.committed_metadata = Some(text("metadata"));
    let mut topic = offset_commit_request::OffsetCommitRequestTopic::default();
    topic.name = text("orders").into();
    topic.partitions = vec![partition.clone(), partition];
    let mut body = OffsetCommitRequest::default();
    body.group_id = text("group-a").into();
    body.generation_id_or_member_epoch = 3;
    body.member_id = text("member-1");
    body.group_instance_id = (version >= 7).then(|| text("instance-1"));
    body.retention_time_ms = if version <= 4 { 1000 } else { -1 };
    body.topics = vec![topic];
    body
}

fn populated_offset_fetch(version: i16) -> OffsetFetchRequest {
    let mut body = OffsetFetchRequest::default();
    if version <= 7 {
        let mut topic = offset_fetch_request::OffsetFetchRequestTopic::default();
        topic.name = text("orders").into();
        topic.partition_indexes = vec![0, 1, 2];
        body.group_id = text("group-a").into();
        body.topics = Some(vec![topic]);
    } else {
        let mut topic = offset_fetch_request::OffsetFetchRequestTopics::default();
        topic.name = text("orders").into();
        topic.partition_indexes = vec![0, 1, 2];
        let mut group = offset_fetch_request::OffsetFetchRequestGroup::default();
        group.group_id = text("group-a").into();
        if version >= 9 {
            group.member_id = Some(text("member-1"));
            group.member_epoch = 5;
        }
        group.topics = Some(vec![topic]);
        body.groups = vec![group.clone(), group.with_topics(None)];
    }
    body.require_stable = version >= 7;
    body
}

fn populated_produce(version: i16) -> ProduceRequest {
    let mut partition = produce_request::PartitionProduceData::default();
    partition.records = Some(Bytes::from_static(b"not parsed at this layer"));
    let mut topic = produce_request::TopicProduceData::default();
    topic.name = StrBytes::from_static_str("orders").into();
    topic.partition_data = vec![partition.clone(), partition];
    let mut body = ProduceRequest::default();
    body.acks = -1;
    body.topic_data = vec![topic];
    if version >= 9 {
        body.unknown_tagged_fields.insert(7, Bytes::from_static(b"future"));
    }
    body
}

fn populated_fetch(version: i16) -> FetchRequest {
    let mut partition = fetch_request::FetchPartition::default();
    partition.fetch_offset = 42;
    if version >= 17 {
        partition.replica_directory_id = uuid::Uuid::from_u128(7);
    }
    let mut topic = fetch_request::FetchTopic::default();
    if version <= 12 {
        topic.topic = StrBytes::from_static_str("orders").into();
    } else {
        topic.topic_id = uuid::Uuid::from_u128(9);
    }
    topic.partitions = vec![partition.clone(), partition];
    let mut forgotten = fetch_request::ForgottenTopic::default();
    forgotten.partitions = vec![1, 2, 3];
    let mut body = FetchRequest::default();
    body.topics = vec![topic];
    if version >= 7 {
        body.forgotten_topics_data = vec![forgotten];
    }
    if version >= 12 {
        body.cluster_id = Some(StrBytes::from_static_str("tern-cluster"));
    }
    if version >= 15 {
        body.replica_state.replica_epoch = 5;
    }
    body
}

fn populated_create_topics() -> CreateTopicsRequest {
    let mut assignment = create_topics_request::CreatableReplicaAssignment::default();
    assignment.broker_ids = vec![1.into(), 2.into()];
    let mut config = create_topics_request::CreatableTopicConfig::default();
    config.name = StrBytes::from_static_str("retention.ms");
    config.value = Some(StrBytes::from_static_str("1000"));
    let mut topic = create_topics_request::CreatableTopic::default();
    topic.name = StrBytes::from_static_str("orders").into();
    topic.assignments = vec![assignment];
    topic.configs = vec![config.clone(), config];
    let mut body = CreateTopicsRequest::default();
    body.topics = vec![topic];
    body
}

/// Two topics: one with a manual assignment, one with a null assignment list.
fn populated_create_partitions() -> CreatePartitionsRequest {
    let mut assignment = create_partitions_request::CreatePartitionsAssignment::default();
    assignment.broker_ids = vec![1.into(), 2.into()];
    let mut manual = create_partitions_request::CreatePartitionsTopic::default();
    manual.name = StrBytes::from_static_str("orders").into();
    manual.count = 3;
    manual.assignments = Some(vec![assignment.clone(), assignment]);
    let mut placed = manual.clone();
    placed.name = StrBytes::from_static_str("events").into();
    placed.assignments = None;
    let mut body = CreatePartitionsRequest::default();
    body.topics = vec![manual, placed];
    body.timeout_ms = 30_000;
    body.validate_only = true;
    body
}

fn frame_of(request: &Request, api_key: ApiKey, version: i16) -> Bytes {
    match request {
        Request::ApiVersions(body) => frame_with(api_key, version, body),
        Request::Metadata(body) => frame_with(api_key, version, body),
        Request::Produce(body) => frame_with(api_key, version, body),
        Request::Fetch(body) => frame_with(api_key, version, body),
        Request::ListOffsets(body) => frame_with(api_key, version, body),
        Request::CreateTopics(body) => frame_with(api_key, version, body),
        Request::DeleteTopics(body) => frame_with(api_key, version, body),
        Request::InitProducerId(body) => frame_with(api_key, version, body),
        Request::DescribeConfigs(body) => frame_with(api_key, version, body),
        Request::DescribeCluster(body) => frame_with(api_key, version, body),
        Request::CreatePartitions(body) => frame_with(api_key, version, body),
        Request::FindCoordinator(body) => frame_with(api_key, version, body),
        Request::JoinGroup(body) => frame_with(api_key, version, body),
        Request::SyncGroup(body) => frame_with(api_key, version, body),
        Request::Heartbeat(body) => frame_with(api_key, version, body),
        Request::LeaveGroup(body) => frame_with(api_key, version, body),
        Request::OffsetCommit(body) => frame_with(api_key, version, body),
        Request::OffsetFetch(body) => frame_with(api_key, version, body),
        Request::ListGroups(body) => frame_with(api_key, version, body),
        Request::DescribeGroups(body) => frame_with(api_key, version, body),
        Request::DeleteGroups(body) => frame_with(api_key, version, body),
        Request::OffsetDelete(body) => frame_with(api_key, version, body),
        Request::DeleteRecords(body) => frame_with(api_key, version, body),
        Request::ElectLeaders(body) => frame_with(api_key, version, body),
        Request::OffsetForLeaderEpoch(body) => frame_with(api_key, version, body),
        Request::AlterConfigs(body) => frame_with(api_key, version, body),
        Request::IncrementalAlterConfigs(body) => frame_with(api_key, version, body),
    }
}

/// Every supported (api, version) pair.
fn every_supported_version() -> impl Iterator<Item = (ApiKey, i16)> {
    api::SUPPORTED_APIS
        .iter()
        .flat_map(|api| (api.min_version..=api.max_version).map(move |version| (api.key, version)))
}

#[test]
fn every_supported_version_round_trips_through_decode() {
    for (api_key, version) in every_supported_version() {
        let request = populated_request(api_key, version);
        let frame = frame_of(&request, api_key, version);
        let decoded =
            decode_request(frame).unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error}"));
        let expected_meta = RequestMeta {
            api_key,
            api_version: version,
            correlation_id: CORRELATION_ID,
            client_id: Some("tern-test".to_owned()),
        };
        assert_eq!(decoded.header, expected_meta);
        assert_eq!(decoded.body, request, "{api_key:?} v{version}");
    }
}

#[test]
fn flexible_versions_use_request_header_v2() {
    // First flexible version of each API (Kafka's `flexibleVersions`).
    let first_flexible = [
        (ApiKey::Produce, 9),
        (ApiKey::Fetch, 12),
        (ApiKey::ListOffsets, 6),
        (ApiKey::Metadata, 9),
        (ApiKey::ApiVersions, 3),
        (ApiKey::CreateTopics, 5),
        (ApiKey::DeleteTopics, 4),
        (ApiKey::InitProducerId, 2),
        (ApiKey::DescribeConfigs, 4),
        (ApiKey::DescribeCluster, 0),
        (ApiKey::CreatePartitions, 2),
        (ApiKey::FindCoordinator, 3),
        (ApiKey::JoinGroup, 6),
        (ApiKey::SyncGroup, 4),
        (ApiKey::Heartbeat, 4),
        (ApiKey::LeaveGroup, 4),
        (ApiKey::OffsetCommit, 8),
        (ApiKey::OffsetFetch, 6),
        (ApiKey::ListGroups, 3),
        (ApiKey::DescribeGroups, 5),
        (ApiKey::DeleteGroups, 2),
        (ApiKey::OffsetDelete, i16::MAX),
        (ApiKey::DeleteRecords, 2),
        (ApiKey::ElectLeaders, 2),
        (ApiKey::OffsetForLeaderEpoch, 4),
        (ApiKey::AlterConfigs, 2),
        (ApiKey::IncrementalAlterConfigs, 1),
    ];
    for (api_key, flexible_from) in first_flexible {
        let (min, max) = api::supported_range(api_key as i16).unwrap();
        for version in min..=max {
            let expected = if version >= flexible_from { 2 } else { 1 };
            assert_eq!(api_key.request_header_version(version), expected, "{api_key:?} v{version}");
            let expected =
                if version >= flexible_from && api_key != ApiKey::ApiVersions { 1 } else { 0 };
            assert_eq!(
                api_key.response_header_version(version),
                expected,
                "{api_key:?} v{version}"
            );
        }
    }
}

#[test]
fn unsupported_api_versions_version_keeps_the_correlation_id() {
    let mut frame = frame_with(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default()).to_vec();
    frame[2..4].copy_from_slice(&5i16.to_be_bytes()); // a future ApiVersions version
    let error = decode_request(Bytes::from(frame)).unwrap_err();
    let expected = RequestError::UnsupportedVersion {
        api_key: ApiKey::ApiVersions,
        api_version: 5,
        correlation_id: CORRELATION_ID,
    };
    assert_eq!(error, expected);
}

#[test]
fn versions_below_the_floor_are_unsupported() {
    let mut frame = frame_with(ApiKey::Fetch, 4, &FetchRequest::default()).to_vec();
    frame[2..4].copy_from_slice(&3i16.to_be_bytes());
    let error = decode_request(Bytes::from(frame)).unwrap_err();
    assert!(matches!(error, RequestError::UnsupportedVersion { api_version: 3, .. }), "{error}");
}

#[test]
fn unknown_and_unimplemented_apis_are_refused_with_their_key() {
    for api_key in [ApiKey::AddPartitionsToTxn as i16, 999, -1] {
        let mut frame = vec![0u8; 12];
        frame[0..2].copy_from_slice(&api_key.to_be_bytes());
        frame[4..8].copy_from_slice(&CORRELATION_ID.to_be_bytes());
        let error = decode_request(Bytes::from(frame)).unwrap_err();
        assert_eq!(error, RequestError::UnknownApi { api_key, correlation_id: CORRELATION_ID });
    }
}

#[test]
fn frames_shorter_than_the_fixed_header_are_too_short() {
    for length in 0..FIXED_HEADER_BYTES {
        let error = decode_request(Bytes::from(vec![0u8; length])).unwrap_err();
        assert_eq!(error, RequestError::TooShort);
    }
}

#[test]
fn every_truncation_of_every_request_is_malformed() {
    for (api_key, version) in every_supported_version() {
        let frame = frame_of(&populated_request(api_key, version), api_key, version);
        for length in FIXED_HEADER_BYTES..frame.len() {
            let error = decode_request(frame.slice(..length)).unwrap_err();
            let RequestError::Malformed { correlation_id, .. } = error else {
                panic!("{api_key:?} v{version} cut at {length}: {error}");
            };
            assert_eq!(correlation_id, Some(CORRELATION_ID));
        }
    }
}

#[test]
fn trailing_bytes_are_ignored_as_kafka_does() {
    // Recorded from librdkafka 2.16 (AdminClient.list_topics): Metadata v12, all topics, and
    // three bytes after the body that Apache Kafka ignores.
    let frame: &[u8] = &[
        0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07, b'r', b'd', b'k', b'a', b'f',
        b'k', b'a', 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    ];
    let request = decode_request(Bytes::from_static(frame)).expect("served, like Kafka");
    let Request::Metadata(body) = request.body else { panic!("a Metadata request") };
    assert_eq!(body.topics, None, "all topics");
    let mut frame = frame_with(ApiKey::Metadata, 1, &MetadataRequest::default()).to_vec();
    frame.push(0);
    assert!(decode_request(Bytes::from(frame)).is_ok());
}

#[test]
fn huge_array_counts_are_refused_without_allocating() {
    // Produce v3 header, then transactional id null, acks, timeout, topic count i32::MAX.
    let mut frame = frame_with(ApiKey::Produce, 3, &ProduceRequest::default()).to_vec();
    let count_at = frame.len() - 4;
    frame[count_at..].copy_from_slice(&i32::MAX.to_be_bytes());
    let error = decode_request(Bytes::from(frame)).unwrap_err();
    assert!(matches!(error, RequestError::Malformed { .. }), "{error}");
    // Fetch v12: compact topics count 2^32 - 2 (varint ff ff ff ff 0f).
    let mut frame = frame_with(ApiKey::Fetch, 12, &FetchRequest::default()).to_vec();
    let topics_at = frame.len() - 4; // topics, forgotten, rack id, tags: one byte each
    frame.splice(topics_at..topics_at + 1, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    let error = decode_request(Bytes::from(frame)).unwrap_err();
    assert!(matches!(error, RequestError::Malformed { .. }), "{error}");
}

#[test]
fn produce_records_are_views_into_the_frame() {
    let frame = frame_of(&Request::Produce(populated_produce(3)), ApiKey::Produce, 3);
    let frame_range = frame.as_ptr_range();
    let decoded = decode_request(frame.clone()).unwrap();
    let Request::Produce(produce) = decoded.body else { panic!("not a produce") };
    let records = produce.topic_data[0].partition_data[0].records.as_ref().unwrap();
    assert!(frame_range.contains(&records.as_ptr()), "records were copied");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any body after a valid fixed header, for every supported API and version: an answer,
    /// never a panic (and, thanks to the bounds walk, never a huge allocation).
    #[test]
    fn arbitrary_bodies_never_panic(
        pair in proptest::sample::select(every_supported_version().collect::<Vec<_>>()),
        header_version_bytes in proptest::collection::vec(any::<u8>(), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let (api_key, version) = pair;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(api_key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&CORRELATION_ID.to_be_bytes());
        frame.extend_from_slice(&header_version_bytes);
        frame.extend_from_slice(&body);
        let _ = decode_request(Bytes::from(frame));
    }

    /// Single-byte corruptions of valid requests: decoded or refused, never a panic.
    #[test]
    fn corrupted_valid_requests_never_panic(
        pair in proptest::sample::select(every_supported_version().collect::<Vec<_>>()),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let (api_key, version) = pair;
        let mut frame = frame_of(&populated_request(api_key, version), api_key, version).to_vec();
        let index = position.index(frame.len());
        frame[index] = value;
        let _ = decode_request(Bytes::from(frame));
    }
}

fn sized_metadata(topic_count: usize, name_bytes: usize) -> MetadataRequest {
    let mut topic = metadata_request::MetadataRequestTopic::default();
    topic.name = Some(StrBytes::from_string("n".repeat(name_bytes)).into());
    let mut body = MetadataRequest::default();
    body.topics = Some(vec![topic; topic_count]);
    body
}

fn sized_produce(partition_count: usize, records_bytes: usize) -> ProduceRequest {
    let mut partition = produce_request::PartitionProduceData::default();
    partition.records = Some(Bytes::from(vec![0xab; records_bytes]));
    let mut body = populated_produce(3);
    body.unknown_tagged_fields.clear();
    body.topic_data[0].partition_data = vec![partition; partition_count];
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Lengths of 128 and more take multi-byte varints in flexible versions; the bounds walk
    /// must read them exactly as the codec does.
    #[test]
    fn large_counts_and_lengths_round_trip(
        version_index in any::<prop::sample::Index>(),
        count in 0usize..300,
        length in 0usize..400,
    ) {
        let version = version_index.index(13) as i16; // Metadata 0..=12
        let body = sized_metadata(count, length);
        let decoded = decode_request(frame_with(ApiKey::Metadata, version, &body)).unwrap();
        prop_assert_eq!(decoded.body, Request::Metadata(body));

        let version = 3 + version_index.index(10) as i16; // Produce 3..=12
        let body = sized_produce(count, length);
        let decoded = decode_request(frame_with(ApiKey::Produce, version, &body)).unwrap();
        prop_assert_eq!(decoded.body, Request::Produce(body));
    }
}
