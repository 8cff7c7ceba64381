//! The committed-offset APIs: OffsetCommit (answered once the commit is durable in
//! `__consumer_offsets`), OffsetFetch (one group, or many in v8+) and OffsetDelete. Each is
//! forwarded to the group's coordinator shard (`groups::on_coordinator`).

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use crate::broker::errors::group_error_code;
use crate::broker::groups::coordinator::{CommitRequest, FetchedOffsets, GroupError};
use crate::broker::groups::records::OffsetValue;
use crate::broker::groups::service::CommitError;
use crate::broker::shard::Shard;
use crate::protocol::error_code::ErrorCode;

use super::groups::on_coordinator;
use super::str_bytes;

/// As Kafka's `handleOffsetCommitRequest`: partitions of unknown topics, or unknown partitions
/// of known ones, are answered UNKNOWN_TOPIC_OR_PARTITION and never reach the coordinator.
pub async fn offset_commit(
    shard: &Rc<Shard>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let snapshot = shard.topics();
    let known: Vec<Vec<bool>> = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.as_str();
            let exists = |index: i32| snapshot.has_partition(name, index);
            topic.partitions.iter().map(|partition| exists(partition.partition_index)).collect()
        })
        .collect();
    let commit = CommitRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.clone().map(|id| id.to_string()),
        offsets: request
            .topics
            .iter()
            .zip(&known)
            .flat_map(|(topic, known)| {
                topic.partitions.iter().zip(known).filter(|(_, known)| **known).map(
                    |(partition, _)| {
                        (
                            topic.name.to_string(),
                            partition.partition_index,
                            partition.committed_offset,
                            partition.committed_leader_epoch,
                            partition.committed_metadata.as_ref().map(|text| text.to_string()),
                        )
                    },
                )
            })
            .collect(),
    };
    let outcome = if commit.offsets.is_empty() && known.iter().flatten().any(|known| !known) {
        Ok(Vec::new()) // nothing for the coordinator: only unknown partitions
    } else {
        let outcome = on_coordinator(shard, &group_id, move |target| async move {
            target.groups.commit(&target, commit).await
        })
        .await;
        outcome.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
    };
    commit_response(request, &known, outcome)
}

type CommitOutcome = Result<Vec<((String, i32), Result<OffsetValue, CommitError>)>, GroupError>;

fn commit_response(
    request: OffsetCommitRequest,
    known: &[Vec<bool>],
    outcome: CommitOutcome,
) -> OffsetCommitResponse {
    let mut per_partition = match &outcome {
        Ok(outcomes) => outcomes.iter().map(|(_, result)| commit_code(result)).collect(),
        Err(_) => Vec::new(),
    }
    .into_iter();
    let group_error = outcome.err().map(group_error_code);
    let topics = request
        .topics
        .into_iter()
        .zip(known)
        .map(|(topic, known)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(known)
                .map(|(partition, known)| {
                    let error = if !known {
                        Some(ErrorCode::UnknownTopicOrPartition)
                    } else {
                        group_error.or_else(|| per_partition.next())
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error.unwrap_or(ErrorCode::UnknownServerError).code())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn commit_code(result: &Result<OffsetValue, CommitError>) -> ErrorCode {
    match result {
        Ok(_) => ErrorCode::None,
        Err(CommitError::Group(error)) => group_error_code(*error),
        Err(CommitError::Log(code)) => *code,
    }
}

type Fetched = Result<FetchedOffsets, GroupError>;

async fn fetch_group(
    shard: &Rc<Shard>,
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Fetched {
    let outcome = on_coordinator(shard, &group_id.clone(), move |target| async move {
        target.groups.with(&target, |coordinator, _| coordinator.fetch_offsets(&group_id, topics))
    })
    .await;
    outcome.unwrap_or(Err(GroupError::CoordinatorNotAvailable))
}

/// (offset, leader epoch, metadata) as OffsetFetch reports them; -1 and "" when none.
fn committed(value: Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(value) => (value.offset, value.leader_epoch, value.metadata),
        None => (-1, -1, String::new()),
    }
}

pub async fn offset_fetch(
    shard: &Rc<Shard>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let topics = group.topics.map(|topics| {
                let topic = |topic: OffsetFetchRequestTopics| {
                    (topic.name.to_string(), topic.partition_indexes)
                };
                topics.into_iter().map(topic).collect()
            });
            let fetched = fetch_group(shard, group.group_id.to_string(), topics).await;
            groups.push(fetched_group(group.group_id, fetched));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|topics| {
        topics.into_iter().map(|topic| (topic.name.to_string(), topic.partition_indexes)).collect()
    });
    let asked: Option<Vec<(String, Vec<i32>)>> = topics.clone();
    let fetched = fetch_group(shard, request.group_id.to_string(), topics).await;
    let (error, fetched) = match fetched {
        Ok(fetched) => (ErrorCode::None, fetched),
        // v1 has no top-level error: each asked partition carries it.
        Err(error) => (group_error_code(error), with_nothing_committed(asked)),
    };
    let topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, value)| {
                    let (offset, epoch, metadata) = committed(value);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(&metadata)))
                        .with_error_code(error.code())
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_error_code(error.code()).with_topics(topics)
}

fn with_nothing_committed(asked: Option<Vec<(String, Vec<i32>)>>) -> FetchedOffsets {
    let topic = |(name, partitions): (String, Vec<i32>)| {
        (name, partitions.into_iter().map(|index| (index, None)).collect())
    };
    asked.unwrap_or_default().into_iter().map(topic).collect()
}

fn fetched_group(group_id: GroupId, fetched: Fetched) -> OffsetFetchResponseGroup {
    let group = OffsetFetchResponseGroup::default().with_group_id(group_id);
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(error) => return group.with_error_code(group_error_code(error).code()),
    };
    let topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, value)| {
                    let (offset, epoch, metadata) = committed(value);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(&metadata)))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    group.with_topics(topics)
}

/// OffsetDelete: the offsets go once their tombstones are durable; topics a member of the
/// group is subscribed to are refused (GROUP_SUBSCRIBED_TO_TOPIC).
pub async fn offset_delete(
    shard: &Rc<Shard>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.name.to_string(), partition.partition_index))
        })
        .collect();
    let outcome = on_coordinator(shard, &group_id.clone(), move |target| async move {
        let deleted = target.groups.with(&target, |coordinator, now_ms| {
            coordinator.catch_up(&group_id, now_ms);
            coordinator.delete_offsets(&group_id, partitions)
        });
        let (outcomes, records) = match deleted {
            Ok(Ok(deleted)) => deleted,
            Ok(Err(error)) | Err(error) => return Err(group_error_code(error)),
        };
        target.groups.write(&target, records).await.map_err(|error| {
            tracing::warn!(group = %group_id, %error, "offset tombstones not written");
            crate::broker::errors::write_error_code(&error)
        })?;
        let codes: Vec<ErrorCode> = outcomes
            .into_iter()
            .map(|(_, result)| result.err().map_or(ErrorCode::None, group_error_code))
            .collect();
        Ok(codes)
    })
    .await;
    let codes = match outcome.unwrap_or(Err(ErrorCode::CoordinatorNotAvailable)) {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code.code()),
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = codes.next().unwrap_or(ErrorCode::UnknownServerError);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code.code())
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
