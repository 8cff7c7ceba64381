//! The coordinator stepped message by message with a fake clock: no runtime, no I/O.

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const GROUP: &str = "g";

fn join_request(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(Into::into),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|name| (name.to_string(), Bytes::from(format!("meta-{name}"))))
            .collect(),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

fn coordinator() -> Coordinator {
    new_coordinator(7)
}

fn new_coordinator(nonce: u64) -> Coordinator {
    let config =
        CoordinatorConfig { initial_rebalance_delay_ms: 0, ..CoordinatorConfig::default() };
    Coordinator::new(config, nonce)
}

/// The answer readied for `ticket`, if any.
fn take(coordinator: &mut Coordinator, ticket: Ticket) -> Option<Ready> {
    let mut found = None;
    for (readied, answer) in coordinator.take_ready() {
        if readied == ticket {
            found = Some(answer);
        }
    }
    found
}

fn later<T: std::fmt::Debug>(reply: Reply<T>) -> Ticket {
    match reply {
        Reply::Later(ticket) => ticket,
        Reply::Now(answer) => panic!("expected a delayed answer, got {answer:?}"),
    }
}

fn joined(answer: Option<Ready>) -> JoinResult {
    match answer {
        Some(Ready::Join(result)) => result,
        other => panic!("expected a join result, got {other:?}"),
    }
}

fn synced(answer: Option<Ready>) -> SyncResult {
    match answer {
        Some(Ready::Sync(result)) => result,
        other => panic!("expected a sync result, got {other:?}"),
    }
}

/// First join of a dynamic member: MEMBER_ID_REQUIRED with an id, then the real join.
fn new_member(coordinator: &mut Coordinator, now_ms: i64) -> (String, Ticket) {
    let Reply::Now(first) = coordinator.join(join_request("", None, &["range"]), now_ms) else {
        panic!("first join answers at once");
    };
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(!first.member_id.is_empty());
    let ticket = later(coordinator.join(join_request(&first.member_id, None, &["range"]), now_ms));
    (first.member_id, ticket)
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(member, assignment)| (member.to_string(), Bytes::from(assignment.to_string())))
            .collect(),
    }
}

/// One member alone forms generation 1 and becomes Stable with its assignment.
fn stable_single(coordinator: &mut Coordinator) -> String {
    let (member, ticket) = new_member(coordinator, 0);
    let result = joined(take(coordinator, ticket));
    assert_eq!((result.error, result.generation_id), (None, 1));
    assert_eq!(result.leader, member);
    assert_eq!(result.members.len(), 1, "the leader sees every member");
    let ticket = later(coordinator.sync(sync_request(&member, 1, &[(&member, "p0-5")]), 0));
    assert_eq!(synced(take(coordinator, ticket)).assignment, Bytes::from("p0-5"));
    member
}

#[test]
fn join_and_sync_barriers_wait_for_every_member() {
    let mut coordinator = coordinator();
    let first = stable_single(&mut coordinator);
    // A second member joins: a rebalance starts, and it waits for the first to rejoin.
    let (second, second_ticket) = new_member(&mut coordinator, 100);
    assert!(take(&mut coordinator, second_ticket).is_none(), "barrier holds");
    assert_eq!(
        coordinator.heartbeat(GROUP, 1, &first, None, 150),
        Err(GroupError::RebalanceInProgress)
    );
    let first_ticket = later(coordinator.join(join_request(&first, None, &["range"]), 200));
    let ready = coordinator.take_ready();
    assert_eq!(ready.len(), 2, "both joins answered together");
    for (ticket, answer) in ready {
        let result = joined(Some(answer));
        assert_eq!(result.generation_id, 2);
        assert_eq!(result.leader, first, "the leader stays the leader");
        let expected_members = if ticket == first_ticket { 2 } else { 0 };
        assert_eq!(result.members.len(), expected_members);
    }
    // The follower's sync waits for the leader's.
    let follower = later(coordinator.sync(sync_request(&second, 2, &[]), 300));
    assert!(take(&mut coordinator, follower).is_none());
    let assignments = [(first.as_str(), "p0-2"), (second.as_str(), "p3-5")];
    let leader = later(coordinator.sync(sync_request(&first, 2, &assignments), 400));
    let ready = coordinator.take_ready();
    let answer = |ticket| ready.iter().find(|(t, _)| *t == ticket).map(|(_, a)| a.clone());
    assert_eq!(synced(answer(follower)).assignment, Bytes::from("p3-5"));
    assert_eq!(synced(answer(leader)).assignment, Bytes::from("p0-2"));
    assert_eq!(coordinator.heartbeat(GROUP, 2, &second, None, 500), Ok(()));
    assert_eq!(coordinator.describe(GROUP).unwrap().state, GroupState::Stable);
    // The new generation is recorded.
    let records = coordinator.take_records();
    assert!(
        matches!(&records.last().unwrap().value, Some(GroupValue::Metadata(m)) if m.generation == 2)
    );
}

