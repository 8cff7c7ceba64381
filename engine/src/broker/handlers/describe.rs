//! DescribeConfigs (topics and this broker) and DescribeCluster.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse,
};

use crate::broker::shard::Shard;
use crate::broker::topic_configs::{TopicConfigSpec, KAFKA_TOPIC_CONFIGS};
use crate::protocol::error_code::ErrorCode;

use super::{error_message, str_bytes};

const RESOURCE_TYPE_TOPIC: i8 = 2;
const RESOURCE_TYPE_BROKER: i8 = 4;
/// Config sources as Kafka numbers them.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn describe_configs(
    shard: &Rc<Shard>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            // Null or empty: every config (Kafka's `ConfigHelper`, measured on 4.4.0).
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == key))
            };
            match resource.resource_type {
                RESOURCE_TYPE_TOPIC => {
                    let name = resource.resource_name.as_str();
                    topic_configs(shard, name, wanted, request.include_synonyms, result)
                }
                RESOURCE_TYPE_BROKER => {
                    broker_configs(shard, resource.resource_name.as_str(), wanted, result)
                }
                _ => result
                    .with_error_code(ErrorCode::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("unsupported resource type"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn topic_configs(
    shard: &Shard,
    name: &str,
    wanted: impl Fn(&str) -> bool,
    synonyms: bool,
    result: DescribeConfigsResult,
) -> DescribeConfigsResult {
    let snapshot = shard.topics();
    let Some(topic) = snapshot.get(name) else {
        return result
            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
            .with_error_message(Some(error_message(&format!("Topic '{name}' does not exist."))));
    };
    let configs = KAFKA_TOPIC_CONFIGS
        .iter()
        .filter(|spec| wanted(spec.name))
        .map(|spec| topic_config_entry(spec, topic.configs.get(spec.name), synonyms))
        .collect();
    result.with_configs(configs)
}

fn broker_configs(
    shard: &Shard,
    name: &str,
    wanted: impl Fn(&str) -> bool,
    result: DescribeConfigsResult,
) -> DescribeConfigsResult {
    if name != shard.cluster.node_id.to_string() && !name.is_empty() {
        return result
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_error_message(Some(error_message(&format!("unknown broker {name}"))));
    }
    let config = &shard.config;
    let values = [
        ("auto.create.topics.enable", config.auto_create_topics.to_string()),
        ("broker.id", shard.cluster.node_id.to_string()),
        ("log.cleaner.backoff.ms", config.log_cleaner_interval_ms.to_string()),
        ("log.dirs", config.data_dir.display().to_string()),
        ("log.retention.bytes", config.log.retention_size_bytes.to_string()),
        ("log.retention.check.interval.ms", config.retention_check_interval_ms.to_string()),
        ("log.retention.ms", config.log.retention_age_ms.to_string()),
        ("log.segment.bytes", config.log.segment_size_bytes.to_string()),
        ("message.max.bytes", config.log.max_message_bytes.to_string()),
        ("node.id", shard.cluster.node_id.to_string()),
        ("num.partitions", config.default_partitions.to_string()),
        ("socket.request.max.bytes", config.max_request_bytes.to_string()),
    ];
    let configs = values
        .iter()
        .filter(|(key, _)| wanted(key))
        .map(|(key, value)| config_entry(key, value, SOURCE_STATIC_BROKER_CONFIG))
        .collect();
    result.with_configs(configs)
}

/// One topic config as Kafka 4.4 reports it: an explicit value is `TOPIC_CONFIG`, and its
/// synonyms are itself then the broker config the default would come from; a default is
/// `DEFAULT_CONFIG` with that broker config as its only synonym (measured on 4.4.0).
fn topic_config_entry(
    spec: &TopicConfigSpec,
    explicit: Option<&String>,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let synonym = |name: &str, value: &str, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(str_bytes(name))
            .with_value(Some(str_bytes(value)))
            .with_source(source)
    };
    let broker_default =
        spec.broker_synonym.map(|name| synonym(name, spec.default, SOURCE_DEFAULT_CONFIG));
    let (value, source, synonyms) = match explicit {
        Some(value) => {
            let own = synonym(spec.name, value, SOURCE_TOPIC_CONFIG);
            (
                value.as_str(),
                SOURCE_TOPIC_CONFIG,
                [Some(own), broker_default].into_iter().flatten().collect(),
            )
        }
        None => (spec.default, SOURCE_DEFAULT_CONFIG, broker_default.into_iter().collect()),
    };
    let synonyms = if include_synonyms { synonyms } else { Vec::new() };
    config_entry(spec.name, value, source)
        .with_synonyms(synonyms)
        .with_config_type(spec.config_type as i8)
}

fn config_entry(key: &str, value: &str, source: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(key))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source)
        .with_read_only(source == SOURCE_STATIC_BROKER_CONFIG)
}

/// The brokers Metadata lists (in a cluster: registered and not fenced) and the controller's
/// leader (-1 while none is known; this broker on a single node).
pub async fn describe_cluster(
    shard: &Rc<Shard>,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let view = super::metadata::LeadershipView::gather(shard).await;
    let controller_id = match view.in_cluster {
        true => view.controller.unwrap_or(-1),
        false => shard.cluster.node_id,
    };
    let brokers = super::metadata::listed_brokers(shard, &view.fenced, &Default::default());
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&shard.cluster.cluster_id))
        .with_controller_id(BrokerId(controller_id))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        .with_brokers(
            brokers
                .into_iter()
                .map(|endpoint| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(endpoint.node_id))
                        .with_host(str_bytes(&endpoint.host))
                        .with_port(i32::from(endpoint.port))
                })
                .collect(),
        )
}
