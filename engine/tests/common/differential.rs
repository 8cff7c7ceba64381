//! The differential harness shared by the tests that hold Tern to Apache Kafka: one connection
//! to each broker, every request to both, responses normalized and compared field by field,
//! a mismatch recorded with both sides side by side.
//!
//! The normalizers are the documented list of fields allowed to differ (docs/compatibility.md):
//! identities (cluster id, node ids, hosts, ports, topic ids, member and producer ids),
//! throttle times, free-text error messages, and what only a broker with features or replicas
//! reports. Everything else — error codes above all — must be equal.
#![allow(dead_code)]

use std::fmt::Debug;
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::*;
use uuid::Uuid;

use super::kafka::Connection;

/// One connection to each broker; every request goes to both.
pub struct Pair {
    pub tern: Connection,
    pub kafka: Connection,
    pub tern_bootstrap: String,
    pub kafka_bootstrap: String,
    pub mismatches: Vec<String>,
}

impl Pair {
    pub fn connect(tern_bootstrap: &str, kafka_bootstrap: &str) -> Pair {
        Pair {
            tern: Connection::connect(tern_bootstrap),
            kafka: Connection::connect(kafka_bootstrap),
            tern_bootstrap: tern_bootstrap.to_string(),
            kafka_bootstrap: kafka_bootstrap.to_string(),
            mismatches: Vec::new(),
        }
    }

    pub fn both<R: Request + Clone>(
        &mut self,
        version: i16,
        request: &R,
    ) -> (R::Response, R::Response) {
        (self.tern.call(version, request), self.kafka.call(version, request))
    }

    /// Sends to both, normalizes, and records a mismatch (with both sides) if they differ.
    pub fn compare<R, F>(&mut self, case: &str, version: i16, request: &R, normalize: F)
    where
        R: Request + Clone,
        R::Response: Debug,
        F: Fn(&mut R::Response),
    {
        let (mut tern, mut kafka) = self.both(version, request);
        normalize(&mut tern);
        normalize(&mut kafka);
        self.check_equal(&format!("{case} (v{version})"), &tern, &kafka);
    }

    /// Like `compare`, with a request built per broker (e.g. naming that broker's node id).
    pub fn compare_each<R, F>(
        &mut self,
        case: &str,
        version: i16,
        build: impl Fn(i32) -> R,
        normalize: F,
    ) where
        R: Request + Clone,
        R::Response: Debug,
        F: Fn(&mut R::Response),
    {
        let node_of = |connection: &mut Connection| {
            let metadata: MetadataResponse =
                connection.call(9, &metadata_request(Some(&[]), false));
            metadata.brokers[0].node_id.0
        };
        let (tern_node, kafka_node) = (node_of(&mut self.tern), node_of(&mut self.kafka));
        let mut tern = self.tern.call(version, &build(tern_node));
        let mut kafka = self.kafka.call(version, &build(kafka_node));
        normalize(&mut tern);
        normalize(&mut kafka);
        self.check_equal(&format!("{case} (v{version})"), &tern, &kafka);
    }

    /// Sends `request` to both brokers, each on a new connection (so that a close ends only
    /// that one), and compares the outcomes: the normalized answer, or `None` when the broker
    /// closed the connection instead. Returns whether each closed: (Tern, Kafka).
    pub fn compare_on_new_connections<R, F>(
        &mut self,
        case: &str,
        version: i16,
        request: &R,
        normalize: F,
    ) -> (bool, bool)
    where
        R: Request + Clone,
        R::Response: Debug,
        F: Fn(&mut R::Response),
    {
        let outcome = |bootstrap: &str| {
            let mut response = Connection::connect(bootstrap).try_call(version, request);
            response.as_mut().map(&normalize);
            response
        };
        let tern = outcome(&self.tern_bootstrap.clone());
        let kafka = outcome(&self.kafka_bootstrap.clone());
        let closed = (tern.is_none(), kafka.is_none());
        self.check_equal(&format!("{case} (v{version}, None: closed)"), &tern, &kafka);
        closed
    }

