use super::*;
use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_topics_response,
    describe_configs_response, fetch_response, list_offsets_response, metadata_response,
    produce_response,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

fn meta(api_key: ApiKey, api_version: i16) -> RequestMeta {
    RequestMeta { api_key, api_version, correlation_id: 77, client_id: None }
}

/// A response of each type with one entry in its main list, valid at every version.
fn populated_response(api_key: ApiKey) -> Response {
    match api_key {
        ApiKey::ApiVersions => {
            Response::ApiVersions(crate::protocol::api_versions::api_versions_response(0).0)
        }
        ApiKey::Metadata => {
            let mut topic = metadata_response::MetadataResponseTopic::default();
            topic.name = Some(StrBytes::from_static_str("orders").into());
            topic.partitions = vec![Default::default()];
            let mut body = MetadataResponse::default();
            body.topics = vec![topic];
            body.brokers = vec![Default::default()];
            Response::Metadata(body)
        }
        ApiKey::Produce => {
            let mut topic = produce_response::TopicProduceResponse::default();
            topic.name = StrBytes::from_static_str("orders").into();
            topic.partition_responses = vec![Default::default()];
            let mut body = ProduceResponse::default();
            body.responses = vec![topic];
            Response::Produce(body)
        }
        ApiKey::Fetch => {
            let mut partition = fetch_response::PartitionData::default();
            partition.records = Some(Bytes::from_static(b"record batch bytes, opaque here"));
            let mut topic = fetch_response::FetchableTopicResponse::default();
            topic.partitions = vec![partition];
            let mut body = FetchResponse::default();
            body.responses = vec![topic];
            Response::Fetch(body)
        }
        ApiKey::ListOffsets => {
            let mut topic = list_offsets_response::ListOffsetsTopicResponse::default();
            topic.partitions = vec![Default::default()];
            let mut body = ListOffsetsResponse::default();
            body.topics = vec![topic];
            Response::ListOffsets(body)
        }
        ApiKey::CreateTopics => {
            let mut body = CreateTopicsResponse::default();
            body.topics = vec![create_topics_response::CreatableTopicResult::default()];
            Response::CreateTopics(body)
        }
        ApiKey::DeleteTopics => {
            let mut body = DeleteTopicsResponse::default();
            let mut result = delete_topics_response::DeletableTopicResult::default();
            result.name = Some(StrBytes::from_static_str("orders").into());
            body.responses = vec![result];
            Response::DeleteTopics(body)
        }
        ApiKey::InitProducerId => {
            let mut body = InitProducerIdResponse::default();
            body.producer_id = 1000.into();
            body.producer_epoch = 2;
            Response::InitProducerId(body)
        }
        ApiKey::DescribeConfigs => {
            let mut body = DescribeConfigsResponse::default();
            body.results = vec![describe_configs_response::DescribeConfigsResult::default()];
            Response::DescribeConfigs(body)
        }
        ApiKey::DescribeCluster => {
            let mut body = DescribeClusterResponse::default();
            body.cluster_id = StrBytes::from_static_str("tern-cluster");
            body.brokers = vec![Default::default()];
            Response::DescribeCluster(body)
        }
        other => group_response(other),
    }
}

/// The group APIs (their default bodies are valid at every version), and CreatePartitions.
fn group_response(api_key: ApiKey) -> Response {
    match api_key {
        ApiKey::CreatePartitions => {
            let mut result = create_partitions_response::CreatePartitionsTopicResult::default();
            result.name = StrBytes::from_static_str("orders").into();
            result.error_code = 37;
            result.error_message = Some(StrBytes::from_static_str("would not be an increase"));
            let mut body = CreatePartitionsResponse::default();
            body.results = vec![result];
            Response::CreatePartitions(body)
        }
        ApiKey::FindCoordinator => Response::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => Response::JoinGroup(Default::default()),
        ApiKey::SyncGroup => Response::SyncGroup(Default::default()),
        ApiKey::Heartbeat => Response::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => Response::LeaveGroup(Default::default()),
        ApiKey::OffsetCommit => Response::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => Response::OffsetFetch(Default::default()),
        ApiKey::ListGroups => Response::ListGroups(Default::default()),
        ApiKey::DescribeGroups => Response::DescribeGroups(Default::default()),
        ApiKey::DeleteGroups => Response::DeleteGroups(Default::default()),
        ApiKey::OffsetDelete => Response::OffsetDelete(Default::default()),
        ApiKey::DeleteRecords => Response::DeleteRecords(Default::default()),
        ApiKey::ElectLeaders => Response::ElectLeaders(Default::default()),
        ApiKey::OffsetForLeaderEpoch => Response::OffsetForLeaderEpoch(Default::default()),
        ApiKey::AlterConfigs => Response::AlterConfigs(Default::default()),
        ApiKey::IncrementalAlterConfigs => Response::IncrementalAlterConfigs(Default::default()),
        other => panic!("no response for {other:?}"),
    }
}

