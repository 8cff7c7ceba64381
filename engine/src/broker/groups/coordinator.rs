//! The classic consumer-group coordinator as a plain state machine: requests and time in,
//! answers and records out. No I/O, no clock, no tasks (like raft-rs's `RawNode`): the driver
//! (`service.rs`) passes `now_ms`, delivers answers that wait for a barrier
//! ([`Coordinator::take_ready`]), and appends the records it asks for
//! ([`Coordinator::take_records`]). Unit tests step it message by message.
//!
//! A group moves Empty → PreparingRebalance (a member joined or left: every member must
//! rejoin, bounded by the rebalance timeout) → CompletingRebalance (the join barrier
//! completed: new generation, protocol chosen, leader told all members' subscriptions; every
//! member must sync) → Stable (the leader's SyncGroup carried the assignment, which every
//! member receives). As in Kafka, the first member to join leads while it stays. Dead is a
//! group being deleted. Members that stop heartbeating for their session timeout are removed,
//! which starts a rebalance. Static members (group.instance.id) that come back with a new
//! member id take over their old id's place and assignment without a rebalance; the old id is
//! then fenced (FENCED_INSTANCE_ID).
//!
//! Invariants (asserted): a group in CompletingRebalance or Stable has members, a leader
//! that is one of them and a chosen protocol; every static member maps to a present member.

mod offsets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::records::{GroupKey, GroupRecord, GroupValue, MemberValue, MetadataValue, OffsetValue};

pub use offsets::{CommitRequest, DeletedOffsets, FetchedOffsets, OffsetsOutcome};

/// Identifies an answer the coordinator gives later (after a join or sync barrier).
pub type Ticket = u64;

/// Limits and timeouts; Kafka's defaults in [`CoordinatorConfig::default`].
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// The first rebalance of an Empty group waits this long (extended by each new join,
    /// up to the rebalance timeout) so that members starting together share one generation
    /// (Kafka's group.initial.rebalance.delay.ms).
    pub initial_rebalance_delay_ms: i32,
    /// Offsets of a group that is Empty expire this long after it became empty (and after
    /// their commit), like Kafka's offsets.retention.minutes.
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    /// Bounds on what clients can make this coordinator hold.
    pub groups_max: usize,
    pub members_per_group_max: usize,
    pub offsets_per_group_max: usize,
    pub metadata_bytes_max: usize,
    /// A planted bug, for the simulator only (`tern-sim --plant commit-before-sync`): an
    /// OffsetCommit is applied and answered before its records are durable, so a crash can
    /// lose an acknowledged commit. It proves the simulator sees it. Never set it.
    pub planted_commit_before_sync: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            groups_max: 100_000,
            members_per_group_max: 1_000,
            offsets_per_group_max: 100_000,
            metadata_bytes_max: 4096,
            planted_commit_before_sync: false,
        }
    }
}

/// Why a group request fails; `broker::errors::group_error_code` gives the Kafka code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    #[error("the coordinator is still loading its groups")]
    LoadInProgress,
    #[error("the coordinator cannot take this group now")]
    CoordinatorNotAvailable,
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("member id required: rejoin with the one given")]
    MemberIdRequired,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("rebalance in progress")]
    RebalanceInProgress,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout outside the broker's bounds")]
    InvalidSessionTimeout,
    #[error("a newer member has this group.instance.id")]
    FencedInstanceId,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("group is not empty")]
    NonEmptyGroup,
    #[error("group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("commit metadata too large")]
    OffsetMetadataTooLarge,
    #[error("the group has more committed offsets than allowed")]
    TooManyOffsets,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// An answer now, or later under a ticket (see [`Coordinator::take_ready`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    Now(T),
    Later(Ticket),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty on a first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814): a returning static leader can be told to skip assigning.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// KIP-814: the static leader rejoined; it must not recompute the assignment.
    pub skip_assignment: bool,
    /// Only the leader gets the members (with their subscriptions).
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// A JoinGroup answer carrying only `error` (no generation, no members).
    pub fn failed(error: GroupError, member_id: String) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn failed(error: GroupError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A delayed answer, delivered under its ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Join(JoinResult),
    Sync(SyncResult),
}