#[test]
fn stale_generation_and_unknown_member_are_refused() {
    let mut coordinator = coordinator();
    let member = stable_single(&mut coordinator);
    assert_eq!(
        coordinator.heartbeat(GROUP, 0, &member, None, 10),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        coordinator.heartbeat(GROUP, 1, "nobody", None, 10),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.heartbeat("other", 1, &member, None, 10),
        Err(GroupError::UnknownMemberId)
    );
    let Reply::Now(result) = coordinator.sync(sync_request(&member, 5, &[]), 10) else { panic!() };
    assert_eq!(result.error, Some(GroupError::IllegalGeneration));
    let Reply::Now(result) = coordinator.join(join_request("ghost", None, &["range"]), 10) else {
        panic!()
    };
    assert_eq!(result.error, Some(GroupError::UnknownMemberId));
    let commit = CommitRequest {
        group_id: GROUP.into(),
        generation_id: 0,
        member_id: member.clone(),
        group_instance_id: None,
        offsets: vec![("t".into(), 0, 5, -1, None)],
    };
    assert_eq!(coordinator.prepare_commit(commit, 10), Err(GroupError::IllegalGeneration));
}

#[test]
fn leaving_member_triggers_a_rebalance_and_the_last_one_empties_the_group() {
    let mut coordinator = coordinator();
    let first = stable_single(&mut coordinator);
    let (second, ticket) = new_member(&mut coordinator, 10);
    later(coordinator.join(join_request(&first, None, &["range"]), 20));
    assert_eq!(joined(take(&mut coordinator, ticket)).generation_id, 2);
    let outcomes = coordinator.leave(GROUP, &[(first.clone(), None)], 30).unwrap();
    assert_eq!(outcomes, vec![Ok(())]);
    let description = coordinator.describe(GROUP).unwrap();
    assert_eq!(description.state, GroupState::PreparingRebalance);
    let ticket = later(coordinator.join(join_request(&second, None, &["range"]), 40));
    let result = joined(take(&mut coordinator, ticket));
    assert_eq!((result.generation_id, result.leader.as_str()), (3, second.as_str()));
    let outcomes = coordinator.leave(GROUP, &[(second.clone(), None), ("x".into(), None)], 50);
    assert_eq!(outcomes.unwrap(), vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(coordinator.describe(GROUP).unwrap().state, GroupState::Empty);
}

#[test]
fn silent_member_expires_after_its_session_timeout() {
    let mut coordinator = coordinator();
    let first = stable_single(&mut coordinator);
    let (second, ticket) = new_member(&mut coordinator, 0);
    later(coordinator.join(join_request(&first, None, &["range"]), 0));
    assert!(take(&mut coordinator, ticket).is_some());
    let assignments = [(first.as_str(), "a"), (second.as_str(), "b")];
    later(coordinator.sync(sync_request(&first, 2, &assignments), 0));
    let Reply::Now(result) = coordinator.sync(sync_request(&second, 2, &[]), 0) else {
        panic!("after the leader's sync the group is Stable: answered at once")
    };
    assert_eq!(result.assignment, Bytes::from("b"));
    // Only the first member heartbeats.
    for now_ms in (1_000..=9_000).step_by(1_000) {
        assert_eq!(coordinator.heartbeat(GROUP, 2, &first, None, now_ms), Ok(()));
        coordinator.tick(now_ms);
    }
    assert_eq!(coordinator.describe(GROUP).unwrap().members.len(), 2);
    coordinator.tick(i64::from(SESSION_MS) + 1);
    let description = coordinator.describe(GROUP).unwrap();
    assert_eq!(description.members.len(), 1, "the silent member is gone");
    assert_eq!(description.state, GroupState::PreparingRebalance);
    assert_eq!(
        coordinator.heartbeat(GROUP, 2, &first, None, 10_100),
        Err(GroupError::RebalanceInProgress)
    );
    let ticket = later(coordinator.join(join_request(&first, None, &["range"]), 10_200));
    assert_eq!(joined(take(&mut coordinator, ticket)).generation_id, 3);
    assert_eq!(
        coordinator.heartbeat(GROUP, 2, &second, None, 10_300),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut coordinator = coordinator();
    let first = stable_single(&mut coordinator);
    let (_second, ticket) = new_member(&mut coordinator, 0);
    // The first member keeps heartbeating but never rejoins.
    for now_ms in (1_000..i64::from(REBALANCE_MS)).step_by(1_000) {
        let _ = coordinator.heartbeat(GROUP, 1, &first, None, now_ms);
        coordinator.tick(now_ms);
    }
    assert!(take(&mut coordinator, ticket).is_none());
    coordinator.tick(i64::from(REBALANCE_MS));
    let result = joined(take(&mut coordinator, ticket));
    assert_eq!((result.generation_id, result.members.len()), (2, 1), "alone, and leader");
}

fn static_join(coordinator: &mut Coordinator, instance: &str, now_ms: i64) -> Reply<JoinResult> {
    coordinator.join(join_request("", Some(instance), &["range"]), now_ms)
}

#[test]
fn restarted_static_member_replaces_itself_without_a_rebalance() {
    let mut coordinator = coordinator();
    let ticket_a = later(static_join(&mut coordinator, "a", 0));
    let leader = joined(take(&mut coordinator, ticket_a)).member_id;
    let ticket_b = later(static_join(&mut coordinator, "b", 10));
    later(coordinator.join(join_request(&leader, Some("a"), &["range"]), 20));
    let old_b = joined(take(&mut coordinator, ticket_b)).member_id;
    let assignments = [(leader.as_str(), "a-part"), (old_b.as_str(), "b-part")];
    later(coordinator.sync(sync_request(&leader, 2, &assignments), 30));
    coordinator.take_ready();
    // b restarts: a new join with its instance id and no member id.
    let Reply::Now(rejoined) = static_join(&mut coordinator, "b", 40) else {
        panic!("a known static follower is answered at once")
    };
    assert_eq!((rejoined.error, rejoined.generation_id), (None, 2), "no new generation");
    assert_ne!(rejoined.member_id, old_b);
    let mut sync = sync_request(&rejoined.member_id, 2, &[]);
    sync.group_instance_id = Some("b".into());
    let Reply::Now(result) = coordinator.sync(sync, 50) else { panic!("stable: answered now") };
    assert_eq!(result.assignment, Bytes::from("b-part"), "keeps its assignment");
    assert_eq!(coordinator.describe(GROUP).unwrap().state, GroupState::Stable);
    assert_eq!(coordinator.heartbeat(GROUP, 2, &leader, Some("a"), 60), Ok(()));
    // The old incarnation is fenced.
    assert_eq!(
        coordinator.heartbeat(GROUP, 2, &old_b, Some("b"), 70),
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn protocol_is_chosen_by_vote_and_incompatible_members_are_refused() {
    let mut coordinator = coordinator();
    let mut request = join_request("", Some("x"), &["roundrobin", "range"]);
    let first = later(coordinator.join(request.clone(), 0));
    assert_eq!(joined(take(&mut coordinator, first)).protocol_name.as_deref(), Some("roundrobin"));
    request.group_instance_id = Some("y".into());
    request.protocols.reverse();
    request.protocol_type = "connect".into();
    let Reply::Now(refused) = coordinator.join(request.clone(), 10) else { panic!() };
    assert_eq!(refused.error, Some(GroupError::InconsistentGroupProtocol));
    request.protocol_type = "consumer".into();
    request.protocols = vec![("cooperative-sticky".into(), Bytes::new())];
    let Reply::Now(refused) = coordinator.join(request, 10) else { panic!() };
    assert_eq!(refused.error, Some(GroupError::InconsistentGroupProtocol));
}

#[test]
fn session_timeout_outside_bounds_is_refused() {
    let mut coordinator = coordinator();
    let mut request = join_request("", None, &["range"]);
    request.session_timeout_ms = 100;
    let Reply::Now(result) = coordinator.join(request, 0) else { panic!() };
    assert_eq!(result.error, Some(GroupError::InvalidSessionTimeout));
    assert_eq!(coordinator.group_count(), 0);
}

#[test]
fn commits_apply_fetch_and_expire_after_retention() {
    let config = CoordinatorConfig {
        offsets_retention_ms: 1_000,
        offsets_retention_check_interval_ms: 100,
        initial_rebalance_delay_ms: 0,
        ..CoordinatorConfig::default()
    };
    let mut coordinator = Coordinator::new(config, 1);
    let commit = CommitRequest {
        group_id: "standalone".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![("t".into(), 0, 42, 3, Some("meta".into())), ("t".into(), 1, 7, -1, None)],
    };
    let prepared = coordinator.prepare_commit(commit, 500).unwrap();
    let values: Vec<_> = prepared.into_iter().map(|(key, value)| (key, value.unwrap())).collect();
    coordinator.apply_commit("standalone", values, 500);
    let fetched = coordinator.fetch_offsets("standalone", Some(vec![("t".into(), vec![0, 2])]));
    let partitions = &fetched[0].1;
    assert_eq!(
        partitions[0].1.as_ref().map(|v| (v.offset, v.metadata.as_str())),
        Some((42, "meta"))
    );
    assert_eq!(partitions[1].1, None);
    assert_eq!(coordinator.fetch_offsets("standalone", None)[0].1.len(), 2);
    coordinator.tick(1_400);
    assert_eq!(coordinator.fetch_offsets("standalone", None).len(), 1, "not yet expired");
    coordinator.tick(1_600);
    assert!(coordinator.fetch_offsets("standalone", None).is_empty(), "expired");
    let tombstones = coordinator.take_records();
    assert_eq!(tombstones.iter().filter(|record| record.value.is_none()).count(), 3);
    assert_eq!(coordinator.group_count(), 0);
}

#[test]
fn delete_group_requires_an_empty_group_and_writes_tombstones() {
    let mut coordinator = coordinator();
    let member = stable_single(&mut coordinator);
    assert_eq!(coordinator.delete_group(GROUP), Err(GroupError::NonEmptyGroup));
    assert_eq!(coordinator.delete_group("none"), Err(GroupError::GroupIdNotFound));
    coordinator.leave(GROUP, &[(member, None)], 10).unwrap();
    let records = coordinator.delete_group(GROUP).unwrap();
    assert!(records.iter().all(|record| record.value.is_none()));
    assert_eq!(coordinator.group_count(), 0);
}

#[test]
fn an_expired_session_is_gone_for_admin_requests_before_the_next_tick() {
    let mut coordinator = coordinator();
    stable_single(&mut coordinator);
    let expired_ms = i64::from(SESSION_MS);
    coordinator.catch_up(GROUP, expired_ms - 1);
    assert_eq!(coordinator.delete_group(GROUP), Err(GroupError::NonEmptyGroup), "still alive");
    // No tick since the deadline passed: catching up must expire the member on its own.
    coordinator.catch_up(GROUP, expired_ms);
    assert!(coordinator.describe(GROUP).unwrap().members.is_empty());
    assert!(coordinator.delete_group(GROUP).is_ok());
    coordinator.catch_up(GROUP, expired_ms + 1); // a deleted group: nothing to do
    assert_eq!(coordinator.group_count(), 0);
}

#[test]
fn rebuild_restores_offsets_and_a_stable_group() {
    let mut coordinator = coordinator();
    let member = stable_single(&mut coordinator);
    let commit = CommitRequest {
        group_id: GROUP.into(),
        generation_id: 1,
        member_id: member.clone(),
        group_instance_id: None,
        offsets: vec![("t".into(), 3, 99, -1, Some("m".into()))],
    };
    let prepared = coordinator.prepare_commit(commit, 5).unwrap();
    let mut records = coordinator.take_records();
    for ((topic, partition), value) in prepared {
        let key = GroupKey::Offset { group: GROUP.into(), topic, partition };
        records.push(GroupRecord { key, value: Some(GroupValue::Offset(value.unwrap())) });
    }
    let mut rebuilt = new_coordinator(8);
    for record in records {
        rebuilt.load(record, 1_000);
    }
    assert_eq!(rebuilt.describe(GROUP).unwrap().state, GroupState::Stable);
    assert_eq!(rebuilt.heartbeat(GROUP, 1, &member, None, 1_100), Ok(()));
    let fetched = rebuilt.fetch_offsets(GROUP, None);
    assert_eq!(fetched[0].1[0].1.as_ref().map(|value| value.offset), Some(99));
}

#[test]
fn first_rebalance_waits_the_initial_delay_for_more_members() {
    let config = CoordinatorConfig { initial_rebalance_delay_ms: 1_000, ..Default::default() };
    let mut coordinator = Coordinator::new(config, 3);
    let (_first, first_ticket) = new_member(&mut coordinator, 0);
    coordinator.tick(500);
    assert!(take(&mut coordinator, first_ticket).is_none(), "still waiting for others");
    let (_second, second_ticket) = new_member(&mut coordinator, 600);
    coordinator.tick(1_500);
    assert!(coordinator.take_ready().is_empty(), "the delay was extended by the second join");
    coordinator.tick(1_600);
    let ready = coordinator.take_ready();
    assert_eq!(ready.len(), 2, "one generation for both");
    for (ticket, answer) in ready {
        assert!(ticket == first_ticket || ticket == second_ticket);
        assert_eq!(joined(Some(answer)).generation_id, 1);
    }
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut coordinator = coordinator();
    let first = stable_single(&mut coordinator);
    let (second, ticket) = new_member(&mut coordinator, 0);
    later(coordinator.join(join_request(&first, None, &["range"]), 0));
    assert!(take(&mut coordinator, ticket).is_some());
    // Only the follower syncs; the leader never sends the assignment.
    let follower = later(coordinator.sync(sync_request(&second, 2, &[]), 10));
    for now_ms in (1_000..i64::from(REBALANCE_MS)).step_by(1_000) {
        let _ = coordinator.heartbeat(GROUP, 2, &first, None, now_ms);
        let _ = coordinator.heartbeat(GROUP, 2, &second, None, now_ms);
        coordinator.tick(now_ms);
    }
    assert!(take(&mut coordinator, follower).is_none(), "still waiting for the leader");
    coordinator.tick(i64::from(REBALANCE_MS));
    let answer = synced(take(&mut coordinator, follower));
    assert_eq!(answer.error, Some(GroupError::RebalanceInProgress), "the follower rejoins");
    let description = coordinator.describe(GROUP).unwrap();
    assert_eq!(description.members.len(), 1, "the leader that never synced is gone");
    assert_eq!(description.members[0].member_id, second);
}

#[test]
fn restarted_static_leader_is_told_to_skip_the_assignment() {
    let mut coordinator = coordinator();
    let ticket = later(static_join(&mut coordinator, "a", 0));
    let old_leader = joined(take(&mut coordinator, ticket)).member_id;
    later(coordinator.sync(sync_request(&old_leader, 1, &[(&old_leader, "all")]), 10));
    coordinator.take_ready();
    let Reply::Now(rejoined) = static_join(&mut coordinator, "a", 20) else {
        panic!("a known static leader is answered at once")
    };
    assert_eq!((rejoined.generation_id, rejoined.skip_assignment), (1, true));
    assert_eq!(rejoined.leader, rejoined.member_id, "it still leads, under its new id");
    assert_eq!(rejoined.members.len(), 1);
    // It syncs with no assignment; the stored one stands.
    let mut sync = sync_request(&rejoined.member_id, 1, &[]);
    sync.group_instance_id = Some("a".into());
    let Reply::Now(result) = coordinator.sync(sync, 30) else { panic!("stable: answered now") };
    assert_eq!(result.assignment, Bytes::from("all"));
    // An old client (before JoinGroup v9) is told it leads, with no members to assign.
    let mut request = join_request("", Some("a"), &["range"]);
    request.supports_skip_assignment = false;
    let Reply::Now(old_client) = coordinator.join(request, 40) else { panic!() };
    assert_eq!((old_client.skip_assignment, old_client.members.len()), (false, 0));
    assert_eq!(old_client.leader, old_client.member_id);
}
