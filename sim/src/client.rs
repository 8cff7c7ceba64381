//! A small Kafka client for simulated nodes: the real wire protocol (kafka-protocol crate) over
//! `tern::io::Stream`, with a timeout on every call. A connection that timed out or failed is
//! dropped, never reused: a late response would otherwise answer the next request.
//!
//! Every frame sent or received goes into the trace (the "delivered messages" of the hash).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tern::io::{self, Stream};
pub use tern::record_batch::build::ProducerStamp;
use tern::record_batch::build::{encode_batch, Record};
use tern::record_batch::check_framing_and_crc;

use crate::history::{Offset, Partition, Value};
use crate::trace;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 11;
const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const FIND_COORDINATOR_VERSION: i16 = 3;
const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 7;
const LIST_OFFSETS_VERSION: i16 = 7;
/// Largest response a client accepts; a bigger length prefix means a broken stream.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// The isControlBatch bit of a record batch's attributes.
const CONTROL_ATTRIBUTE: i16 = 1 << 5;
/// Bytes of a record value that carry the unique value; the rest is padding.
const VALUE_ID_BYTES: usize = 8;

#[derive(Debug)]
pub enum ClientError {
    /// No answer within the client's timeout: the outcome is unknown.
    Timeout,
    /// The connection failed or closed: the outcome is unknown.
    Connection(std::io::Error),
    /// The response did not decode: a protocol bug.
    Protocol(String),
}

/// One connection to a broker.
pub struct Connection {
    stream: Stream,
    correlation_id_next: i32,
    /// Short name of the owner, for the trace.
    owner: String,
}

impl Connection {
    pub async fn connect(
        address: SocketAddr,
        owner: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        match io::timeout(timeout, Stream::connect(address)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(error)) => Err(ClientError::Connection(error)),
            Ok(Ok(stream)) => {
                trace::record("connect", owner.as_bytes());
                Ok(Connection { stream, correlation_id_next: 1, owner: owner.to_string() })
            }
        }
    }

    /// Sends `request` and waits at most `timeout` for its response.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        match io::timeout(timeout, self.exchange(correlation_id, version, request)).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => result,
        }
    }

    /// Sends `requests` back to back on this connection, then reads their responses in
    /// order (Kafka answers a connection's requests in order): pipelining, as the Java
    /// consumer's `commitAsync` does. Waits at most `timeout` for all of them.
    pub async fn call_pipelined<R: Request>(
        &mut self,
        version: i16,
        requests: &[R],
        timeout: Duration,
    ) -> Result<Vec<R::Response>, ClientError> {
        let first = self.correlation_id_next;
        self.correlation_id_next = first.wrapping_add(requests.len() as i32);
        let exchange = async {
            for (index, request) in requests.iter().enumerate() {
                self.send(first.wrapping_add(index as i32), version, request).await?;
            }
            let mut responses = Vec::with_capacity(requests.len());
            for index in 0..requests.len() {
                let correlation_id = first.wrapping_add(index as i32);
                responses.push(self.receive::<R>(correlation_id, version).await?);
            }
            Ok(responses)
        };
        match io::timeout(timeout, exchange).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(result) => result,
        }
    }

    async fn exchange<R: Request>(
        &self,
        correlation_id: i32,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        self.send(correlation_id, version, request).await?;
        self.receive::<R>(correlation_id, version).await
    }

    async fn send<R: Request>(
        &self,
        correlation_id: i32,
        version: i16,
        request: &R,
    ) -> Result<(), ClientError> {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.owner.clone())));
        let mut body = BytesMut::new();
        let encoded = header.encode(&mut body, R::header_version(version));
        encoded
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let frame = frame.freeze();
        let (result, frame) = self.stream.write_all(frame).await;
        result.map_err(ClientError::Connection)?;
        trace::record(&self.owner, &frame);
        Ok(())
    }

    async fn receive<R: Request>(
        &self,
        correlation_id: i32,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let size = self.read_exact(4).await?.get_i32();
        let size = usize::try_from(size).ok().filter(|size| *size <= RESPONSE_BYTES_MAX);
        let size = size.ok_or_else(|| ClientError::Protocol("bad response length".into()))?;
        let mut response = self.read_exact(size).await?;
        trace::record(&self.owner, &response);
        if response.remaining() < 4 || response.get_i32() != correlation_id {
            return Err(ClientError::Protocol("correlation id mismatch".into()));
        }
        if R::Response::header_version(version) >= 1 {
            // Tagged fields of the response header: none are sent by Tern.
            if response.remaining() < 1 {
                return Err(ClientError::Protocol("short response header".into()));
            }
            response.get_u8();
        }
        R::Response::decode(&mut response, version)
            .map_err(|error| ClientError::Protocol(error.to_string()))
    }

    async fn read_exact(&self, size: usize) -> Result<Bytes, ClientError> {
        let mut buffer = BytesMut::with_capacity(size);
        while buffer.len() < size {
            let (result, returned) = self.stream.read(buffer).await;
            buffer = returned;
            match result {
                Ok(0) => {
                    return Err(ClientError::Connection(std::io::ErrorKind::UnexpectedEof.into()))
                }
                Ok(_) => {}
                Err(error) => return Err(ClientError::Connection(error)),
            }
        }
        Ok(buffer.split_to(size).freeze())
    }
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// CreateTopics for one topic with `replication_factor` replicas (-1: the broker's
/// default); `Ok(error_code)` (0 or TOPIC_ALREADY_EXISTS mean it exists).
pub async fn create_topic(
    connection: &mut Connection,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    timeout: Duration,
) -> Result<i16, ClientError> {
    let request = CreateTopicsRequest::default().with_timeout_ms(1000).with_topics(vec![
        CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor),
    ]);
    let response = connection.call(CREATE_TOPICS_VERSION, &request, timeout).await?;
    Ok(response.topics.first().map_or(-1, |topic| topic.error_code))
}