/// DescribeGroups' view of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    session_deadline_ms: i64,
    join_waiter: Option<Ticket>,
    sync_waiter: Option<Ticket>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        let found = self.protocols.iter().find(|(name, _)| name == protocol);
        found.map(|(_, metadata)| metadata.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Group {
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until their join (or session expiry).
    pending_member_ids: BTreeMap<String, i64>,
    /// group.instance.id → member id.
    static_members: BTreeMap<String, String>,
    rebalance_deadline_ms: i64,
    /// The first rebalance of an Empty group completes no earlier than this.
    initial_join_not_before_ms: i64,
    state_since_ms: i64,
    offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    fn new(now_ms: i64) -> Group {
        Group {
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_member_ids: BTreeMap::new(),
            static_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_join_not_before_ms: 0,
            state_since_ms: now_ms,
            offsets: BTreeMap::new(),
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    fn check_invariants(&self) {
        if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable) {
            assert!(!self.members.is_empty(), "a formed group has members");
            let leader = self.leader_id.as_ref().expect("a formed group has a leader");
            assert!(self.members.contains_key(leader), "the leader is a member");
            assert!(self.protocol_name.is_some(), "a formed group has a protocol");
        }
        for member_id in self.static_members.values() {
            assert!(self.members.contains_key(member_id), "static member {member_id} present");
        }
    }

    /// The member and its protocol: the fields a JoinGroup answer of this generation carries.
    fn join_result(&self, member_id: &str, include_members: bool) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if include_members {
            let member = |member: &Member| JoinedMember {
                member_id: member.id.clone(),
                group_instance_id: member.instance_id.clone(),
                metadata: member.metadata_for(&protocol),
            };
            self.members.values().map(member).collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members,
        }
    }

    /// Whether a member offering `protocols` of `protocol_type` can join: same type, and one
    /// protocol every current member supports too.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members.values().all(|member| member.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Kafka's vote: each member votes for its most preferred protocol that all support.
    fn select_protocol(&self) -> String {
        let first = self.members.values().next().expect("a group with members");
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members.values().all(|member| member.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        assert!(!candidates.is_empty(), "joins are refused unless a protocol is shared");
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            let choice = member
                .protocols
                .iter()
                .map(|(name, _)| name)
                .find(|name| candidates.contains(name));
            *votes.entry(choice.expect("every member supports a candidate")).or_default() += 1;
        }
        // Ties go to the earliest candidate in the first member's order.
        let most = votes.values().copied().max().unwrap_or(0);
        let winner = candidates.iter().find(|name| votes.get(*name) == Some(&most));
        (*winner.expect("some candidate has the most votes")).clone()
    }

    fn metadata_record(&self, group_id: &str, now_ms: i64) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|member| MemberValue {
                member_id: member.id.clone(),
                group_instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                session_timeout_ms: member.session_timeout_ms,
                subscription: member.metadata_for(&protocol),
                assignment: member.assignment.clone(),
            })
            .collect();
        let value = MetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: now_ms,
            members,
        };
        GroupRecord {
            key: GroupKey::Metadata { group: group_id.to_string() },
            value: Some(GroupValue::Metadata(value)),
        }
    }
}

/// The groups of one shard, with their members and committed offsets.
pub struct Coordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    next_ticket: Ticket,
    /// Member ids are `<client id>-<nonce><counter>`: unique across restarts by the nonce.
    member_id_nonce: u64,
    member_id_counter: u64,
    ready: Vec<(Ticket, Ready)>,
    records: Vec<GroupRecord>,
    last_retention_check_ms: i64,
}

impl Coordinator {
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    pub fn new(config: CoordinatorConfig, member_id_nonce: u64) -> Coordinator {
        assert!(config.min_session_timeout_ms <= config.max_session_timeout_ms);
        assert!(config.members_per_group_max > 0 && config.groups_max > 0);
        Coordinator {
            config,
            groups: BTreeMap::new(),
            next_ticket: 1,
            member_id_nonce,
            member_id_counter: 0,
            ready: Vec::new(),
            records: Vec::new(),
            last_retention_check_ms: 0,
        }
    }

