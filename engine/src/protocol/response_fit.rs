//! Fits a response to the version it will be encoded at.
//!
//! Handlers fill every field they know; older versions lack some of them, and the codec refuses
//! to encode a message whose field is set (non-default) where the version has no such field.
//! This resets exactly those fields to their defaults, per Kafka's message schemas, so
//! handlers need not know the version history of every field.

use kafka_protocol::messages::{
    CreateTopicsResponse, DeleteTopicsResponse, DescribeClusterResponse, DescribeConfigsResponse,
    DescribeGroupsResponse, FetchResponse, FindCoordinatorResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse, MetadataResponse,
    OffsetFetchResponse, ProduceResponse, SyncGroupResponse,
};

use super::response::Response;

/// Resets the fields that `version` of the response does not have.
pub fn fit_to_version(response: &mut Response, version: i16) {
    match response {
        Response::ApiVersions(_) => {}
        Response::Metadata(body) => fit_metadata(body, version),
        Response::Produce(body) => fit_produce(body, version),
        Response::Fetch(body) => fit_fetch(body, version),
        Response::ListOffsets(body) => fit_list_offsets(body, version),
        Response::CreateTopics(body) => fit_create_topics(body, version),
        Response::DeleteTopics(body) => fit_delete_topics(body, version),
        // Versions 0-5 share one layout; the handler sets only fields they all have.
        Response::InitProducerId(_) => {}
        Response::DescribeConfigs(body) => fit_describe_configs(body, version),
        // Versions 0-3 share one layout (v2 made it flexible).
        Response::CreatePartitions(_) => {}
        Response::DescribeCluster(body) => fit_describe_cluster(body, version),
        Response::FindCoordinator(body) => fit_find_coordinator(body, version),
        Response::JoinGroup(body) => fit_join_group(body, version),
        Response::SyncGroup(body) => fit_sync_group(body, version),
        Response::LeaveGroup(body) => fit_leave_group(body, version),
        Response::OffsetFetch(body) => fit_offset_fetch(body, version),
        Response::ListGroups(body) => fit_list_groups(body, version),
        Response::DescribeGroups(body) => fit_describe_groups(body, version),
        // v0 has no top-level error code.
        Response::ElectLeaders(body) if version == 0 => body.error_code = 0,
        Response::ElectLeaders(_) => {}
        // Every version of these has every field (later versions only became flexible).
        Response::Heartbeat(_)
        | Response::OffsetCommit(_)
        | Response::DeleteGroups(_)
        | Response::OffsetDelete(_)
        | Response::DeleteRecords(_)
        | Response::OffsetForLeaderEpoch(_)
        | Response::AlterConfigs(_)
        | Response::IncrementalAlterConfigs(_) => {}
    }
}

/// Handlers fill both shapes: the single coordinator (v0-3) and the batched list (v4+).
fn fit_find_coordinator(body: &mut FindCoordinatorResponse, version: i16) {
    if version >= 4 {
        let coordinators = std::mem::take(&mut body.coordinators);
        *body = FindCoordinatorResponse::default()
            .with_throttle_time_ms(body.throttle_time_ms)
            .with_coordinators(coordinators);
        return;
    }
    body.coordinators.clear();
    if version < 1 {
        body.error_message = None;
    }
}

fn fit_join_group(body: &mut JoinGroupResponse, version: i16) {
    if version < 7 {
        body.protocol_type = None;
        body.protocol_name.get_or_insert_with(Default::default);
    }
    if version < 9 {
        body.skip_assignment = false;
    }
    if version < 5 {
        body.members.iter_mut().for_each(|member| member.group_instance_id = None);
    }
}

fn fit_sync_group(body: &mut SyncGroupResponse, version: i16) {
    if version < 5 {
        body.protocol_type = None;
        body.protocol_name = None;
    }
}

/// Handlers fill both shapes: the single member's error (v0-2) and the per-member list (v3+).
fn fit_leave_group(body: &mut LeaveGroupResponse, version: i16) {
    if version < 3 {
        body.members.clear();
    }
}

