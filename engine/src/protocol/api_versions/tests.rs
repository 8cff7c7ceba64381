use super::*;
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Decodable;

#[test]
fn supported_versions_are_answered_at_their_version() {
    for version in 0..=4 {
        let (response, encode_version) = api_versions_response(version);
        assert_eq!(encode_version, version);
        assert_eq!(response.error_code, 0);
        assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
        for (entry, api) in response.api_keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(
                (entry.api_key, entry.min_version, entry.max_version),
                (api.key as i16, api::advertised_min_version(api), api.max_version)
            );
        }
    }
}

/// KAFKA-18659: librdkafka enables gzip/snappy/lz4 only if Produce v0 is advertised.
#[test]
fn produce_is_advertised_from_v0_like_kafka_4_but_served_from_v3() {
    let (response, _) = api_versions_response(3);
    let produce = response.api_keys.iter().find(|entry| entry.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
    assert!(!api::is_supported(ApiKey::Produce, 2));
    assert!(api::is_supported(ApiKey::Produce, 3));
}

#[test]
fn unsupported_versions_get_error_35_in_a_v0_body_with_our_ranges() {
    for version in [5, 17, i16::MAX, -1] {
        let (response, encode_version) = api_versions_response(version);
        assert_eq!(encode_version, 0);
        assert_eq!(response.error_code, 35);
        assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
    }
}

#[test]
fn unsupported_version_answer_parses_as_v0_with_the_correlation_id() {
    let bytes = unsupported_version_answer(0x0a0b_0c0d).unwrap();
    let mut buffer = bytes.slice(4..);
    let header = ResponseHeader::decode(&mut buffer, 0).unwrap();
    assert_eq!(header.correlation_id, 0x0a0b_0c0d);
    let body = ApiVersionsResponse::decode(&mut buffer, 0).unwrap();
    assert!(buffer.is_empty());
    assert_eq!(body.error_code, 35);
    let entry = body.api_keys.iter().find(|entry| entry.api_key == ApiKey::ApiVersions as i16);
    assert_eq!(entry.map(|entry| (entry.min_version, entry.max_version)), Some((0, 4)));
}

/// The bytes a client receives for an ApiVersions v3 request: header v0 (correlation id only),
/// then the flexible body with an EMPTY tagged-field section (see the module comment).
#[test]
fn api_versions_v3_bytes_are_exact() {
    let (body, version) = api_versions_response(3);
    let meta = RequestMeta {
        api_key: ApiKey::ApiVersions,
        api_version: version,
        correlation_id: 1,
        client_id: None,
    };
    let bytes = encode_response(&meta, &Response::ApiVersions(body)).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 201,           // size: 4 header + 197 body
        0, 0, 0, 1,             // correlation id (response header v0: no tagged fields)
        0, 0,                   // error code NONE
        28,                     // compact array: 27 APIs + 1
        0, 0,  0, 0,  0, 12, 0, // Produce advertised 0..12 (served 3..12), no tags
        0, 1,  0, 4,  0, 17, 0, // Fetch 4..17
        0, 2,  0, 1,  0, 9,  0, // ListOffsets 1..9
        0, 3,  0, 0,  0, 12, 0, // Metadata 0..12
        0, 8,  0, 2,  0, 9,  0, // OffsetCommit 2..9
        0, 9,  0, 1,  0, 9,  0, // OffsetFetch 1..9
        0, 10, 0, 0,  0, 6,  0, // FindCoordinator 0..6
        0, 11, 0, 0,  0, 9,  0, // JoinGroup 0..9
        0, 12, 0, 0,  0, 4,  0, // Heartbeat 0..4
        0, 13, 0, 0,  0, 5,  0, // LeaveGroup 0..5
        0, 14, 0, 0,  0, 5,  0, // SyncGroup 0..5
        0, 15, 0, 0,  0, 5,  0, // DescribeGroups 0..5
        0, 16, 0, 0,  0, 5,  0, // ListGroups 0..5
        0, 18, 0, 0,  0, 4,  0, // ApiVersions 0..4
        0, 19, 0, 2,  0, 7,  0, // CreateTopics 2..7
        0, 20, 0, 1,  0, 6,  0, // DeleteTopics 1..6
        0, 21, 0, 0,  0, 2,  0, // DeleteRecords 0..2
        0, 22, 0, 0,  0, 5,  0, // InitProducerId 0..5
        0, 23, 0, 2,  0, 4,  0, // OffsetForLeaderEpoch 2..4
        0, 32, 0, 1,  0, 4,  0, // DescribeConfigs 1..4
        0, 33, 0, 0,  0, 2,  0, // AlterConfigs 0..2
        0, 37, 0, 0,  0, 3,  0, // CreatePartitions 0..3
        0, 42, 0, 0,  0, 2,  0, // DeleteGroups 0..2
        0, 43, 0, 0,  0, 2,  0, // ElectLeaders 0..2
        0, 44, 0, 0,  0, 1,  0, // IncrementalAlterConfigs 0..1
        0, 47, 0, 0,  0, 0,  0, // OffsetDelete 0..0
        0, 60, 0, 0,  0, 1,  0, // DescribeCluster 0..1
        0, 0, 0, 0,             // throttle time ms
        0,                      // tagged fields: none (no features, epoch -1, no ZK migration)
    ];
    assert_eq!(&bytes[..], expected);
}

#[test]
fn api_versions_v0_bytes_are_exact() {
    let bytes = unsupported_version_answer(1).unwrap();
    let mut expected = vec![0, 0, 0, 4 + 2 + 4 + 27 * 6, 0, 0, 0, 1, 0, 35, 0, 0, 0, 27];
    for api in SUPPORTED_APIS {
        for value in [api.key as i16, api::advertised_min_version(api), api.max_version] {
            expected.extend_from_slice(&value.to_be_bytes());
        }
    }
    assert_eq!(&bytes[..], &expected[..], "v0 has no throttle time and no tags");
}