    /// Answers that became ready (join and sync barriers), in the order they completed.
    pub fn take_ready(&mut self) -> Vec<(Ticket, Ready)> {
        std::mem::take(&mut self.ready)
    }

    /// Records to append to the groups' `__consumer_offsets` partitions, in order.
    pub fn take_records(&mut self) -> Vec<GroupRecord> {
        std::mem::take(&mut self.records)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Forgets every group of `__consumer_offsets` partition `partition`: in a cluster this
    /// coordinator stopped leading it, and its next leader rebuilds them from the log.
    /// Returns how many groups were forgotten.
    pub fn unload_partition(&mut self, partition: i32) -> usize {
        let before = self.groups.len();
        self.groups.retain(|group_id, _| super::group_partition(group_id) != partition);
        before - self.groups.len()
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.member_id_counter += 1;
        format!("{client_id}-{:016x}{:08x}", self.member_id_nonce, self.member_id_counter)
    }

    pub fn join(&mut self, request: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        let member_id = request.member_id.clone();
        let reply = match self.join_checked(request, now_ms) {
            Ok(reply) => reply,
            Err((error, member_id_given)) => {
                Reply::Now(JoinResult::failed(error, member_id_given.unwrap_or(member_id)))
            }
        };
        self.groups.values().for_each(Group::check_invariants);
        reply
    }

    fn join_checked(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
    ) -> Result<Reply<JoinResult>, (GroupError, Option<String>)> {
        if request.group_id.is_empty() {
            return Err((GroupError::InvalidGroupId, None));
        }
        let timeouts = self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms;
        if !timeouts.contains(&request.session_timeout_ms) {
            return Err((GroupError::InvalidSessionTimeout, None));
        }
        if !self.groups.contains_key(&request.group_id) {
            if !request.member_id.is_empty() {
                return Err((GroupError::UnknownMemberId, None));
            }
            if self.groups.len() >= self.config.groups_max {
                return Err((GroupError::CoordinatorNotAvailable, None));
            }
            self.groups.insert(request.group_id.clone(), Group::new(now_ms));
        }
        let group = &self.groups[&request.group_id];
        if group.state == GroupState::Dead {
            return Err((GroupError::CoordinatorNotAvailable, None));
        }
        if !group.supports(&request.protocol_type, &request.protocols) {
            return Err((GroupError::InconsistentGroupProtocol, None));
        }
        if request.member_id.is_empty() {
            self.join_new_member(request, now_ms)
        } else {
            self.join_known_member(request, now_ms)
        }
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
    ) -> Result<Reply<JoinResult>, (GroupError, Option<String>)> {
        let group = &self.groups[&request.group_id];
        if let Some(instance_id) = &request.group_instance_id {
            if group.static_members.contains_key(instance_id) {
                return Ok(self.replace_static_member(request, now_ms));
            }
        }
        let size = group.members.len() + group.pending_member_ids.len();
        if size >= self.config.members_per_group_max {
            return Err((GroupError::GroupMaxSizeReached, None));
        }
        let member_id = self.new_member_id(&request.client_id);
        if request.group_instance_id.is_none() && request.require_known_member_id {
            let group = self.groups.get_mut(&request.group_id).expect("checked above");
            // Deadlines: a wall-clock ms (< 2^43) plus an i32 cannot overflow an i64; the
            // session timeout is within the broker's bounds (checked above), a negative
            // rebalance timeout counts as 0 (`rebalance_deadline_ms`).
            let deadline_ms = now_ms + i64::from(request.session_timeout_ms);
            group.pending_member_ids.insert(member_id.clone(), deadline_ms);
            return Err((GroupError::MemberIdRequired, Some(member_id)));
        }
        Ok(self.add_member(request, member_id, now_ms))
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        now_ms: i64,
    ) -> Result<Reply<JoinResult>, (GroupError, Option<String>)> {
        let group = self.groups.get_mut(&request.group_id).expect("checked by the caller");
        if group.pending_member_ids.remove(&request.member_id).is_some() {
            let member_id = request.member_id.clone();
            return Ok(self.add_member(request, member_id, now_ms));
        }
        check_member(group, &request.member_id, request.group_instance_id.as_deref())
            .map_err(|error| (error, None))?;
        let ticket = self.ticket();
        let group = self.groups.get_mut(&request.group_id).expect("checked by the caller");
        let member = group.members.get_mut(&request.member_id).expect("checked above");
        let unchanged = member.protocols == request.protocols;
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
        let is_leader = group.leader_id.as_deref() == Some(request.member_id.as_str());
        match group.state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(is_leader && group.state == GroupState::Stable) =>
            {
                let include_members = is_leader;
                Ok(Reply::Now(group.join_result(&request.member_id, include_members)))
            }
            GroupState::Empty | GroupState::Dead => Err((GroupError::UnknownMemberId, None)),
            _ => {
                self.await_join(&request.group_id, &request.member_id, ticket, now_ms);
                Ok(Reply::Later(ticket))
            }
        }
    }