/// Metadata for one topic: (error code, partition count).
pub async fn topic_metadata(
    connection: &mut Connection,
    topic: &str,
    timeout: Duration,
) -> Result<(i16, usize), ClientError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let response = connection.call(METADATA_VERSION, &request, timeout).await?;
    let topic = response
        .topics
        .first()
        .ok_or_else(|| ClientError::Protocol("no topic in metadata".into()))?;
    Ok((topic.error_code, topic.partitions.len()))
}

/// One partition of a Metadata answer: its error code, and the leader and leader epoch the
/// answering broker knows (-1 when none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: Partition,
    pub error_code: i16,
    pub leader: i32,
    pub epoch: i32,
}

/// What a cluster's client needs of a Metadata answer for one topic.
#[derive(Clone, Debug, Default)]
pub struct TopicRoutes {
    /// The controller's leader as the answering broker knows it (-1: none).
    pub controller: i32,
    pub topic_error_code: i16,
    pub partitions: Vec<PartitionLeader>,
}

/// Metadata for one topic, with every partition's leader and epoch.
pub async fn topic_routes(
    connection: &mut Connection,
    topic: &str,
    timeout: Duration,
) -> Result<TopicRoutes, ClientError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let response = connection.call(METADATA_VERSION, &request, timeout).await?;
    let topic = response
        .topics
        .first()
        .ok_or_else(|| ClientError::Protocol("no topic in metadata".into()))?;
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| PartitionLeader {
            partition: partition.partition_index,
            error_code: partition.error_code,
            leader: partition.leader_id.0,
            epoch: partition.leader_epoch,
        })
        .collect();
    Ok(TopicRoutes {
        controller: response.controller_id.0,
        topic_error_code: topic.error_code,
        partitions,
    })
}

/// ListOffsets of the latest offset (the high watermark) of `partitions` of `topic`:
/// `Ok([(partition, error code, offset)])`.
pub async fn latest_offsets(
    connection: &mut Connection,
    topic: &str,
    partitions: &[Partition],
    timeout: Duration,
) -> Result<Vec<(Partition, i16, Offset)>, ClientError> {
    let asked = partitions
        .iter()
        .map(|partition| {
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(asked)]);
    let response = connection.call(LIST_OFFSETS_VERSION, &request, timeout).await?;
    let answers = response
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| (partition.partition_index, partition.error_code, partition.offset))
        .collect();
    Ok(answers)
}