/// Handlers fill both shapes: one group at the top level (v1-7) and the groups list (v8+).
fn fit_offset_fetch(body: &mut OffsetFetchResponse, version: i16) {
    if version >= 8 {
        body.topics.clear();
        body.error_code = 0;
        return;
    }
    body.groups.clear();
    if version < 2 {
        body.error_code = 0;
    }
    if version < 5 {
        for topic in &mut body.topics {
            topic.partitions.iter_mut().for_each(|partition| partition.committed_leader_epoch = -1);
        }
    }
}

fn fit_list_groups(body: &mut ListGroupsResponse, version: i16) {
    for group in &mut body.groups {
        if version < 4 {
            group.group_state = Default::default();
        }
        if version < 5 {
            group.group_type = Default::default();
        }
    }
}

fn fit_describe_groups(body: &mut DescribeGroupsResponse, version: i16) {
    for group in &mut body.groups {
        if version < 3 {
            group.authorized_operations = i32::MIN;
        }
        if version < 4 {
            group.members.iter_mut().for_each(|member| member.group_instance_id = None);
        }
        if version < 6 {
            group.error_message = None;
        }
    }
}

fn fit_metadata(body: &mut MetadataResponse, version: i16) {
    let defaults = MetadataResponse::default();
    if version < 1 {
        body.controller_id = defaults.controller_id;
        body.brokers.iter_mut().for_each(|broker| broker.rack = None);
    }
    if version < 2 {
        body.cluster_id = None;
    }
    if !(8..=10).contains(&version) {
        body.cluster_authorized_operations = defaults.cluster_authorized_operations;
    }
    if version < 13 {
        body.error_code = 0;
    }
    for topic in &mut body.topics {
        if version < 1 {
            topic.is_internal = false;
        }
        if version < 8 {
            topic.topic_authorized_operations = i32::MIN;
        }
        if version < 10 {
            topic.topic_id = uuid::Uuid::nil();
        }
        for partition in &mut topic.partitions {
            if version < 5 {
                partition.offline_replicas.clear();
            }
            if version < 7 {
                partition.leader_epoch = -1;
            }
        }
    }
}

fn fit_produce(body: &mut ProduceResponse, version: i16) {
    for topic in &mut body.responses {
        for partition in &mut topic.partition_responses {
            if version < 2 {
                partition.log_append_time_ms = -1;
            }
            if version < 5 {
                partition.log_start_offset = -1;
            }
            if version < 8 {
                partition.record_errors.clear();
                partition.error_message = None;
            }
            if version < 10 {
                partition.current_leader = Default::default();
            }
        }
    }
    if version < 10 {
        body.node_endpoints.clear();
    }
}

fn fit_fetch(body: &mut FetchResponse, version: i16) {
    if version < 7 {
        body.error_code = 0;
        body.session_id = 0;
    }
    if version < 16 {
        body.node_endpoints.clear();
    }
    for topic in &mut body.responses {
        if version >= 13 {
            topic.topic = Default::default();
        } else {
            topic.topic_id = uuid::Uuid::nil();
        }
        for partition in &mut topic.partitions {
            if version < 5 {
                partition.log_start_offset = -1;
            }
            if version < 11 {
                partition.preferred_read_replica = (-1).into();
            }
            if version < 12 {
                partition.diverging_epoch = Default::default();
                partition.current_leader = Default::default();
                partition.snapshot_id = Default::default();
            }
        }
    }
}

fn fit_list_offsets(body: &mut ListOffsetsResponse, version: i16) {
    if version < 4 {
        for topic in &mut body.topics {
            topic.partitions.iter_mut().for_each(|partition| partition.leader_epoch = -1);
        }
    }
}

fn fit_create_topics(body: &mut CreateTopicsResponse, version: i16) {
    for topic in &mut body.topics {
        if version < 5 {
            topic.num_partitions = -1;
            topic.replication_factor = -1;
            topic.configs = None;
            topic.topic_config_error_code = 0;
        }
        if version < 7 {
            topic.topic_id = uuid::Uuid::nil();
        }
    }
}

fn fit_delete_topics(body: &mut DeleteTopicsResponse, version: i16) {
    for topic in &mut body.responses {
        if version < 5 {
            topic.error_message = None;
        }
        if version < 6 {
            topic.topic_id = uuid::Uuid::nil();
        }
    }
}

fn fit_describe_configs(body: &mut DescribeConfigsResponse, version: i16) {
    if version < 3 {
        for result in &mut body.results {
            for config in &mut result.configs {
                config.config_type = 0;
                config.documentation = None;
            }
        }
    }
}