/// Splits encoded bytes into (header version seen, correlation id, decoded body).
fn decode_encoded(api_key: ApiKey, version: i16, bytes: &Bytes) -> (i32, Response) {
    let size = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert_eq!(size as usize, bytes.len() - SIZE_PREFIX_BYTES, "size prefix");
    let mut buffer = bytes.slice(SIZE_PREFIX_BYTES..);
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::decode(&mut buffer, header_version).unwrap();
    fn body<T: Decodable>(buffer: &mut Bytes, version: i16) -> T {
        T::decode(buffer, version).unwrap()
    }
    let buffer = &mut buffer;
    let body = match api_key {
        ApiKey::ApiVersions => Response::ApiVersions(body(buffer, version)),
        ApiKey::Metadata => Response::Metadata(body(buffer, version)),
        ApiKey::Produce => Response::Produce(body(buffer, version)),
        ApiKey::Fetch => Response::Fetch(body(buffer, version)),
        ApiKey::ListOffsets => Response::ListOffsets(body(buffer, version)),
        ApiKey::CreateTopics => Response::CreateTopics(body(buffer, version)),
        ApiKey::DeleteTopics => Response::DeleteTopics(body(buffer, version)),
        ApiKey::InitProducerId => Response::InitProducerId(body(buffer, version)),
        ApiKey::DescribeConfigs => Response::DescribeConfigs(body(buffer, version)),
        ApiKey::DescribeCluster => Response::DescribeCluster(body(buffer, version)),
        ApiKey::CreatePartitions => Response::CreatePartitions(body(buffer, version)),
        ApiKey::FindCoordinator => Response::FindCoordinator(body(buffer, version)),
        ApiKey::JoinGroup => Response::JoinGroup(body(buffer, version)),
        ApiKey::SyncGroup => Response::SyncGroup(body(buffer, version)),
        ApiKey::Heartbeat => Response::Heartbeat(body(buffer, version)),
        ApiKey::LeaveGroup => Response::LeaveGroup(body(buffer, version)),
        ApiKey::OffsetCommit => Response::OffsetCommit(body(buffer, version)),
        ApiKey::OffsetFetch => Response::OffsetFetch(body(buffer, version)),
        ApiKey::ListGroups => Response::ListGroups(body(buffer, version)),
        ApiKey::DescribeGroups => Response::DescribeGroups(body(buffer, version)),
        ApiKey::DeleteGroups => Response::DeleteGroups(body(buffer, version)),
        ApiKey::OffsetDelete => Response::OffsetDelete(body(buffer, version)),
        ApiKey::DeleteRecords => Response::DeleteRecords(body(buffer, version)),
        ApiKey::ElectLeaders => Response::ElectLeaders(body(buffer, version)),
        ApiKey::OffsetForLeaderEpoch => Response::OffsetForLeaderEpoch(body(buffer, version)),
        ApiKey::AlterConfigs => Response::AlterConfigs(body(buffer, version)),
        ApiKey::IncrementalAlterConfigs => Response::IncrementalAlterConfigs(body(buffer, version)),
        other => panic!("no decoder for {other:?}"),
    };
    assert!(buffer.is_empty(), "{api_key:?} v{version}: bytes after the body");
    (header.correlation_id, body)
}

