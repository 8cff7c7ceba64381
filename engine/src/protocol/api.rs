//! The APIs Tern implements and the version range of each: the single source of truth for
//! ApiVersions responses and for request validation.
//!
//! Floors are Kafka 4.0's (KIP-896 removed everything older than Kafka 2.1's versions); each
//! range is served without gaps, because clients pinned to an old Kafka release send exactly
//! that release's versions. To add an API (InitProducerId, ...), add a row here, a variant to
//! `Request`/`Response`, its bounds walk in `request/bounds.rs` and its `response_fit.rs` case.
//! The group APIs start at the `kafka-protocol` crate's floor, which follows Kafka 4.x's message
//! JSON (OffsetCommit v2, OffsetFetch v1; the others were not cut by KIP-896).

use kafka_protocol::messages::ApiKey;

/// One row of the table: Tern serves `key` at every version in `min_version..=max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi { key, min_version, max_version }
}

/// Every API Tern answers, in API-key order (the order ApiVersions lists them in).
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 12),
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 9),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DescribeCluster, 0, 1),
];

/// The lowest version ApiVersions *advertises* for an API: the served floor, except Produce,
/// which Kafka 4 advertises from v0 although it serves v3+ only (KAFKA-18659): librdkafka
/// checks "Produce v0 supported" before it compresses with gzip, snappy or lz4, and silently
/// sends uncompressed batches to a broker that advertises Produce from v3. Clients pick the
/// highest common version, so no client sends v0-2 because of this.
pub fn advertised_min_version(api: &SupportedApi) -> i16 {
    if api.key == ApiKey::Produce {
        0
    } else {
        api.min_version
    }
}

/// The version range Tern serves for the raw API key, or `None` if Tern does not implement it.
pub fn supported_range(key: i16) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|api| api.key as i16 == key)
        .map(|api| (api.min_version, api.max_version))
}

/// Whether Tern serves `key` at `version`.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported_range(key as i16).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_within_the_codec() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!((pair[0].key as i16) < (pair[1].key as i16), "{pair:?}");
        }
        for api in SUPPORTED_APIS {
            let codec = api.key.valid_versions();
            assert!(api.min_version <= api.max_version, "{api:?}");
            assert!(codec.min <= api.min_version && api.max_version <= codec.max, "{api:?}");
        }
    }

    #[test]
    fn ranges_match_the_compatibility_target() {
        let check = |key: ApiKey, expected: (i16, i16)| {
            assert_eq!(supported_range(key as i16), Some(expected), "{key:?}");
        };
        check(ApiKey::ApiVersions, (0, 4));
        check(ApiKey::Metadata, (0, 12));
        check(ApiKey::Produce, (3, 12));
        check(ApiKey::Fetch, (4, 17));
        check(ApiKey::ListOffsets, (1, 9));
        check(ApiKey::CreateTopics, (2, 7));
        check(ApiKey::DeleteTopics, (1, 6));
        check(ApiKey::InitProducerId, (0, 5));
        check(ApiKey::DescribeConfigs, (1, 4));
        check(ApiKey::CreatePartitions, (0, 3));
        check(ApiKey::DescribeCluster, (0, 1));
        check(ApiKey::OffsetForLeaderEpoch, (2, 4));
        check(ApiKey::FindCoordinator, (0, 6));
        check(ApiKey::JoinGroup, (0, 9));
        check(ApiKey::SyncGroup, (0, 5));
        check(ApiKey::Heartbeat, (0, 4));
        check(ApiKey::LeaveGroup, (0, 5));
        check(ApiKey::OffsetCommit, (2, 9));
        check(ApiKey::OffsetFetch, (1, 9));
        check(ApiKey::ListGroups, (0, 5));
        check(ApiKey::DescribeGroups, (0, 5));
        check(ApiKey::DeleteGroups, (0, 2));
        check(ApiKey::OffsetDelete, (0, 0));
        check(ApiKey::DeleteRecords, (0, 2));
        check(ApiKey::AlterConfigs, (0, 2));
        check(ApiKey::IncrementalAlterConfigs, (0, 1));
        check(ApiKey::ElectLeaders, (0, 2));
        assert_eq!(supported_range(ApiKey::AddPartitionsToTxn as i16), None);
        assert_eq!(supported_range(-1), None);
        assert!(is_supported(ApiKey::Fetch, 4) && !is_supported(ApiKey::Fetch, 3));
    }
}