    fn add_member(
        &mut self,
        request: JoinRequest,
        member_id: String,
        now_ms: i64,
    ) -> Reply<JoinResult> {
        let ticket = self.ticket();
        let group = self.groups.get_mut(&request.group_id).expect("checked by the caller");
        if group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        // Like Kafka, the first member to join leads (it keeps leading while it stays).
        let leader_present =
            group.leader_id.as_ref().is_some_and(|id| group.members.contains_key(id));
        if !leader_present {
            group.leader_id = Some(member_id.clone());
        }
        if let Some(instance_id) = &request.group_instance_id {
            group.static_members.insert(instance_id.clone(), member_id.clone());
        }
        let member = Member {
            id: member_id.clone(),
            instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            session_deadline_ms: now_ms + i64::from(request.session_timeout_ms),
            join_waiter: None,
            sync_waiter: None,
        };
        group.members.insert(member_id.clone(), member);
        self.await_join(&request.group_id, &member_id, ticket, now_ms);
        Reply::Later(ticket)
    }

    /// The member waits at the join barrier; a rebalance starts if none is in progress.
    fn await_join(&mut self, group_id: &str, member_id: &str, ticket: Ticket, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        let member = group.members.get_mut(member_id).expect("member exists");
        if let Some(previous) = member.join_waiter.replace(ticket) {
            // A retried join replaces the earlier one, which gets an answer it can retry on.
            let failed = JoinResult::failed(GroupError::RebalanceInProgress, member_id.into());
            self.ready.push((previous, Ready::Join(failed)));
        }
        let delay_ms = i64::from(self.config.initial_rebalance_delay_ms);
        if group.state == GroupState::Empty {
            group.initial_join_not_before_ms = now_ms + delay_ms;
        } else if group.initial_join_not_before_ms > now_ms {
            // Another member of the first generation: wait a little longer for more.
            let extended_ms = (now_ms + delay_ms).min(group.rebalance_deadline_ms);
            group.initial_join_not_before_ms = group.initial_join_not_before_ms.max(extended_ms);
        }
        if group.state != GroupState::PreparingRebalance {
            prepare_rebalance(group, &mut self.ready, now_ms);
        }
        self.maybe_complete_join(group_id, now_ms);
    }

