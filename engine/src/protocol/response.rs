//! Response encoding: a typed response becomes the exact bytes to write to the socket.
//!
//! Output layout: 4-byte big-endian size, response header, body at the request's version.
//! The header version comes from the API's flexible-version rule (`kafka-protocol`'s
//! `response_header_version`): v1 (with a tagged-field section) for flexible versions, v0
//! otherwise, and always v0 for ApiVersions, whose clients must be able to read the header
//! before they know which versions the broker speaks.
//!
//! Fetch responses carry record batches as `Bytes`; `fetch_framing` encodes around them, so
//! the connection sends them from the buffer the log read them into.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AlterConfigsResponse, ApiKey, ApiVersionsResponse, CreatePartitionsResponse,
    CreateTopicsResponse, DeleteGroupsResponse, DeleteRecordsResponse, DeleteTopicsResponse,
    DescribeClusterResponse, DescribeConfigsResponse, DescribeGroupsResponse, ElectLeadersResponse,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, IncrementalAlterConfigsResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ListOffsetsResponse, MetadataResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, OffsetForLeaderEpochResponse, ProduceResponse, ResponseHeader,
    SyncGroupResponse,
};
use kafka_protocol::protocol::Encodable;

use super::api;
use super::frame::SIZE_PREFIX_BYTES;
use super::request::RequestMeta;

/// The body of every response Tern sends; one variant per [`super::request::Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    ApiVersions(ApiVersionsResponse),
    Metadata(MetadataResponse),
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    CreateTopics(CreateTopicsResponse),
    DeleteTopics(DeleteTopicsResponse),
    InitProducerId(InitProducerIdResponse),
    DescribeConfigs(DescribeConfigsResponse),
    CreatePartitions(CreatePartitionsResponse),
    DescribeCluster(DescribeClusterResponse),
    FindCoordinator(FindCoordinatorResponse),
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    ListGroups(ListGroupsResponse),
    DescribeGroups(DescribeGroupsResponse),
    DeleteGroups(DeleteGroupsResponse),
    OffsetDelete(OffsetDeleteResponse),
    DeleteRecords(DeleteRecordsResponse),
    ElectLeaders(ElectLeadersResponse),
    OffsetForLeaderEpoch(OffsetForLeaderEpochResponse),
    AlterConfigs(AlterConfigsResponse),
    IncrementalAlterConfigs(IncrementalAlterConfigsResponse),
}

impl Response {
    /// The API this response answers.
    pub fn api_key(&self) -> ApiKey {
        match self {
            Response::ApiVersions(_) => ApiKey::ApiVersions,
            Response::Metadata(_) => ApiKey::Metadata,
            Response::Produce(_) => ApiKey::Produce,
            Response::Fetch(_) => ApiKey::Fetch,
            Response::ListOffsets(_) => ApiKey::ListOffsets,
            Response::CreateTopics(_) => ApiKey::CreateTopics,
            Response::DeleteTopics(_) => ApiKey::DeleteTopics,
            Response::InitProducerId(_) => ApiKey::InitProducerId,
            Response::DescribeConfigs(_) => ApiKey::DescribeConfigs,
            Response::CreatePartitions(_) => ApiKey::CreatePartitions,
            Response::DescribeCluster(_) => ApiKey::DescribeCluster,
            Response::FindCoordinator(_) => ApiKey::FindCoordinator,
            Response::JoinGroup(_) => ApiKey::JoinGroup,
            Response::SyncGroup(_) => ApiKey::SyncGroup,
            Response::Heartbeat(_) => ApiKey::Heartbeat,
            Response::LeaveGroup(_) => ApiKey::LeaveGroup,
            Response::OffsetCommit(_) => ApiKey::OffsetCommit,
            Response::OffsetFetch(_) => ApiKey::OffsetFetch,
            Response::ListGroups(_) => ApiKey::ListGroups,
            Response::DescribeGroups(_) => ApiKey::DescribeGroups,
            Response::DeleteGroups(_) => ApiKey::DeleteGroups,
            Response::OffsetDelete(_) => ApiKey::OffsetDelete,
            Response::DeleteRecords(_) => ApiKey::DeleteRecords,
            Response::ElectLeaders(_) => ApiKey::ElectLeaders,
            Response::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
            Response::AlterConfigs(_) => ApiKey::AlterConfigs,
            Response::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
        }
    }
}

/// Why a response could not be encoded. All are broker bugs (a handler built a response the
/// request's version cannot carry), not client faults.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("a {response:?} response cannot answer a {request:?} request")]
    WrongApi { request: ApiKey, response: ApiKey },
    #[error("{api_key:?} v{api_version} is not a version Tern serves")]
    UnsupportedVersion { api_key: ApiKey, api_version: i16 },
    #[error("{api_key:?} v{api_version} response does not encode: {reason}")]
    Codec { api_key: ApiKey, api_version: i16, reason: String },
    #[error("response of {size_bytes} bytes does not fit the 32-bit size prefix")]
    TooLarge { size_bytes: usize },
}