fn fit_describe_cluster(body: &mut DescribeClusterResponse, version: i16) {
    if version < 1 {
        body.endpoint_type = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::api::supported_range;
    use crate::protocol::request::RequestMeta;
    use crate::protocol::response::encode_response;
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult,
    };
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::CreatePartitionsResponse;
    use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn name() -> TopicName {
        TopicName(StrBytes::from_static_str("topic"))
    }

    /// Responses with every field a handler may set, set.
    fn full_responses() -> Vec<Response> {
        [full_data_responses(), full_admin_responses()].concat()
    }

    /// Metadata, Produce and Fetch.
    fn full_data_responses() -> Vec<Response> {
        let id = uuid::Uuid::from_u128(7);
        let text = || Some(StrBytes::from_static_str("text"));
        vec![
            Response::Metadata(
                MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(3))
                        .with_host(StrBytes::from_static_str("h"))
                        .with_port(9)
                        .with_rack(text())])
                    .with_cluster_id(text())
                    .with_controller_id(BrokerId(3))
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(name()))
                        .with_topic_id(id)
                        .with_is_internal(true)
                        .with_partitions(vec![MetadataResponsePartition::default()
                            .with_leader_epoch(4)
                            .with_offline_replicas(vec![BrokerId(1)])])]),
            ),
            Response::Produce(ProduceResponse::default().with_responses(vec![
                TopicProduceResponse::default().with_name(name()).with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_base_offset(5)
                        .with_log_append_time_ms(6)
                        .with_log_start_offset(7)
                        .with_error_message(text()),
                ]),
            ])),
            Response::Fetch(FetchResponse::default().with_responses(
                vec![FetchableTopicResponse::default()
                    .with_topic(name())
                    .with_topic_id(id)
                    .with_partitions(vec![PartitionData::default()
                        .with_log_start_offset(3)
                        .with_high_watermark(4)])],
            )),
        ]
    }

    /// The rest: offsets and admin responses.
    fn full_admin_responses() -> Vec<Response> {
        let id = uuid::Uuid::from_u128(7);
        let text = || Some(StrBytes::from_static_str("text"));
        vec![
            Response::ListOffsets(ListOffsetsResponse::default().with_topics(vec![
                ListOffsetsTopicResponse::default().with_name(name()).with_partitions(vec![
                    ListOffsetsPartitionResponse::default().with_offset(3).with_leader_epoch(0),
                ]),
            ])),
            Response::CreateTopics(CreateTopicsResponse::default().with_topics(vec![
                CreatableTopicResult::default()
                    .with_name(name())
                    .with_topic_id(id)
                    .with_error_message(text())
                    .with_num_partitions(3)
                    .with_replication_factor(1),
            ])),
            Response::DeleteTopics(DeleteTopicsResponse::default().with_responses(vec![
                DeletableTopicResult::default()
                    .with_name(Some(name()))
                    .with_topic_id(id)
                    .with_error_message(text()),
            ])),
            Response::DescribeConfigs(DescribeConfigsResponse::default().with_results(vec![
                DescribeConfigsResult::default().with_configs(vec![
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(text())
                        .with_config_source(5),
                ]),
            ])),
            Response::CreatePartitions(CreatePartitionsResponse::default().with_results(vec![
                CreatePartitionsTopicResult::default()
                    .with_name(name())
                    .with_error_code(37)
                    .with_error_message(text()),
            ])),
            Response::DescribeCluster(
                DescribeClusterResponse::default()
                    .with_cluster_id(StrBytes::from_static_str("c"))
                    .with_controller_id(BrokerId(3)),
            ),
        ]
    }

    #[test]
    fn fitted_responses_encode_at_every_supported_version() {
        for response in full_responses() {
            let api_key: ApiKey = response.api_key();
            let (min, max) = supported_range(api_key as i16).expect("supported");
            for version in min..=max {
                let mut fitted = response.clone();
                fit_to_version(&mut fitted, version);
                let meta = RequestMeta {
                    api_key,
                    api_version: version,
                    correlation_id: 1,
                    client_id: None,
                };
                if let Err(error) = encode_response(&meta, &fitted) {
                    panic!("{api_key:?} v{version}: {error}");
                }
            }
        }
    }
}