    /// A static member rejoined with a new member id (it restarted): it takes the old id's
    /// place. In a Stable group with unchanged subscriptions nobody rebalances and it keeps its
    /// assignment; the old id is fenced from then on. A returning leader is told it leads,
    /// as Kafka does: with every member and `skip_assignment` (v9+), or with no members (older
    /// versions: its assignor computes nothing, and SyncGroup in a Stable group ignores the
    /// assignment sent and returns the stored one).
    fn replace_static_member(&mut self, request: JoinRequest, now_ms: i64) -> Reply<JoinResult> {
        let instance_id = request.group_instance_id.clone().expect("a static member");
        let new_id = self.new_member_id(&request.client_id);
        let group = self.groups.get_mut(&request.group_id).expect("checked by the caller");
        let old_id = group.static_members[&instance_id].clone();
        let mut member = group.members.remove(&old_id).expect("static members are present");
        answer_waiters(&mut member, &mut self.ready, GroupError::FencedInstanceId);
        let unchanged = member.protocols == request.protocols;
        member.id = new_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols.clone();
        group.members.insert(new_id.clone(), member);
        group.static_members.insert(instance_id, new_id.clone());
        let was_leader = group.leader_id.as_deref() == Some(old_id.as_str());
        if was_leader {
            group.leader_id = Some(new_id.clone());
        }
        if group.state == GroupState::Stable && unchanged {
            self.records.push(group.metadata_record(&request.group_id, now_ms));
            let skip_assignment = was_leader && request.supports_skip_assignment;
            let mut result = group.join_result(&new_id, skip_assignment);
            result.skip_assignment = skip_assignment;
            return Reply::Now(result);
        }
        // Changed subscriptions, or a rebalance already under way: everyone rejoins.
        let ticket = self.ticket();
        self.await_join(&request.group_id, &new_id, ticket, now_ms);
        Reply::Later(ticket)
    }

