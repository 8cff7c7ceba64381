//! The classic group protocol against Apache Kafka 4.4.0: one group's whole life — join
//! (MEMBER_ID_REQUIRED, then the real join), sync, heartbeats right and wrong, commits in and
//! out of generation, fetches, describe, list, delete while members remain, leave, delete —
//! at old and new versions of each API, every answer compared field by field after the
//! documented normalisations (`common::differential`: member ids are each broker's own).

mod common;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;

use common::differential::*;
use common::kafka_peer::KafkaPeer;
use common::{test_dir, TernServer};

const TOPIC: &str = "group-topic";

/// The versions one lifecycle runs at (each within both brokers' ranges).
#[derive(Debug, Clone, Copy)]
struct Versions {
    join: i16,
    sync: i16,
    heartbeat: i16,
    leave: i16,
    commit: i16,
    fetch: i16,
    describe: i16,
    list: i16,
    delete: i16,
}

/// Each broker hands out its own member id: requests are built per broker from these.
#[derive(Debug, Clone, Default)]
struct Members {
    tern: String,
    kafka: String,
}

fn group_id(group: &str) -> GroupId {
    GroupId(text(group))
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(text("range"))
        .with_metadata(Bytes::from_static(b"\x00\x01subscription"));
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(member))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![protocol])
}

fn sync_request(group: &str, generation: i32, member: &str) -> SyncGroupRequest {
    let assignment = SyncGroupRequestAssignment::default()
        .with_member_id(text(member))
        .with_assignment(Bytes::from_static(b"\x00\x01assignment"));
    SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(text(member))
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(vec![assignment])
}

fn heartbeat_request(group: &str, generation: i32, member: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(text(member))
}

fn commit_request(group: &str, generation: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(text("lifecycle")));
    let topic =
        OffsetCommitRequestTopic::default().with_name(name(TOPIC)).with_partitions(vec![partition]);
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(member))
        .with_topics(vec![topic])
}

fn fetch_offsets_request(group: &str) -> OffsetFetchRequest {
    let topic = OffsetFetchRequestTopic::default()
        .with_name(name(TOPIC))
        .with_partition_indexes(vec![0, 1]);
    OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(Some(vec![topic]))
}

fn leave_request(group: &str, version: i16, member: &str) -> LeaveGroupRequest {
    let request = LeaveGroupRequest::default().with_group_id(group_id(group));
    if version >= 3 {
        request.with_members(vec![MemberIdentity::default().with_member_id(text(member))])
    } else {
        request.with_member_id(text(member))
    }
}

fn delete_request(group: &str) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])
}

fn describe_request(group: &str) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
}

/// Sends a request built per broker (from its member id), compares the normalized answers,
/// and returns both raw answers for the next step.
fn compare_members<R>(
    pair: &mut Pair,
    case: &str,
    version: i16,
    members: &Members,
    build: impl Fn(&str) -> R,
    normalize: impl Fn(&mut R::Response),
) -> (R::Response, R::Response)
where
    R: Request + Clone,
    R::Response: std::fmt::Debug + Clone,
{
    let tern = pair.tern.call(version, &build(&members.tern));
    let kafka = pair.kafka.call(version, &build(&members.kafka));
    let (mut tern_normalized, mut kafka_normalized) = (tern.clone(), kafka.clone());
    normalize(&mut tern_normalized);
    normalize(&mut kafka_normalized);
    pair.check_equal(&format!("{case} (v{version})"), &tern_normalized, &kafka_normalized);
    (tern, kafka)
}

/// Join: a v4+ join without a member id is answered MEMBER_ID_REQUIRED with the id to use.
fn join(pair: &mut Pair, group: &str, versions: Versions) -> (Members, i32) {
    let nobody = Members::default();
    let (tern, kafka) = compare_members(
        pair,
        "JoinGroup without a member id",
        versions.join,
        &nobody,
        |member| join_request(group, member),
        normalize_join_group,
    );
    assert_eq!((tern.error_code, kafka.error_code), (79, 79), "MEMBER_ID_REQUIRED from both");
    let members = Members { tern: tern.member_id.to_string(), kafka: kafka.member_id.to_string() };
    let (tern, _) = compare_members(
        pair,
        "JoinGroup",
        versions.join,
        &members,
        |member| join_request(group, member),
        normalize_join_group,
    );
    assert!(tern.error_code == 0 && tern.generation_id >= 1, "joined: {tern:?}");
    (members, tern.generation_id)
}

