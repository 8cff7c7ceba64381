//! Committed offsets of the coordinator's groups: validation of commits (answered only once
//! their records are durable, so the driver applies them after the append), fetches,
//! deletion and retention.

use std::collections::BTreeMap;

use super::{check_member, Coordinator, Group, GroupError, GroupState};
use crate::broker::groups::records::{GroupKey, GroupRecord, OffsetValue};

/// An OffsetCommit for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 (and an empty member id) for a commit from outside the group protocol.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata).
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

/// Per-partition outcome, in request order.
pub type OffsetsOutcome = Vec<((String, i32), Result<OffsetValue, GroupError>)>;
/// Committed offsets by topic: (partition, offset if any).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;
/// OffsetDelete's per-partition outcomes and the tombstones to write.
pub type DeletedOffsets = (Vec<((String, i32), Result<(), GroupError>)>, Vec<GroupRecord>);

impl Coordinator {
    /// Checks a commit against the group's generation and membership. The values to write are
    /// returned per partition; the driver appends them and then calls [`Self::apply_commit`].
    pub fn prepare_commit(
        &mut self,
        request: CommitRequest,
        now_ms: i64,
    ) -> Result<OffsetsOutcome, GroupError> {
        if request.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let known = match self.groups.get_mut(&request.group_id) {
            None if request.generation_id < 0 => 0,
            None => return Err(GroupError::IllegalGeneration),
            Some(group) => {
                validate_commit(group, &request, now_ms)?;
                group.offsets.len()
            }
        };
        if !self.groups.contains_key(&request.group_id)
            && self.groups.len() >= self.config.groups_max
        {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if known + request.offsets.len() > self.config.offsets_per_group_max {
            return Err(GroupError::TooManyOffsets);
        }
        let metadata_bytes_max = self.config.metadata_bytes_max;
        let outcomes = request
            .offsets
            .into_iter()
            .map(|(topic, partition, offset, leader_epoch, metadata)| {
                let metadata = metadata.unwrap_or_default();
                let value = if metadata.len() > metadata_bytes_max {
                    Err(GroupError::OffsetMetadataTooLarge)
                } else {
                    Ok(OffsetValue {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms,
                        expire_timestamp_ms: -1,
                    })
                };
                ((topic, partition), value)
            })
            .collect();
        Ok(outcomes)
    }

    /// Applies offsets whose records are durable. Creates the group (Empty) for commits from
    /// outside the group protocol.
    pub fn apply_commit(
        &mut self,
        group_id: &str,
        offsets: Vec<((String, i32), OffsetValue)>,
        now_ms: i64,
    ) {
        let group = self.groups.entry(group_id.to_string()).or_insert_with(|| Group::new(now_ms));
        for (key, value) in offsets {
            group.offsets.insert(key, value);
        }
        assert!(group.offsets.len() <= self.config.offsets_per_group_max * 2, "offsets bounded");
    }

    /// Committed offsets of `topics` (all the group's when `None`), grouped by topic.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> FetchedOffsets {
        let offsets = self.groups.get(group_id).map(|group| &group.offsets);
        let Some(topics) = topics else {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> = BTreeMap::new();
            for ((topic, partition), value) in offsets.into_iter().flatten() {
                by_topic.entry(topic.clone()).or_default().push((*partition, Some(value.clone())));
            }
            return by_topic.into_iter().collect();
        };
        let lookup = |topic: &String, partition: i32| {
            offsets.and_then(|offsets| offsets.get(&(topic.clone(), partition)).cloned())
        };
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                let values = partitions.into_iter().map(|p| (p, lookup(&topic, p))).collect();
                (topic, values)
            })
            .collect()
    }

    /// DeleteGroups: an Empty group goes away with all its offsets. The tombstones returned
    /// must be appended before the deletion is acknowledged.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<GroupRecord>, GroupError> {
        let group = self.groups.get(group_id).ok_or(GroupError::GroupIdNotFound)?;
        if group.state != GroupState::Empty {
            return Err(GroupError::NonEmptyGroup);
        }
        let group = self.groups.remove(group_id).expect("checked above");
        let mut records: Vec<GroupRecord> = group
            .offsets
            .into_keys()
            .map(|(topic, partition)| offset_tombstone(group_id, topic, partition))
            .collect();
        records.push(GroupRecord {
            key: GroupKey::Metadata { group: group_id.to_string() },
            value: None,
        });
        Ok(records)
    }

    /// OffsetDelete: removes offsets of topics no member of the group is subscribed to.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<DeletedOffsets, GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::GroupIdNotFound)?;
        let subscribed = subscribed_topics(group);
        let mut outcomes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                outcomes.push(((topic, partition), Err(GroupError::GroupSubscribedToTopic)));
                continue;
            }
            if group.offsets.remove(&(topic.clone(), partition)).is_some() {
                records.push(offset_tombstone(group_id, topic.clone(), partition));
            }
            outcomes.push(((topic, partition), Ok(())));
        }
        Ok((outcomes, records))
    }

    /// Retention: offsets of a group that has been Empty for `offsets_retention_ms` (counted
    /// from the later of becoming empty and the commit) expire; a group left with nothing
    /// is deleted. Tombstones go to the record outbox.
    pub(super) fn expire_offsets(&mut self, now_ms: i64) {
        let retention_ms = self.config.offsets_retention_ms;
        let mut emptied = Vec::new();
        for (group_id, group) in &mut self.groups {
            if group.state != GroupState::Empty {
                continue;
            }
            let since_ms = group.state_since_ms;
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, value)| {
                    since_ms.max(value.commit_timestamp_ms) + retention_ms <= now_ms
                })
                .map(|(key, _)| key.clone())
                .collect();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                self.records.push(offset_tombstone(group_id, topic, partition));
            }
            if group.offsets.is_empty() && group.state_since_ms + retention_ms <= now_ms {
                emptied.push(group_id.clone());
            }
        }
        for group_id in emptied {
            tracing::info!(group = %group_id, "empty group expired");
            self.groups.remove(&group_id);
            self.records
                .push(GroupRecord { key: GroupKey::Metadata { group: group_id }, value: None });
        }
    }
}