    /// Fails the test with every recorded mismatch, both sides side by side.
    pub fn assert_agreed(&self) {
        assert!(
            self.mismatches.is_empty(),
            "{} mismatches against Apache Kafka:\n\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }

    pub fn check_equal<T: Debug>(&mut self, case: &str, tern: &T, kafka: &T) {
        let tern = format!("{tern:#?}");
        let kafka = format!("{kafka:#?}");
        if tern != kafka {
            self.mismatches.push(format!("{case}\n{}", side_by_side(&tern, &kafka)));
        }
    }
}

pub fn side_by_side(tern: &str, kafka: &str) -> String {
    let (left, right): (Vec<&str>, Vec<&str>) = (tern.lines().collect(), kafka.lines().collect());
    let mut out = format!("{:<60} | {}\n", "TERN", "KAFKA");
    for index in 0..left.len().max(right.len()) {
        let (l, r) = (left.get(index).unwrap_or(&""), right.get(index).unwrap_or(&""));
        let mark = if l == r { ' ' } else { '*' };
        out.push_str(&format!("{mark}{l:<59} | {r}\n"));
    }
    out
}

pub fn name(value: &str) -> TopicName {
    TopicName(StrBytes::from_string(value.to_string()))
}

pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub const NO_UUID: Uuid = Uuid::nil();
pub const MASKED: i32 = -7;

// ---- normalizers: the documented list of fields allowed to differ ----------------------------

pub fn normalize_metadata(response: &mut MetadataResponse) {
    response.throttle_time_ms = 0;
    response.cluster_id = response.cluster_id.as_ref().map(|_| text("cluster"));
    response.controller_id = BrokerId(MASKED);
    for broker in &mut response.brokers {
        broker.node_id = BrokerId(MASKED);
        broker.host = text("host");
        broker.port = 0;
    }
    // Kafka creates no internal topics until they are used; Tern may have some: not compared.
    // (Metadata v0 has no is_internal field: the name tells there.)
    response.topics.retain(|topic| {
        !topic.is_internal && topic.name.as_ref().is_none_or(|name| !name.0.starts_with("__"))
    });
    response.topics.sort_by(|a, b| a.name.cmp(&b.name));
    for topic in &mut response.topics {
        topic.topic_id = NO_UUID;
        for partition in &mut topic.partitions {
            partition.leader_id = BrokerId(if partition.leader_id.0 >= 0 { MASKED } else { -1 });
            for node in partition.replica_nodes.iter_mut().chain(&mut partition.isr_nodes) {
                *node = BrokerId(MASKED);
            }
        }
    }
}

pub fn normalize_create(response: &mut CreateTopicsResponse) {
    response.throttle_time_ms = 0;
    for topic in &mut response.topics {
        topic.topic_id = NO_UUID;
        topic.error_message = topic.error_message.as_ref().map(|_| text("message"));
        if let Some(configs) = &mut topic.configs {
            configs.sort_by(|a, b| a.name.cmp(&b.name));
            for config in configs.iter_mut() {
                if config.name.as_str() == "min.insync.replicas" {
                    config.config_source = 5; // see normalize_describe_configs
                }
            }
        }
    }
}

/// Kafka answers in hash-set order (duplicates first): compare by name.
pub fn normalize_create_partitions(response: &mut CreatePartitionsResponse) {
    response.throttle_time_ms = 0;
    response.results.sort_by(|a, b| a.name.cmp(&b.name).then(a.error_code.cmp(&b.error_code)));
    for result in &mut response.results {
        result.error_message = result.error_message.as_ref().map(|_| text("message"));
    }
}

pub fn normalize_delete(response: &mut DeleteTopicsResponse) {
    response.throttle_time_ms = 0;
    for topic in &mut response.responses {
        topic.topic_id = NO_UUID;
        topic.error_message = topic.error_message.as_ref().map(|_| text("message"));
    }
}

pub fn normalize_produce(response: &mut ProduceResponse) {
    response.throttle_time_ms = 0;
    response.node_endpoints.clear();
    for topic in &mut response.responses {
        topic.topic_id = NO_UUID;
        // Kafka answers in its internal map's order, Tern in the request's (clients match
        // partitions by index): compared by index.
        topic.partition_responses.sort_by_key(|partition| partition.index);
        for partition in &mut topic.partition_responses {
            // Tern explains a refused batch (CRC, size, count); Kafka's validation sends none.
            partition.error_message = None;
            partition.current_leader.leader_id = BrokerId(MASKED);
            for error in &mut partition.record_errors {
                error.batch_index_error_message = None;
            }
        }
    }
}

pub fn normalize_fetch(response: &mut FetchResponse) {
    response.throttle_time_ms = 0;
    // Tern declines incremental fetch sessions (session id 0: clients then send full fetches
    // each time), which the protocol allows; Kafka opens one.
    response.session_id = 0;
    response.node_endpoints.clear();
    for topic in &mut response.responses {
        topic.topic_id = NO_UUID;
        // Kafka lists refused partitions after the others (clients match by index): by index.
        topic.partitions.sort_by_key(|partition| partition.partition_index);
        for partition in &mut topic.partitions {
            partition.current_leader.leader_id = BrokerId(MASKED);
        }
    }
}

pub fn normalize_list_offsets(response: &mut ListOffsetsResponse) {
    response.throttle_time_ms = 0;
    // Kafka lists refused partitions before the others (clients match by index): by index.
    for topic in &mut response.topics {
        topic.partitions.sort_by_key(|partition| partition.partition_index);
    }
}

pub fn normalize_describe_configs(response: &mut DescribeConfigsResponse) {
    response.throttle_time_ms = 0;
    for result in &mut response.results {
        result.error_message = result.error_message.as_ref().map(|_| text("message"));
        result.configs.sort_by(|a, b| a.name.cmp(&b.name));
        for config in &mut result.configs {
            // Tern sends no documentation text; the peer script sets min.insync.replicas
            // statically, so Kafka reports it as a static broker config.
            config.documentation = None;
            if config.name.as_str() == "min.insync.replicas" {
                config.config_source = 5;
                config.synonyms.retain(|synonym| synonym.source == 5);
            }
        }
    }
}

pub fn normalize_init_producer_id(response: &mut InitProducerIdResponse) {
    response.throttle_time_ms = 0;
    // Each broker hands out its own ids; that one is handed out is compared by the error.
    if response.producer_id.0 >= 0 {
        response.producer_id = ProducerId(i64::from(MASKED));
    }
}

pub fn normalize_offset_commit(response: &mut OffsetCommitResponse) {
    response.throttle_time_ms = 0;
    // Kafka lists the partitions it refused before the coordinator's answers; clients match
    // partitions by index, so the order is not compared.
    for topic in &mut response.topics {
        topic.partitions.sort_by_key(|partition| partition.partition_index);
    }
}

/// Normalizes any response (the corpus replay decodes whatever API a frame names).
pub fn normalize_response(response: &mut ResponseKind) {
    match response {
        ResponseKind::ApiVersions(response) => normalize_api_versions(response),
        ResponseKind::Metadata(response) => normalize_metadata(response),
        ResponseKind::CreateTopics(response) => normalize_create(response),
        ResponseKind::CreatePartitions(response) => normalize_create_partitions(response),
        ResponseKind::DeleteTopics(response) => normalize_delete(response),
        ResponseKind::Produce(response) => normalize_produce(response),
        ResponseKind::Fetch(response) => normalize_fetch(response),
        ResponseKind::ListOffsets(response) => normalize_list_offsets(response),
        ResponseKind::DescribeConfigs(response) => normalize_describe_configs(response),
        ResponseKind::InitProducerId(response) => normalize_init_producer_id(response),
        ResponseKind::OffsetCommit(response) => normalize_offset_commit(response),
        ResponseKind::DescribeCluster(response) => normalize_describe_cluster(response),
        ResponseKind::FindCoordinator(response) => normalize_find_coordinator(response),
        ResponseKind::JoinGroup(response) => normalize_join_group(response),
        ResponseKind::DescribeGroups(response) => normalize_describe_groups(response),
        ResponseKind::OffsetFetch(response) => response.throttle_time_ms = 0,
        ResponseKind::OffsetForLeaderEpoch(response) => response.throttle_time_ms = 0,
        ResponseKind::SyncGroup(response) => response.throttle_time_ms = 0,
        ResponseKind::Heartbeat(response) => response.throttle_time_ms = 0,
        ResponseKind::LeaveGroup(response) => normalize_leave_group(response),
        ResponseKind::ListGroups(response) => {
            response.throttle_time_ms = 0;
            response.groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        }
        ResponseKind::DeleteGroups(response) => {
            response.throttle_time_ms = 0;
            response.results.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        }
        _ => {}
    }
}

/// The ranges are compared by the dedicated ApiVersions case (Tern's may stop below Kafka's);
/// here only the answer's error and shape count.
fn normalize_api_versions(response: &mut ApiVersionsResponse) {
    response.throttle_time_ms = 0;
    response.api_keys.clear();
    response.supported_features.clear();
    response.finalized_features.clear();
    response.finalized_features_epoch = -1;
    response.zk_migration_ready = false;
}

fn normalize_describe_cluster(response: &mut DescribeClusterResponse) {
    response.throttle_time_ms = 0;
    response.cluster_id = text("cluster");
    response.controller_id = BrokerId(MASKED);
    for broker in &mut response.brokers {
        broker.broker_id = BrokerId(MASKED);
        broker.host = text("host");
        broker.port = 0;
    }
}

pub fn normalize_find_coordinator(response: &mut FindCoordinatorResponse) {
    response.throttle_time_ms = 0;
    response.error_message = response.error_message.as_ref().map(|_| text("message"));
    if response.node_id.0 >= 0 {
        (response.node_id, response.host, response.port) = (BrokerId(MASKED), text("host"), 0);
    }
    for coordinator in &mut response.coordinators {
        coordinator.error_message = coordinator.error_message.as_ref().map(|_| text("message"));
        if coordinator.node_id.0 >= 0 {
            coordinator.node_id = BrokerId(MASKED);
            (coordinator.host, coordinator.port) = (text("host"), 0);
        }
    }
}

pub fn normalize_leave_group(response: &mut LeaveGroupResponse) {
    response.throttle_time_ms = 0;
    response.members.iter_mut().for_each(|member| member.member_id = text("member"));
}

/// Member ids are generated by each broker: compared by presence only.
pub fn normalize_join_group(response: &mut JoinGroupResponse) {
    response.throttle_time_ms = 0;
    let mask = |id: &mut StrBytes| {
        if !id.is_empty() {
            *id = text("member");
        }
    };
    mask(&mut response.member_id);
    mask(&mut response.leader);
    response.members.iter_mut().for_each(|member| mask(&mut member.member_id));
}

pub fn normalize_describe_groups(response: &mut DescribeGroupsResponse) {
    response.throttle_time_ms = 0;
    for group in &mut response.groups {
        for member in &mut group.members {
            (member.member_id, member.client_host) = (text("member"), text("host"));
        }
    }
}

pub fn metadata_request(topics: Option<&[&str]>, auto_create: bool) -> MetadataRequest {
    let mut request = MetadataRequest::default();
    request.topics = topics.map(|names| {
        names
            .iter()
            .map(|topic| {
                let mut entry = MetadataRequestTopic::default();
                entry.name = Some(name(topic));
                entry
            })
            .collect()
    });
    request.allow_auto_topic_creation = auto_create;
    request
}

/// Waits until both brokers report a leader for every partition of `topic` and serve it:
/// Kafka's Metadata can name a leader a moment before its replica manager answers for the
/// partition (NOT_LEADER_OR_FOLLOWER meanwhile), so each partition is probed with ListOffsets.
pub fn wait_for_leaders(pair: &mut Pair, topic: &str) {
    wait_for_serving(pair, topic, None);
}

/// Like [`wait_for_leaders`], once both report exactly `count` partitions (after growth).
pub fn wait_for_partitions(pair: &mut Pair, topic: &str, count: usize) {
    wait_for_serving(pair, topic, Some(count));
}

fn wait_for_serving(pair: &mut Pair, topic: &str, count: Option<usize>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let request = metadata_request(Some(&[topic]), false);
    loop {
        let (tern, kafka) = pair.both(9, &request);
        let ready = |response: &MetadataResponse| {
            response.topics.iter().all(|entry| {
                entry.error_code == 0
                    && !entry.partitions.is_empty()
                    && count.is_none_or(|count| entry.partitions.len() == count)
                    && entry.partitions.iter().all(|partition| partition.leader_id.0 >= 0)
            })
        };
        if ready(&tern) && ready(&kafka) && serving(pair, topic, &kafka) {
            return;
        }
        assert!(Instant::now() < deadline, "{topic}: not served: {tern:?} / {kafka:?}");
        sleep(Duration::from_millis(100));
    }
}

/// True when both brokers answer ListOffsets (latest) without error for every partition.
fn serving(pair: &mut Pair, topic: &str, metadata: &MetadataResponse) -> bool {
    let partitions = metadata.topics.iter().flat_map(|entry| &entry.partitions);
    let indexes: Vec<i32> = partitions.map(|partition| partition.partition_index).collect();
    indexes.iter().all(|&partition| {
        let (tern, kafka) = pair.both(5, &list_offsets_partition_request(topic, partition, -1));
        [tern, kafka].iter().all(|response| {
            response.topics.iter().flat_map(|entry| &entry.partitions).all(|p| p.error_code == 0)
        })
    })
}

/// Waits until both brokers name a coordinator for `group` (Kafka creates its offsets topic on
/// the first FindCoordinator and answers COORDINATOR_NOT_AVAILABLE meanwhile).
pub fn wait_for_coordinator(pair: &mut Pair, group: &str) {
    let mut request = FindCoordinatorRequest::default();
    request.key = text(group);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (tern, kafka) = pair.both(3, &request);
        if tern.error_code == 0 && kafka.error_code == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no coordinator: {tern:?} / {kafka:?}");
        sleep(Duration::from_millis(200));
    }
}

// ---- request builders ----------------------------------------------------------------------

pub fn create_request(
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsRequest {
    let mut creatable = CreatableTopic::default();
    creatable.name = name(topic);
    creatable.num_partitions = partitions;
    creatable.replication_factor = 1;
    for (key, value) in configs {
        let mut config = CreatableTopicConfig::default();
        config.name = text(key);
        config.value = Some(text(value));
        creatable.configs.push(config);
    }
    let mut request = CreateTopicsRequest::default();
    request.topics.push(creatable);
    request.timeout_ms = 30_000;
    request
}

pub fn batch(first_timestamp_ms: i64, values: &[&str]) -> Bytes {
    compressed_batch(first_timestamp_ms, values, Compression::None)
}

/// One batch of `values` compressed with `compression`.
pub fn compressed_batch(
    first_timestamp_ms: i64,
    values: &[&str],
    compression: Compression,
) -> Bytes {
    encode_batch(first_timestamp_ms, values, compression, Producer::PLAIN, true)
}

/// Who produces a batch: a plain producer, or an idempotent one from `first_sequence` on.
#[derive(Debug, Clone, Copy)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
}

impl Producer {
    pub const PLAIN: Producer =
        Producer { id: NO_PRODUCER_ID, epoch: NO_PRODUCER_EPOCH, first_sequence: 0 };
}

/// One batch of `values` (keyed `key-<index>` if `keyed`), timestamps from
/// `first_timestamp_ms`, encoded by kafka-protocol (not by Tern's code).
pub fn encode_batch(
    first_timestamp_ms: i64,
    values: &[&str],
    compression: Compression,
    producer: Producer,
    keyed: bool,
) -> Bytes {
    let timestamps_ms: Vec<i64> =
        (0..values.len() as i64).map(|index| first_timestamp_ms + index).collect();
    encode_batch_at(&timestamps_ms, values, compression, producer, keyed)
}

/// Like [`encode_batch`], each record with its own timestamp (`timestamps_ms[i]` for
/// `values[i]`), in any order.
pub fn encode_batch_at(
    timestamps_ms: &[i64],
    values: &[&str],
    compression: Compression,
    producer: Producer,
    keyed: bool,
) -> Bytes {
    assert_eq!(timestamps_ms.len(), values.len(), "one timestamp per value");
    let records: Vec<Record> = values
        .iter()
        .zip(timestamps_ms)
        .enumerate()
        .map(|(index, (value, &timestamp))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // kafka-protocol starts a new batch whenever offset - sequence changes: keep it
            // constant so that all records form ONE batch (Kafka refuses more per partition).
            sequence: producer.first_sequence + index as i32,
            timestamp,
            key: keyed.then(|| Bytes::from(format!("key-{index}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression };
    RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("encode a batch");
    buffer.freeze()
}

pub fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = name(topic);
    topic_data.partition_data.push(data);
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    request.topic_data.push(topic_data);
    request
}

pub fn fetch_request(topic: &str, offset: i64, max_bytes: i32, wait: (i32, i32)) -> FetchRequest {
    fetch_partition_request(topic, 0, offset, max_bytes, wait)
}

pub fn fetch_partition_request(
    topic: &str,
    partition_index: i32,
    offset: i64,
    max_bytes: i32,
    wait: (i32, i32),
) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = partition_index;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = max_bytes;
    partition.log_start_offset = -1;
    partition.current_leader_epoch = -1;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = name(topic);
    fetch_topic.partitions.push(partition);
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = wait.0;
    request.min_bytes = wait.1;
    request.max_bytes = max_bytes;
    request.session_epoch = -1;
    request.topics.push(fetch_topic);
    request
}

pub fn list_offsets_request(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    list_offsets_partition_request(topic, 0, timestamp)
}

pub fn list_offsets_partition_request(
    topic: &str,
    partition_index: i32,
    timestamp: i64,
) -> ListOffsetsRequest {
    let mut partition = ListOffsetsPartition::default();
    partition.partition_index = partition_index;
    partition.timestamp = timestamp;
    partition.current_leader_epoch = -1;
    let mut list_topic = ListOffsetsTopic::default();
    list_topic.name = name(topic);
    list_topic.partitions.push(partition);
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics.push(list_topic);
    request
}

/// Kafka's coordinator answers COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR until the
/// group's offsets partition is loaded, even after FindCoordinator named it.
pub fn wait_for_group_load(pair: &mut Pair, group: &str) {
    wait_for_coordinator(pair, group);
    let request =
        OffsetFetchRequest::default().with_group_id(GroupId(text(group))).with_topics(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = pair.kafka.call(5, &request);
        if response.error_code != 14 && response.error_code != 16 {
            return;
        }
        assert!(Instant::now() < deadline, "{group}: Kafka never loaded the group");
        sleep(Duration::from_millis(200));
    }
}