    /// Completes the join barrier once every member (and pending member) has rejoined.
    fn maybe_complete_join(&mut self, group_id: &str, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|member| member.join_waiter.is_some());
        let delayed = now_ms < group.initial_join_not_before_ms;
        if all_joined && group.pending_member_ids.is_empty() && !delayed {
            self.complete_join(group_id, now_ms);
        }
    }

    /// New generation: members that did not rejoin are gone; the leader gets every member's
    /// subscription, the others only the generation.
    fn complete_join(&mut self, group_id: &str, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        assert_eq!(group.state, GroupState::PreparingRebalance);
        let absent: Vec<String> = group
            .members
            .values()
            .filter(|member| member.join_waiter.is_none())
            .map(|member| member.id.clone())
            .collect();
        for member_id in absent {
            remove_member_only(group, &member_id, &mut self.ready);
        }
        group.pending_member_ids.clear();
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader_id = None;
            group.set_state(GroupState::Empty, now_ms);
            self.records.push(group.metadata_record(group_id, now_ms));
            return;
        }
        group.protocol_name = Some(group.select_protocol());
        let leader_present =
            group.leader_id.as_ref().is_some_and(|id| group.members.contains_key(id));
        if !leader_present {
            group.leader_id = group.members.keys().next().cloned();
        }
        group.set_state(GroupState::CompletingRebalance, now_ms);
        // Members must sync within a rebalance timeout, or the ones that did not are removed.
        let timeout_ms = group.members.values().map(|member| member.rebalance_timeout_ms).max();
        group.rebalance_deadline_ms = now_ms + i64::from(timeout_ms.unwrap_or(0).max(0));
        let leader = group.leader_id.clone().expect("chosen above");
        let waiting: Vec<(String, Ticket)> = group
            .members
            .values_mut()
            .filter_map(|member| {
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                member.join_waiter.take().map(|ticket| (member.id.clone(), ticket))
            })
            .collect();
        for (member_id, ticket) in waiting {
            let result = group.join_result(&member_id, member_id == leader);
            self.ready.push((ticket, Ready::Join(result)));
        }
        group.check_invariants();
    }

    pub fn sync(&mut self, request: SyncRequest, now_ms: i64) -> Reply<SyncResult> {
        let reply = match self.sync_checked(request, now_ms) {
            Ok(reply) => reply,
            Err(error) => Reply::Now(SyncResult::failed(error)),
        };
        self.groups.values().for_each(Group::check_invariants);
        reply
    }

    fn sync_checked(
        &mut self,
        request: SyncRequest,
        now_ms: i64,
    ) -> Result<Reply<SyncResult>, GroupError> {
        let ticket = self.ticket();
        let group = self.groups.get_mut(&request.group_id).ok_or(GroupError::UnknownMemberId)?;
        check_member(group, &request.member_id, request.group_instance_id.as_deref())?;
        if request.generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let type_mismatch =
            request.protocol_type.is_some() && request.protocol_type != group.protocol_type;
        let name_mismatch =
            request.protocol_name.is_some() && request.protocol_name != group.protocol_name;
        if type_mismatch || name_mismatch {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let member = group.members.get_mut(&request.member_id).expect("checked above");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable => Ok(Reply::Now(sync_result(group, &request.member_id))),
            GroupState::CompletingRebalance => {
                if let Some(previous) = member.sync_waiter.replace(ticket) {
                    let failed = SyncResult::failed(GroupError::RebalanceInProgress);
                    self.ready.push((previous, Ready::Sync(failed)));
                }
                if group.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    self.complete_sync(&request.group_id, request.assignments, now_ms);
                }
                Ok(Reply::Later(ticket))
            }
        }
    }

    /// The leader's assignment arrived: the group is Stable, and every member waiting in
    /// SyncGroup gets its part. The new generation is recorded in `__consumer_offsets`.
    fn complete_sync(&mut self, group_id: &str, assignments: Vec<(String, Bytes)>, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member in group.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        group.set_state(GroupState::Stable, now_ms);
        let waiting: Vec<(String, Ticket)> = group
            .members
            .values_mut()
            .filter_map(|member| {
                member.sync_waiter.take().map(|ticket| (member.id.clone(), ticket))
            })
            .collect();
        for (member_id, ticket) in waiting {
            self.ready.push((ticket, Ready::Sync(sync_result(group, &member_id))));
        }
        self.records.push(group.metadata_record(group_id, now_ms));
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        check_member(group, member_id, group_instance_id)?;
        let member = group.members.get_mut(member_id).expect("checked above");
        member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// LeaveGroup: each (member id, group.instance.id) leaves; a static member may be named by
    /// its instance id alone (empty member id).
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let group = self.groups.get_mut(group_id).ok_or(GroupError::UnknownMemberId)?;
        let mut outcomes = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let target = match instance_id {
                Some(instance) => match group.static_members.get(instance) {
                    Some(current) if member_id.is_empty() || current == member_id => {
                        Ok(current.clone())
                    }
                    Some(_) => Err(GroupError::FencedInstanceId),
                    None => Err(GroupError::UnknownMemberId),
                },
                None => Ok(member_id.clone()),
            };
            let outcome = target.and_then(|member_id| {
                if group.pending_member_ids.remove(&member_id).is_some() {
                    return Ok(());
                }
                if !group.members.contains_key(&member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                remove_member_only(group, &member_id, &mut self.ready);
                Ok(())
            });
            outcomes.push(outcome);
        }
        self.after_removal(group_id, now_ms);
        Ok(outcomes)
    }

    /// After members left: a formed group rebalances; a rebalancing one may now be complete.
    fn after_removal(&mut self, group_id: &str, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                prepare_rebalance(group, &mut self.ready, now_ms);
            }
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => return,
        }
        self.maybe_complete_join(group_id, now_ms);
        self.groups.values().for_each(Group::check_invariants);
    }

    /// Time passes: sessions and pending member ids expire, rebalance timeouts fire, and
    /// (every retention interval) offsets of long-empty groups expire.
    pub fn tick(&mut self, now_ms: i64) {
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in &group_ids {
            self.advance_group(group_id, now_ms);
        }
        let interval_ms = self.config.offsets_retention_check_interval_ms;
        if now_ms - self.last_retention_check_ms >= interval_ms {
            self.last_retention_check_ms = now_ms;
            self.expire_offsets(now_ms);
        }
        self.groups.values().for_each(Group::check_invariants);
    }

    /// The sync barrier timed out (the leader never sent the assignment, or members never
    /// synced): members that did not sync are removed and the group rebalances.
    fn expire_sync(&mut self, group_id: &str, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        assert_eq!(group.state, GroupState::CompletingRebalance);
        let silent: Vec<String> = group
            .members
            .values()
            .filter(|member| member.sync_waiter.is_none())
            .map(|member| member.id.clone())
            .collect();
        for member_id in &silent {
            tracing::info!(group = group_id, member = %member_id, "member did not sync in time");
            remove_member_only(group, member_id, &mut self.ready);
        }
        self.after_removal(group_id, now_ms);
    }

    /// Brings one group up to `now_ms` before an administrative request reads or changes it:
    /// a member whose session ran out is gone now, not at the next tick. Kafka's timers fire
    /// to the millisecond, and clients count on it (librdkafka's 0081 deletes a group of
    /// static members the moment their session has run out).
    pub fn catch_up(&mut self, group_id: &str, now_ms: i64) {
        if self.groups.contains_key(group_id) {
            self.advance_group(group_id, now_ms);
        }
    }

    fn advance_group(&mut self, group_id: &str, now_ms: i64) {
        self.expire_sessions(group_id, now_ms);
        let group = &self.groups[group_id];
        let overdue = now_ms >= group.rebalance_deadline_ms;
        match group.state {
            GroupState::PreparingRebalance if overdue => self.complete_join(group_id, now_ms),
            GroupState::CompletingRebalance if overdue => self.expire_sync(group_id, now_ms),
            _ => {}
        }
    }

    fn expire_sessions(&mut self, group_id: &str, now_ms: i64) {
        let group = self.groups.get_mut(group_id).expect("group exists");
        group.pending_member_ids.retain(|_, deadline_ms| *deadline_ms > now_ms);
        let rebalancing = group.state == GroupState::PreparingRebalance;
        // Members waiting at the join barrier are bounded by the rebalance timeout instead.
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|member| !(rebalancing && member.join_waiter.is_some()))
            .filter(|member| member.session_deadline_ms <= now_ms)
            .map(|member| member.id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(group = group_id, member = %member_id, "member session expired");
            remove_member_only(group, member_id, &mut self.ready);
        }
        if expired.is_empty() {
            self.maybe_complete_join(group_id, now_ms);
        } else {
            self.after_removal(group_id, now_ms);
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let group = self.groups.get(group_id)?;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|member| MemberDescription {
                member_id: member.id.clone(),
                group_instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: member.metadata_for(&protocol),
                assignment: member.assignment.clone(),
            })
            .collect();
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol,
            members,
        })
    }

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let entry = |(id, group): (&String, &Group)| {
            (id.clone(), group.protocol_type.clone().unwrap_or_default(), group.state)
        };
        self.groups.iter().map(entry).collect()
    }

    /// Rebuild: applies one record read back from `__consumer_offsets`, oldest first. Restored
    /// members get a fresh session; if they do not heartbeat they expire and the group
    /// rebalances, as in Kafka.
    pub fn load(&mut self, record: GroupRecord, now_ms: i64) {
        let group_id = record.key.group().to_string();
        if !self.groups.contains_key(&group_id) {
            if record.value.is_none() || self.groups.len() >= self.config.groups_max {
                return;
            }
            self.groups.insert(group_id.clone(), Group::new(now_ms));
        }
        let group = self.groups.get_mut(&group_id).expect("inserted above");
        match (record.key, record.value) {
            (GroupKey::Offset { topic, partition, .. }, Some(GroupValue::Offset(value))) => {
                group.offsets.insert((topic, partition), value);
            }
            (GroupKey::Offset { topic, partition, .. }, None) => {
                group.offsets.remove(&(topic, partition));
            }
            (GroupKey::Metadata { .. }, Some(GroupValue::Metadata(value))) => {
                restore_group(group, value, now_ms);
            }
            (GroupKey::Metadata { .. }, None) => {
                restore_group(group, MetadataValue::empty(), now_ms);
            }
            (key, value) => {
                tracing::warn!(?key, ?value, "__consumer_offsets record with a mismatched value");
            }
        }
        let group = &self.groups[&group_id];
        if group.members.is_empty() && group.offsets.is_empty() && group.generation_id == 0 {
            self.groups.remove(&group_id);
        }
    }
}

