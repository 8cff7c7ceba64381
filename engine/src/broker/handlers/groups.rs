//! The group-membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! ListGroups, DescribeGroups, DeleteGroups. Each request is forwarded to the shard that owns
//! the group's `__consumer_offsets` partition (see `broker::groups`), where its coordinator
//! runs; Kafka error codes are chosen here, at the edge.

use std::future::Future;
use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};

use crate::broker::errors::group_error_code;
use crate::broker::groups::coordinator::{
    GroupDescription, GroupError, GroupState, JoinRequest, JoinResult, SyncRequest,
};
use crate::broker::groups::{group_partition, OFFSETS_TOPIC};
use crate::broker::partition::Partition;
use crate::broker::shard::Shard;
use crate::broker::topics::BrokerEndpoint;
use crate::protocol::error_code::ErrorCode;

use super::str_bytes;

/// FindCoordinator key type of consumer groups (1 is transactions, 2 share groups).
const KEY_TYPE_GROUP: i8 = 0;
/// Kafka's "authorized operations not requested" sentinel.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Runs `work` on the shard that coordinates `group_id`. `None`: that shard is gone, or it
/// could not rebuild the group's `__consumer_offsets` partition (both are
/// COORDINATOR_NOT_AVAILABLE: the client looks the coordinator up again and retries).
pub(super) async fn on_coordinator<T, F, Fut>(
    shard: &Rc<Shard>,
    group_id: &str,
    work: F,
) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let partition = group_partition(group_id);
    let owner = shard.owner_of(OFFSETS_TOPIC, partition);
    let outcome = shard
        .call_on(owner, move |target| async move {
            // A partition whose groups could not be rebuilt must not answer from what is
            // missing: `None` is COORDINATOR_NOT_AVAILABLE to every caller.
            if !target.groups.serves(&target, partition) {
                return None;
            }
            Some(work(target).await)
        })
        .await;
    outcome.flatten()
}

fn code(error: Option<GroupError>) -> i16 {
    error.map_or(ErrorCode::None, group_error_code).code()
}

/// The broker that coordinates each key: on a single node this one; in a cluster the
/// leader of the group's `__consumer_offsets` partition as this broker's replica knows it.
/// Both the v0-3 fields (the first key's) and the v4+ `coordinators` list are filled;
/// `response_fit` keeps the one the version has.
pub async fn find_coordinator(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys = if request.coordinator_keys.is_empty() {
        vec![request.key.clone()]
    } else {
        request.coordinator_keys.clone()
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        // Transactions and share groups have no coordinator here (yet).
        let found = match request.key_type == KEY_TYPE_GROUP {
            true => coordinator_of(shard, &key).await,
            false => Err(ErrorCode::CoordinatorNotAvailable),
        };
        let entry = CoordinatorEntry::default().with_key(key);
        coordinators.push(match found {
            Ok(endpoint) => entry
                .with_node_id(BrokerId(endpoint.node_id))
                .with_host(str_bytes(&endpoint.host))
                .with_port(i32::from(endpoint.port)),
            Err(error) => entry
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1)
                .with_error_code(error.code()),
        });
    }
    let first = coordinators.first().cloned().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(first.error_code)
        .with_node_id(first.node_id)
        .with_host(first.host)
        .with_port(first.port)
        .with_coordinators(coordinators)
}

async fn coordinator_of(shard: &Rc<Shard>, group_id: &str) -> Result<BrokerEndpoint, ErrorCode> {
    let own = shard.own_endpoint();
    if shard.config.cluster.is_none() {
        return Ok(own);
    }
    let partition = group_partition(group_id);
    let owner = shard.owner_of(OFFSETS_TOPIC, partition);
    let leader = shard
        .call_on(owner, move |target| async move {
            match target.local_partition(OFFSETS_TOPIC, partition)? {
                Partition::Replicated(replicated) => replicated.leader(),
                Partition::Local(_) => None,
            }
        })
        .await
        .flatten();
    let leader = leader.and_then(|node| i32::try_from(node.0).ok());
    let endpoint = leader.and_then(|leader| shard.topics().brokers.get(&leader).cloned());
    endpoint.ok_or(ErrorCode::CoordinatorNotAvailable)
}