/// Encodes `body` as the answer to the request described by `meta`, size prefix included.
pub fn encode_response(meta: &RequestMeta, body: &Response) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::new();
    encode_response_into(meta, body, &mut out)?;
    Ok(out.freeze())
}

/// Like [`encode_response`], appending to `out` (so a connection can batch several responses
/// in one write buffer). On error, `out` is left as it was.
pub fn encode_response_into(
    meta: &RequestMeta,
    body: &Response,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (api_key, api_version) = (meta.api_key, meta.api_version);
    if body.api_key() != api_key {
        return Err(EncodeError::WrongApi { request: api_key, response: body.api_key() });
    }
    if !api::is_supported(api_key, api_version) {
        return Err(EncodeError::UnsupportedVersion { api_key, api_version });
    }
    let codec = |error: String| EncodeError::Codec { api_key, api_version, reason: error };
    let header_version = api_key.response_header_version(api_version);
    let mut header = ResponseHeader::default();
    header.correlation_id = meta.correlation_id;
    let header_bytes = EncodeAtVersion::compute_size(&header, header_version).map_err(codec)?;
    let body_bytes = with_body(body, api_version, |message| message.compute_size(api_version))?;
    let size_bytes = header_bytes + body_bytes;
    let size = i32::try_from(size_bytes).map_err(|_| EncodeError::TooLarge { size_bytes })?;

    let start = out.len();
    out.reserve(SIZE_PREFIX_BYTES + size_bytes);
    out.put_i32(size);
    let written = EncodeAtVersion::encode(&header, out, header_version)
        .map_err(codec)
        .and_then(|()| with_body(body, api_version, |message| message.encode(out, api_version)));
    if let Err(error) = written {
        out.truncate(start);
        return Err(error);
    }
    // compute_size and encode are generated from the same schema; a mismatch would corrupt
    // the stream for every later response on the connection.
    assert_eq!(out.len() - start, SIZE_PREFIX_BYTES + size_bytes, "encoded size mismatch");
    Ok(())
}

/// Runs `operation` on the message inside `body`, mapping the codec's error.
fn with_body<T>(
    body: &Response,
    api_version: i16,
    operation: impl FnOnce(&dyn EncodeAtVersion) -> Result<T, String>,
) -> Result<T, EncodeError> {
    let message: &dyn EncodeAtVersion = match body {
        Response::ApiVersions(message) => message,
        Response::Metadata(message) => message,
        Response::Produce(message) => message,
        Response::Fetch(message) => message,
        Response::ListOffsets(message) => message,
        Response::CreateTopics(message) => message,
        Response::DeleteTopics(message) => message,
        Response::InitProducerId(message) => message,
        Response::DescribeConfigs(message) => message,
        Response::CreatePartitions(message) => message,
        Response::DescribeCluster(message) => message,
        Response::FindCoordinator(message) => message,
        Response::JoinGroup(message) => message,
        Response::SyncGroup(message) => message,
        Response::Heartbeat(message) => message,
        Response::LeaveGroup(message) => message,
        Response::OffsetCommit(message) => message,
        Response::OffsetFetch(message) => message,
        Response::ListGroups(message) => message,
        Response::DescribeGroups(message) => message,
        Response::DeleteGroups(message) => message,
        Response::OffsetDelete(message) => message,
        Response::DeleteRecords(message) => message,
        Response::ElectLeaders(message) => message,
        Response::OffsetForLeaderEpoch(message) => message,
        Response::AlterConfigs(message) => message,
        Response::IncrementalAlterConfigs(message) => message,
    };
    operation(message).map_err(|reason| EncodeError::Codec {
        api_key: body.api_key(),
        api_version,
        reason,
    })
}

/// Object-safe view of `Encodable` (whose `encode` is generic over the buffer type).
trait EncodeAtVersion {
    fn compute_size(&self, version: i16) -> Result<usize, String>;
    fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), String>;
}

impl<T: Encodable> EncodeAtVersion for T {
    fn compute_size(&self, version: i16) -> Result<usize, String> {
        Encodable::compute_size(self, version).map_err(|error| format!("{error:#}"))
    }
    fn encode(&self, out: &mut BytesMut, version: i16) -> Result<(), String> {
        Encodable::encode(self, out, version).map_err(|error| format!("{error:#}"))
    }
}

pub mod fetch_framing;

#[cfg(test)]
mod tests;