/// Kafka's rules for a commit by a group member (or by an outsider to an Empty group).
fn validate_commit(
    group: &mut Group,
    request: &CommitRequest,
    now_ms: i64,
) -> Result<(), GroupError> {
    if group.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if request.generation_id < 0 && request.member_id.is_empty() && group.state == GroupState::Empty
    {
        return Ok(());
    }
    check_member(group, &request.member_id, request.group_instance_id.as_deref())?;
    if request.generation_id != group.generation_id {
        return Err(GroupError::IllegalGeneration);
    }
    if group.state == GroupState::CompletingRebalance {
        return Err(GroupError::RebalanceInProgress);
    }
    // A commit proves the member alive, like a heartbeat.
    let member = group.members.get_mut(&request.member_id).expect("checked above");
    member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
    Ok(())
}

fn offset_tombstone(group_id: &str, topic: String, partition: i32) -> GroupRecord {
    GroupRecord {
        key: GroupKey::Offset { group: group_id.to_string(), topic, partition },
        value: None,
    }
}

/// Topics the members of a "consumer" group subscribe to, read from their
/// ConsumerProtocolSubscription (every version starts `version: int16, topics: [string]`).
fn subscribed_topics(group: &Group) -> Vec<String> {
    if group.protocol_type.as_deref() != Some("consumer") {
        return Vec::new();
    }
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let mut topics = Vec::new();
    for member in group.members.values() {
        topics.extend(subscription_topics(&member.metadata_for(&protocol)));
    }
    topics
}

fn subscription_topics(bytes: &[u8]) -> Vec<String> {
    let mut topics = Vec::new();
    let Some(count) = bytes.get(2..6) else { return topics };
    let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    let mut position = 6;
    // Each topic takes at least its 2-byte length: the loop is bounded by the bytes present.
    for _ in 0..count.max(0).min(bytes.len() as i32 / 2) {
        let Some(length) = bytes.get(position..position + 2) else { break };
        let length = i16::from_be_bytes([length[0], length[1]]).max(0) as usize;
        let Some(name) = bytes.get(position + 2..position + 2 + length) else { break };
        topics.push(String::from_utf8_lossy(name).into_owned());
        position += 2 + length;
    }
    topics
}

#[cfg(test)]
#[test]
fn subscription_topics_are_read_and_bounded() {
    let mut bytes = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff];
    assert_eq!(subscription_topics(&bytes), vec!["a".to_string(), "bc".to_string()]);
    bytes[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(subscription_topics(&bytes).len(), 2);
    assert!(subscription_topics(&[0]).is_empty());
}