/// Encodes `values` as one batch (stamped with `producer` for an idempotent producer); each
/// record's value is the 8-byte id then padding.
pub fn encode_values(
    values: &[Value],
    record_bytes: usize,
    timestamp_ms: i64,
    producer: ProducerStamp,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .map(|value| {
            let mut bytes = value.to_be_bytes().to_vec();
            bytes.resize(record_bytes.max(VALUE_ID_BYTES), b'.');
            Record { value: Some(bytes), ..Record::default() }
        })
        .collect();
    Bytes::from(encode_batch(&records, timestamp_ms, producer))
}

/// Produce with acks=-1 of one batch to one partition: `Ok((error_code, base_offset))`.
pub async fn produce(
    connection: &mut Connection,
    topic: &str,
    partition: Partition,
    batch: Bytes,
    timeout: Duration,
) -> Result<(i16, Offset), ClientError> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout.as_millis() as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let response = connection.call(PRODUCE_VERSION, &request, timeout).await?;
    let partition_response = response
        .responses
        .first()
        .and_then(|topic| topic.partition_responses.first())
        .ok_or_else(|| ClientError::Protocol("empty produce response".into()))?;
    Ok((partition_response.error_code, partition_response.base_offset))
}

/// InitProducerId without a transactional id: `Ok((error_code, producer_id, epoch))`.
pub async fn init_producer_id(
    connection: &mut Connection,
    timeout: Duration,
) -> Result<(i16, i64, i16), ClientError> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response = connection.call(INIT_PRODUCER_ID_VERSION, &request, timeout).await?;
    Ok((response.error_code, response.producer_id.0, response.producer_epoch))
}

/// FindCoordinator of a group: `Ok((error_code, host, port))`.
pub async fn find_coordinator(
    connection: &mut Connection,
    group: &str,
    timeout: Duration,
) -> Result<(i16, String, i32), ClientError> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = connection.call(FIND_COORDINATOR_VERSION, &request, timeout).await?;
    Ok((response.error_code, response.host.to_string(), response.port))
}

/// OffsetCommits from outside the group protocol (generation -1, no member id), each of
/// (partition, offset) pairs of `topic`, pipelined on one connection: `Ok` with each
/// commit's per-partition error codes.
pub async fn offset_commits(
    connection: &mut Connection,
    group: &str,
    topic: &str,
    commits: &[Vec<(Partition, Offset)>],
    timeout: Duration,
) -> Result<Vec<Vec<(Partition, i16)>>, ClientError> {
    let requests: Vec<OffsetCommitRequest> =
        commits.iter().map(|offsets| offset_commit_request(group, topic, offsets)).collect();
    let responses = connection.call_pipelined(OFFSET_COMMIT_VERSION, &requests, timeout).await?;
    let answers = responses
        .iter()
        .map(|response| {
            response
                .topics
                .iter()
                .flat_map(|topic| topic.partitions.iter())
                .map(|partition| (partition.partition_index, partition.error_code))
                .collect()
        })
        .collect();
    Ok(answers)
}

fn offset_commit_request(
    group: &str,
    topic: &str,
    offsets: &[(Partition, Offset)],
) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|(partition, offset)| {
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str("")))
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)])
}

/// OffsetFetch of `partitions` of `topic`: `Ok((group error code, [(partition, committed
/// offset or -1, error code)]))`.
pub async fn offset_fetch(
    connection: &mut Connection,
    group: &str,
    topic: &str,
    partitions: &[Partition],
    timeout: Duration,
) -> Result<(i16, Vec<(Partition, Offset, i16)>), ClientError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let response = connection.call(OFFSET_FETCH_VERSION, &request, timeout).await?;
    let answers = response
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| {
            (partition.partition_index, partition.committed_offset, partition.error_code)
        })
        .collect();
    Ok((response.error_code, answers))
}