impl MetadataValue {
    fn empty() -> MetadataValue {
        MetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: -1,
            members: Vec::new(),
        }
    }
}

fn restore_group(group: &mut Group, value: MetadataValue, now_ms: i64) {
    let protocol = value.protocol.clone().unwrap_or_default();
    group.members.clear();
    group.static_members.clear();
    group.pending_member_ids.clear();
    for member in value.members {
        if let Some(instance_id) = &member.group_instance_id {
            group.static_members.insert(instance_id.clone(), member.member_id.clone());
        }
        let restored = Member {
            id: member.member_id.clone(),
            instance_id: member.group_instance_id,
            client_id: member.client_id,
            client_host: member.client_host,
            session_timeout_ms: member.session_timeout_ms,
            rebalance_timeout_ms: member.rebalance_timeout_ms,
            protocols: vec![(protocol.clone(), member.subscription)],
            assignment: member.assignment,
            session_deadline_ms: now_ms + i64::from(member.session_timeout_ms),
            join_waiter: None,
            sync_waiter: None,
        };
        group.members.insert(member.member_id, restored);
    }
    let formed = !group.members.is_empty() && value.leader.is_some() && value.protocol.is_some();
    let leader_present = value.leader.as_ref().is_some_and(|id| group.members.contains_key(id));
    if !formed || !leader_present {
        group.members.clear();
        group.static_members.clear();
    }
    group.generation_id = value.generation;
    group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
    group.protocol_name = if group.members.is_empty() { None } else { value.protocol };
    group.leader_id = if group.members.is_empty() { None } else { value.leader };
    let state = if group.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    let since_ms = if value.current_state_timestamp_ms >= 0 {
        value.current_state_timestamp_ms
    } else {
        now_ms
    };
    group.set_state(state, since_ms);
    group.check_invariants();
}