pub async fn join_group(
    shard: &Rc<Shard>,
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
    peer: std::net::SocketAddr,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        client_id,
        client_host: format!("/{}", peer.ip()),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let member_id = join.member_id.clone();
    let result = on_coordinator(shard, &group_id, move |target| async move {
        target.groups.join(&target, join).await
    })
    .await;
    let result = result
        .unwrap_or_else(|| JoinResult::failed(GroupError::CoordinatorNotAvailable, member_id));
    join_response(result)
}

fn join_response(result: JoinResult) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|member| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&member.member_id))
                .with_group_instance_id(member.group_instance_id.map(|id| str_bytes(&id)))
                .with_metadata(member.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(|name| str_bytes(&name)))
        .with_protocol_name(result.protocol_name.map(|name| str_bytes(&name)))
        .with_leader(str_bytes(&result.leader))
        .with_skip_assignment(result.skip_assignment)
        .with_member_id(str_bytes(&result.member_id))
        .with_members(members)
}

pub async fn sync_group(shard: &Rc<Shard>, request: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    let sync = SyncRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        protocol_type: request.protocol_type.map(|name| name.to_string()),
        protocol_name: request.protocol_name.map(|name| name.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|assignment| (assignment.member_id.to_string(), assignment.assignment))
            .collect(),
    };
    let result = on_coordinator(shard, &group_id, move |target| async move {
        target.groups.sync(&target, sync).await
    })
    .await;
    let Some(result) = result else {
        let error = group_error_code(GroupError::CoordinatorNotAvailable);
        return SyncGroupResponse::default().with_error_code(error.code());
    };
    SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_protocol_type(result.protocol_type.map(|name| str_bytes(&name)))
        .with_protocol_name(result.protocol_name.map(|name| str_bytes(&name)))
        .with_assignment(result.assignment)
}

pub async fn heartbeat(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.map(|id| id.to_string());
    let generation_id = request.generation_id;
    let outcome = on_coordinator(shard, &group_id.clone(), move |target| async move {
        target.groups.with(&target, |coordinator, now_ms| {
            coordinator.heartbeat(
                &group_id,
                generation_id,
                &member_id,
                instance_id.as_deref(),
                now_ms,
            )
        })?
    })
    .await;
    let error = outcome.unwrap_or(Err(GroupError::CoordinatorNotAvailable)).err();
    HeartbeatResponse::default().with_error_code(code(error))
}

pub async fn leave_group(
    shard: &Rc<Shard>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    let leaving: Vec<(String, Option<String>)> = if version <= 2 {
        vec![(request.member_id.to_string(), None)]
    } else {
        let member = |m: &kafka_protocol::messages::leave_group_request::MemberIdentity| {
            (m.member_id.to_string(), m.group_instance_id.as_ref().map(|id| id.to_string()))
        };
        request.members.iter().map(member).collect()
    };
    let asked = leaving.clone();
    let outcome = on_coordinator(shard, &group_id.clone(), move |target| async move {
        target
            .groups
            .with(&target, |coordinator, now_ms| coordinator.leave(&group_id, &leaving, now_ms))?
    })
    .await;
    let outcomes = match outcome.unwrap_or(Err(GroupError::CoordinatorNotAvailable)) {
        Ok(outcomes) => outcomes,
        Err(error) => return LeaveGroupResponse::default().with_error_code(code(Some(error))),
    };
    let members: Vec<MemberResponse> = asked
        .into_iter()
        .zip(outcomes)
        .map(|((member_id, instance_id), outcome)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance_id.map(|id| str_bytes(&id)))
                .with_error_code(code(outcome.err()))
        })
        .collect();
    // v0-2 name one member: its outcome is the answer's.
    let top_level = if version <= 2 { members.first().map_or(0, |m| m.error_code) } else { 0 };
    LeaveGroupResponse::default().with_error_code(top_level).with_members(members)
}