fn lifecycle(pair: &mut Pair, group: &str, versions: Versions) {
    wait_for_group_load(pair, group);
    let (members, generation) = join(pair, group, versions);
    let sync = |member: &str| sync_request(group, generation, member);
    compare_members(pair, "SyncGroup", versions.sync, &members, sync, |r| r.throttle_time_ms = 0);
    let stale = |member: &str| sync_request(group, generation + 7, member);
    compare_members(pair, "SyncGroup stale generation", versions.sync, &members, stale, |r| {
        r.throttle_time_ms = 0
    });
    heartbeats(pair, group, versions, &members, generation);
    commits(pair, group, versions, &members, generation);
    let described = |_: &str| describe_request(group);
    compare_members(
        pair,
        "DescribeGroups stable",
        versions.describe,
        &members,
        described,
        normalize_describe_groups,
    );
    let deleted = |_: &str| delete_request(group);
    compare_members(pair, "DeleteGroups with a member", versions.delete, &members, deleted, |r| {
        r.throttle_time_ms = 0
    });
    let leave = |member: &str| leave_request(group, versions.leave, member);
    compare_members(pair, "LeaveGroup", versions.leave, &members, leave, normalize_leave_group);
    compare_members(
        pair,
        "DescribeGroups empty",
        versions.describe,
        &members,
        described,
        normalize_describe_groups,
    );
    compare_members(pair, "DeleteGroups empty", versions.delete, &members, deleted, |r| {
        r.throttle_time_ms = 0
    });
    let fetched = |_: &str| fetch_offsets_request(group);
    compare_members(pair, "OffsetFetch after delete", versions.fetch, &members, fetched, |r| {
        r.throttle_time_ms = 0
    });
}

fn heartbeats(
    pair: &mut Pair,
    group: &str,
    versions: Versions,
    members: &Members,
    generation: i32,
) {
    let cases: [(&str, i32, bool); 3] = [
        ("Heartbeat", generation, true),
        ("Heartbeat stale generation", generation + 3, true),
        ("Heartbeat unknown member", generation, false),
    ];
    for (case, generation, known) in cases {
        let build = |member: &str| {
            heartbeat_request(group, generation, if known { member } else { "stranger" })
        };
        compare_members(pair, case, versions.heartbeat, members, build, |r| r.throttle_time_ms = 0);
    }
}

fn commits(pair: &mut Pair, group: &str, versions: Versions, members: &Members, generation: i32) {
    let in_generation = |member: &str| commit_request(group, generation, member, 42);
    compare_members(pair, "OffsetCommit", versions.commit, members, in_generation, |r| {
        normalize_offset_commit(r)
    });
    let stale = |member: &str| commit_request(group, generation + 5, member, 43);
    compare_members(pair, "OffsetCommit stale generation", versions.commit, members, stale, |r| {
        normalize_offset_commit(r)
    });
    let fetched = |_: &str| fetch_offsets_request(group);
    let (tern, _) = compare_members(pair, "OffsetFetch", versions.fetch, members, fetched, |r| {
        r.throttle_time_ms = 0
    });
    let committed =
        tern.topics.iter().flat_map(|topic| &topic.partitions).map(|p| p.committed_offset);
    assert!(committed.eq([42, -1]), "partition 0 committed at 42, partition 1 never: {tern:?}");
    let listed = |_: &str| ListGroupsRequest::default();
    let (tern, kafka) = compare_members(pair, "ListGroups", versions.list, members, listed, |r| {
        r.throttle_time_ms = 0;
        r.groups.retain(|listed| listed.group_id.as_str() == group);
    });
    let ours = |response: &ListGroupsResponse| {
        response.groups.iter().any(|listed| listed.group_id.as_str() == group)
    };
    assert!(ours(&tern) && ours(&kafka), "both list the group: {tern:?} / {kafka:?}");
}

#[test]
fn the_classic_group_protocol_is_answered_like_apache_kafka() {
    let directory = test_dir("differential-groups");
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let mut tern = TernServer::start(&directory.join("tern"), &["--shards", "2"]);
    let mut pair = Pair::connect(&tern.bootstrap(), &kafka.bootstrap());
    pair.compare("CreateTopics", 7, &create_request(TOPIC, 1, &[]), normalize_create);
    wait_for_leaders(&mut pair, TOPIC);
    let oldest = Versions {
        join: 4,
        sync: 2,
        heartbeat: 2,
        leave: 2,
        commit: 2,
        fetch: 1,
        describe: 1,
        list: 1,
        delete: 1,
    };
    let newest = Versions {
        join: 9,
        sync: 5,
        heartbeat: 4,
        leave: 5,
        commit: 8,
        fetch: 7,
        describe: 5,
        list: 4,
        delete: 2,
    };
    lifecycle(&mut pair, "lifecycle-old", oldest);
    lifecycle(&mut pair, "lifecycle-new", newest);
    tern.stop();
    drop(kafka);
    pair.assert_agreed();
}
