//! Request decoding: a frame body (size prefix removed) becomes a [`DecodedRequest`].
//!
//! Order matters. The first 8 bytes (api key, api version, correlation id) are read by hand
//! before anything else, so that every refusal — unknown API, unsupported version, malformed
//! body — still carries the correlation id the broker needs to answer (ApiVersions with an
//! unsupported version must get an UNSUPPORTED_VERSION answer, not a closed socket). Then the
//! header, then the bounds walk (see `bounds.rs`: it protects the codec from allocating by
//! untrusted counts), then the `kafka-protocol` decoder.
//!
//! The frame is a `Bytes`; the codec slices byte fields out of it, so a Produce request's
//! record batches are views into the frame, never copies.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, ElectLeadersRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader,
    SyncGroupRequest,
};
use kafka_protocol::protocol::Decodable;

use super::api;

pub mod bounds;

/// Bytes every request starts with: api key (2), api version (2), correlation id (4).
pub const FIXED_HEADER_BYTES: usize = 8;

/// The request header fields the broker needs to route and answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// A decoded request: its header and its typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    pub header: RequestMeta,
    pub body: Request,
}

/// The body of every request Tern implements (see [`api::SUPPORTED_APIS`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    InitProducerId(InitProducerIdRequest),
    DescribeConfigs(DescribeConfigsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeCluster(DescribeClusterRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    DeleteRecords(DeleteRecordsRequest),
    ElectLeaders(ElectLeadersRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
}

/// Why a frame is not a request Tern can serve. Every variant but `TooShort` carries the
/// correlation id, so the broker can answer (or log) it precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// An API key Tern does not implement (or that does not exist). Kafka closes the
    /// connection; so should the broker.
    #[error("unknown or unimplemented api key {api_key} (correlation id {correlation_id})")]
    UnknownApi { api_key: i16, correlation_id: i32 },
    /// A known API at a version outside Tern's range. For ApiVersions the broker answers
    /// UNSUPPORTED_VERSION in a v0 body with our ranges; for others it closes the connection
    /// (clients negotiate versions first, so this is a client bug).
    #[error("{api_key:?} v{api_version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion { api_key: ApiKey, api_version: i16, correlation_id: i32 },
    /// The header or body does not parse. Kafka answers nothing and closes the connection.
    #[error("malformed {api_key:?} v{api_version} request: {reason}")]
    Malformed { api_key: ApiKey, api_version: i16, correlation_id: Option<i32>, reason: String },
    /// Fewer than the 8 bytes every request header starts with: nothing to answer to.
    #[error("request frame is shorter than the {FIXED_HEADER_BYTES}-byte fixed header")]
    TooShort,
}

/// Decodes one request frame body (without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    let (api_key_raw, api_version, correlation_id) = fixed_header(&frame)?;
    let api_key = ApiKey::try_from(api_key_raw)
        .ok()
        .filter(|key| api::supported_range(*key as i16).is_some())
        .ok_or(RequestError::UnknownApi { api_key: api_key_raw, correlation_id })?;
    if !api::is_supported(api_key, api_version) {
        return Err(RequestError::UnsupportedVersion { api_key, api_version, correlation_id });
    }
    let malformed = |reason: String| RequestError::Malformed {
        api_key,
        api_version,
        correlation_id: Some(correlation_id),
        reason,
    };
    let mut buffer = frame;
    let header_version = api_key.request_header_version(api_version);
    // The header holds no arrays (client id is a string sliced from the frame), so the codec
    // may decode it directly.
    let header = RequestHeader::decode(&mut buffer, header_version)
        .map_err(|error| malformed(format!("header: {error:#}")))?;
    debug_assert_eq!(header.correlation_id, correlation_id);
    let walked_bytes = bounds::check(api_key, api_version, &buffer)
        .map_err(|error| malformed(error.to_string()))?;
    let body_bytes = buffer.remaining();
    let body = decode_body(api_key, api_version, &mut buffer).map_err(malformed)?;
    // The walk and the codec read the same layout; if they ever disagree the walk is wrong
    // (a bug, which tests and fuzzing must catch), and the request is refused either way.
    let decoded_bytes = body_bytes - buffer.remaining();
    debug_assert_eq!(decoded_bytes, walked_bytes, "bounds walk disagrees with the codec");
    if decoded_bytes != walked_bytes {
        return Err(malformed("the bounds walk disagrees with the codec".to_string()));
    }
    // Bytes after the body are ignored, as Apache Kafka does: librdkafka 2.16 sends Metadata
    // v12 requests with three extra bytes, and Kafka serves them.
    let client_id = header.client_id.map(|client_id| client_id.as_str().to_owned());
    let header = RequestMeta { api_key, api_version, correlation_id, client_id };
    Ok(DecodedRequest { header, body })
}

/// api key, api version and correlation id: present at the same place in every header version.
fn fixed_header(frame: &[u8]) -> Result<(i16, i16, i32), RequestError> {
    let Some(fixed) = frame.get(..FIXED_HEADER_BYTES) else {
        return Err(RequestError::TooShort);
    };
    let api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    Ok((api_key, api_version, correlation_id))
}

fn decode_body(api_key: ApiKey, version: i16, buffer: &mut Bytes) -> Result<Request, String> {
    fn body<T: Decodable>(buffer: &mut Bytes, version: i16) -> Result<T, String> {
        T::decode(buffer, version).map_err(|error| format!("{error:#}"))
    }
    Ok(match api_key {
        ApiKey::ApiVersions => Request::ApiVersions(body(buffer, version)?),
        ApiKey::Metadata => Request::Metadata(body(buffer, version)?),
        ApiKey::Produce => Request::Produce(body(buffer, version)?),
        ApiKey::Fetch => Request::Fetch(body(buffer, version)?),
        ApiKey::ListOffsets => Request::ListOffsets(body(buffer, version)?),
        ApiKey::CreateTopics => Request::CreateTopics(body(buffer, version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(body(buffer, version)?),
        ApiKey::InitProducerId => Request::InitProducerId(body(buffer, version)?),
        ApiKey::DescribeConfigs => Request::DescribeConfigs(body(buffer, version)?),
        ApiKey::CreatePartitions => Request::CreatePartitions(body(buffer, version)?),
        ApiKey::DescribeCluster => Request::DescribeCluster(body(buffer, version)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(body(buffer, version)?),
        ApiKey::JoinGroup => Request::JoinGroup(body(buffer, version)?),
        ApiKey::SyncGroup => Request::SyncGroup(body(buffer, version)?),
        ApiKey::Heartbeat => Request::Heartbeat(body(buffer, version)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(body(buffer, version)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(body(buffer, version)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(body(buffer, version)?),
        ApiKey::ListGroups => Request::ListGroups(body(buffer, version)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(body(buffer, version)?),
        ApiKey::DeleteGroups => Request::DeleteGroups(body(buffer, version)?),
        ApiKey::OffsetDelete => Request::OffsetDelete(body(buffer, version)?),
        ApiKey::DeleteRecords => Request::DeleteRecords(body(buffer, version)?),
        ApiKey::ElectLeaders => Request::ElectLeaders(body(buffer, version)?),
        ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(body(buffer, version)?),
        ApiKey::AlterConfigs => Request::AlterConfigs(body(buffer, version)?),
        ApiKey::IncrementalAlterConfigs => Request::IncrementalAlterConfigs(body(buffer, version)?),
        other => return Err(format!("{other:?} is in the supported table but has no decoder")),
    })
}

#[cfg(test)]
mod tests;