/// ListGroups asks every shard's coordinator (each holds the groups of its partitions).
pub async fn list_groups(shard: &Rc<Shard>, request: ListGroupsRequest) -> ListGroupsResponse {
    let mut listed = Vec::new();
    let mut error = ErrorCode::None;
    for target in 0..shard.shard_count() {
        let groups = shard
            .call_on(target, |target| async move {
                target.groups.with(&target, |coordinator, now_ms| {
                    coordinator.tick(now_ms);
                    coordinator.list()
                })
            })
            .await;
        match groups {
            Some(Ok(groups)) => listed.extend(groups),
            Some(Err(group_error)) => error = group_error_code(group_error),
            None => error = ErrorCode::CoordinatorNotAvailable,
        }
    }
    let state_wanted = |state: GroupState| {
        request.states_filter.is_empty()
            || request.states_filter.iter().any(|s| s.eq_ignore_ascii_case(state.name()))
    };
    let type_wanted = request.types_filter.is_empty()
        || request.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = listed
        .into_iter()
        .filter(|(_, _, state)| type_wanted && state_wanted(*state))
        .map(|(group_id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&group_id)))
                .with_protocol_type(str_bytes(&protocol_type))
                .with_group_state(str_bytes(state.name()))
                .with_group_type(str_bytes("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_error_code(error.code()).with_groups(groups)
}

pub async fn describe_groups(
    shard: &Rc<Shard>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut described = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let id = group_id.to_string();
        let outcome = on_coordinator(shard, &id.clone(), move |target| async move {
            target.groups.with(&target, |coordinator, now_ms| {
                coordinator.catch_up(&id, now_ms);
                coordinator.describe(&id)
            })
        })
        .await;
        let entry = DescribedGroup::default()
            .with_group_id(group_id)
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        described.push(match outcome.unwrap_or(Err(GroupError::CoordinatorNotAvailable)) {
            Err(error) => entry.with_error_code(code(Some(error))),
            // Kafka describes an unknown group as Dead, without an error (before v6).
            Ok(None) => entry.with_group_state(str_bytes(GroupState::Dead.name())),
            Ok(Some(description)) => described_group(entry, description),
        });
    }
    DescribeGroupsResponse::default().with_groups(described)
}

fn described_group(entry: DescribedGroup, description: GroupDescription) -> DescribedGroup {
    let members = description
        .members
        .into_iter()
        .map(|member| {
            DescribedGroupMember::default()
                .with_member_id(str_bytes(&member.member_id))
                .with_group_instance_id(member.group_instance_id.map(|id| str_bytes(&id)))
                .with_client_id(str_bytes(&member.client_id))
                .with_client_host(str_bytes(&member.client_host))
                .with_member_metadata(member.metadata)
                .with_member_assignment(member.assignment)
        })
        .collect();
    entry
        .with_group_state(str_bytes(description.state.name()))
        .with_protocol_type(str_bytes(&description.protocol_type))
        .with_protocol_data(str_bytes(&description.protocol_name))
        .with_members(members)
}

/// DeleteGroups: each Empty group goes with its offsets, once the tombstones are durable.
pub async fn delete_groups(
    shard: &Rc<Shard>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let id = group_id.to_string();
        let outcome = on_coordinator(shard, &id.clone(), move |target| async move {
            let records = target.groups.with(&target, |coordinator, now_ms| {
                coordinator.catch_up(&id, now_ms);
                coordinator.delete_group(&id)
            });
            match records {
                Ok(Ok(records)) => target.groups.write(&target, records).await.map_err(|error| {
                    tracing::warn!(group = %id, %error, "group tombstones not written");
                    crate::broker::errors::write_error_code(&error)
                }),
                Ok(Err(error)) | Err(error) => Err(group_error_code(error)),
            }
        })
        .await;
        let error = outcome.unwrap_or(Err(ErrorCode::CoordinatorNotAvailable)).err();
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error.unwrap_or(ErrorCode::None).code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