/// One partition's answer to a fetch.
#[derive(Debug, Default)]
pub struct Fetched {
    pub partition: Partition,
    pub error_code: i16,
    pub high_watermark: Offset,
    pub records: Vec<(Offset, Value)>,
    /// Batches that failed CRC32C at the client: the broker served corrupt bytes.
    pub corrupt_batches: usize,
    /// The offset after the last whole, intact batch returned (control batches included):
    /// where the consumer reads next, as a Kafka consumer does.
    pub next_offset: Option<Offset>,
}

/// Fetch of `positions` (partition, offset) of `topic`.
pub async fn fetch(
    connection: &mut Connection,
    topic: &str,
    positions: &[(Partition, Offset)],
    max_wait_ms: i32,
    timeout: Duration,
) -> Result<Vec<Fetched>, ClientError> {
    let partitions = positions
        .iter()
        .map(|(partition, offset)| {
            FetchPartition::default()
                .with_partition(*partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(256 << 10)
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)]);
    let response = connection.call(FETCH_VERSION, &request, timeout).await?;
    let mut answers = Vec::with_capacity(positions.len());
    for topic_response in &response.responses {
        for partition in &topic_response.partitions {
            let mut fetched = Fetched {
                partition: partition.partition_index,
                error_code: partition.error_code,
                high_watermark: partition.high_watermark,
                ..Fetched::default()
            };
            if let Some(records) = &partition.records {
                decode_batches(records, &mut fetched);
            }
            answers.push(fetched);
        }
    }
    Ok(answers)
}

/// Decodes the records of uncompressed v2 batches; a trailing partial batch (Kafka may cut
/// the response there) is ignored, a batch failing CRC32C is counted and skipped.
fn decode_batches(mut bytes: &[u8], fetched: &mut Fetched) {
    const HEADER_BYTES: usize = 61;
    while bytes.len() >= HEADER_BYTES {
        let batch_length = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let Some(size) = usize::try_from(batch_length).ok().map(|length| length + 12) else {
            return;
        };
        if size < HEADER_BYTES || size > bytes.len() {
            return;
        }
        let (batch, rest) = bytes.split_at(size);
        bytes = rest;
        if check_framing_and_crc(batch).is_err() {
            fetched.corrupt_batches += 1;
            continue;
        }
        let base_offset = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
        let last_offset_delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
        // Control batches (a new leader's LeaderChange) carry no values: clients skip them.
        let attributes = i16::from_be_bytes(batch[21..23].try_into().expect("2 bytes"));
        if attributes & CONTROL_ATTRIBUTE != 0 {
            fetched.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
            continue;
        }
        let count = i32::from_be_bytes(batch[57..61].try_into().expect("4 bytes"));
        let mut cursor = &batch[HEADER_BYTES..];
        let mut whole = true;
        for _ in 0..count.max(0) {
            let Some((offset_delta, value)) = decode_record(&mut cursor) else {
                fetched.corrupt_batches += 1;
                whole = false;
                break;
            };
            fetched.records.push((base_offset + offset_delta, value));
        }
        if whole {
            fetched.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
        }
    }
}

fn read_varint(cursor: &mut &[u8]) -> Option<i64> {
    let mut result: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = cursor.split_first()?;
        *cursor = rest;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
        }
    }
    None
}

fn take<'a>(cursor: &mut &'a [u8], length: i64) -> Option<&'a [u8]> {
    let length = usize::try_from(length).ok()?;
    if cursor.len() < length {
        return None;
    }
    let (taken, rest) = cursor.split_at(length);
    *cursor = rest;
    Some(taken)
}

/// One record: (offset delta, value id).
fn decode_record(cursor: &mut &[u8]) -> Option<(i64, Value)> {
    let length = read_varint(cursor)?;
    let mut record = take(cursor, length)?;
    take(&mut record, 1)?; // attributes
    read_varint(&mut record)?; // timestamp delta
    let offset_delta = read_varint(&mut record)?;
    let key_length = read_varint(&mut record)?;
    if key_length > 0 {
        take(&mut record, key_length)?;
    }
    let value_length = read_varint(&mut record)?;
    let value = take(&mut record, value_length)?;
    let id: [u8; VALUE_ID_BYTES] = value.get(..VALUE_ID_BYTES)?.try_into().ok()?;
    Some((offset_delta, u64::from_be_bytes(id)))
}