/// The member must exist, and a static member must be the current holder of its instance id.
fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), GroupError> {
    if let Some(instance_id) = instance_id {
        match group.static_members.get(instance_id) {
            Some(current) if current != member_id => return Err(GroupError::FencedInstanceId),
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    Ok(())
}

fn sync_result(group: &Group, member_id: &str) -> SyncResult {
    let member = &group.members[member_id];
    SyncResult {
        error: None,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment: member.assignment.clone(),
    }
}

/// Starts a rebalance: members must rejoin within the longest rebalance timeout; members
/// waiting in SyncGroup for the old generation are told to rejoin.
fn prepare_rebalance(group: &mut Group, ready: &mut Vec<(Ticket, Ready)>, now_ms: i64) {
    if group.state == GroupState::CompletingRebalance {
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
            if let Some(ticket) = member.sync_waiter.take() {
                let failed = SyncResult::failed(GroupError::RebalanceInProgress);
                ready.push((ticket, Ready::Sync(failed)));
            }
        }
    }
    let timeout_ms = group.members.values().map(|member| member.rebalance_timeout_ms).max();
    group.rebalance_deadline_ms = now_ms + i64::from(timeout_ms.unwrap_or(0).max(0));
    group.set_state(GroupState::PreparingRebalance, now_ms);
}

/// Removes a member and answers whatever it waits for; the caller handles the group's state.
fn remove_member_only(group: &mut Group, member_id: &str, ready: &mut Vec<(Ticket, Ready)>) {
    let Some(mut member) = group.members.remove(member_id) else { return };
    answer_waiters(&mut member, ready, GroupError::UnknownMemberId);
    if let Some(instance_id) = &member.instance_id {
        if group.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
            group.static_members.remove(instance_id);
        }
    }
}

fn answer_waiters(member: &mut Member, ready: &mut Vec<(Ticket, Ready)>, error: GroupError) {
    if let Some(ticket) = member.join_waiter.take() {
        ready.push((ticket, Ready::Join(JoinResult::failed(error, member.id.clone()))));
    }
    if let Some(ticket) = member.sync_waiter.take() {
        ready.push((ticket, Ready::Sync(SyncResult::failed(error))));
    }
}