#[test]
fn every_response_round_trips_at_min_and_max_version() {
    for supported in api::SUPPORTED_APIS {
        for version in [supported.min_version, supported.max_version] {
            let response = populated_response(supported.key);
            let bytes = encode_response(&meta(supported.key, version), &response)
                .unwrap_or_else(|error| panic!("{:?} v{version}: {error}", supported.key));
            let (correlation_id, decoded) = decode_encoded(supported.key, version, &bytes);
            assert_eq!(correlation_id, 77);
            assert_eq!(decoded, response, "{:?} v{version}", supported.key);
        }
    }
}

#[test]
fn flexible_versions_get_response_header_v1_except_api_versions() {
    let header_bytes = |api_key: ApiKey, version: i16| {
        let body = populated_response(api_key);
        let bytes = encode_response(&meta(api_key, version), &body).unwrap();
        let body_bytes = match &body {
            Response::Metadata(message) => Encodable::compute_size(message, version).unwrap(),
            Response::ApiVersions(message) => Encodable::compute_size(message, version).unwrap(),
            _ => unreachable!(),
        };
        bytes.len() - SIZE_PREFIX_BYTES - body_bytes
    };
    assert_eq!(header_bytes(ApiKey::Metadata, 8), 4, "v8 is not flexible: header v0");
    assert_eq!(header_bytes(ApiKey::Metadata, 9), 5, "v9 is flexible: header v1 adds tags");
    assert_eq!(header_bytes(ApiKey::ApiVersions, 3), 4, "ApiVersions is always header v0");
    assert_eq!(header_bytes(ApiKey::ApiVersions, 4), 4, "ApiVersions is always header v0");
}

#[test]
fn fetch_records_are_copied_verbatim() {
    let records = Bytes::from_static(b"\x00\x01opaque batch bytes\xff");
    let mut partition = fetch_response::PartitionData::default();
    partition.records = Some(records.clone());
    let mut topic = fetch_response::FetchableTopicResponse::default();
    topic.partitions = vec![partition];
    let mut body = FetchResponse::default();
    body.responses = vec![topic];
    let bytes = encode_response(&meta(ApiKey::Fetch, 16), &Response::Fetch(body)).unwrap();
    let found = bytes.windows(records.len()).any(|window| window == &records[..]);
    assert!(found, "record bytes must appear unchanged in the response");
}

#[test]
fn mismatched_or_unsupported_responses_are_refused_and_leave_the_buffer() {
    let mut out = BytesMut::from(&b"earlier"[..]);
    let body = populated_response(ApiKey::Metadata);
    let error = encode_response_into(&meta(ApiKey::Produce, 9), &body, &mut out).unwrap_err();
    assert_eq!(
        error,
        EncodeError::WrongApi { request: ApiKey::Produce, response: ApiKey::Metadata }
    );
    let error = encode_response_into(&meta(ApiKey::Metadata, 13), &body, &mut out).unwrap_err();
    assert_eq!(
        error,
        EncodeError::UnsupportedVersion { api_key: ApiKey::Metadata, api_version: 13 }
    );
    assert_eq!(&out[..], b"earlier");
}

#[test]
fn codec_refusal_leaves_the_buffer_unchanged() {
    // Produce v12 cannot carry a topic id (it arrives in v13): the codec refuses.
    let mut topic = produce_response::TopicProduceResponse::default();
    topic.topic_id = uuid::Uuid::from_u128(1);
    let mut body = ProduceResponse::default();
    body.responses = vec![topic];
    let mut out = BytesMut::from(&b"earlier"[..]);
    let result =
        encode_response_into(&meta(ApiKey::Produce, 12), &Response::Produce(body), &mut out);
    if result.is_err() {
        assert_eq!(&out[..], b"earlier");
    }
}

#[test]
fn responses_append_after_earlier_ones() {
    let mut out = BytesMut::new();
    let body = populated_response(ApiKey::DescribeCluster);
    encode_response_into(&meta(ApiKey::DescribeCluster, 0), &body, &mut out).unwrap();
    let first_bytes = out.len();
    encode_response_into(&meta(ApiKey::DescribeCluster, 1), &body, &mut out).unwrap();
    let second = out.split_off(first_bytes).freeze();
    let (_, decoded) = decode_encoded(ApiKey::DescribeCluster, 1, &second);
    assert_eq!(decoded, body);
}
