//! Offset committers: each commits offsets of its own group for the topic's partitions, from
//! outside the group protocol (generation -1, as a consumer with `assign()` does), through the
//! group's coordinator (FindCoordinator, then OffsetCommit to the broker it names), and reads
//! them back with OffsetFetch. Offsets it commits for a partition only grow, whatever the
//! outcome of earlier commits, which is what lets the checker call any lower fetch a
//! regression (`checker/offsets.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Session, FETCH_TIMEOUT, RETRY_BACKOFF};
use crate::client;
use crate::history::{Body, Group, Offset, Op, OpType, Partition, Process};
use crate::run::{now_ns, run_state, RunState, TOPIC};

/// Process ids of committers: from 200; a pipelined second commit is recorded from 210.
const COMMITTER_PROCESS_BASE: Process = 200;
const PIPELINED_PROCESS_OFFSET: Process = 10;
/// OffsetCommit waits for an fdatasync: the same patience as a produce.
const COMMIT_TIMEOUT: Duration = Duration::from_millis(2_000);
/// Pause between two commits of a committer.
const COMMIT_INTERVAL: Duration = Duration::from_millis(20);
/// Largest step of a partition's offset from one commit to the next.
const OFFSET_STEP_MAX: u64 = 100;
/// Simulated time the final fetch may take (after healing, the broker answers at once).
const FINAL_FETCH_BOUND: Duration = Duration::from_millis(10_000);
/// Upper bound on commits per committer in one run (a runaway loop is a harness bug).
const COMMITS_MAX: u32 = 1_000_000;
/// Errors after which the client looks the coordinator up again: COORDINATOR_LOAD_IN_PROGRESS,
/// COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
const COORDINATOR_ERRORS: [i16; 3] = [14, 15, 16];

/// The wire name of a group.
pub fn group_name(group: Group) -> String {
    format!("group-{group}")
}

/// A committer's connections: to the bootstrap broker, and to the group's coordinator once
/// FindCoordinator named it.
struct Committer {
    group: Group,
    process: Process,
    bootstrap: Session,
    coordinator: Option<Session>,
    /// Next offset to commit per partition: above every offset committed before.
    next: BTreeMap<Partition, Offset>,
}

pub(super) async fn commit_loop(index: u32) {
    let state = run_state();
    let mut committer = Committer {
        group: index,
        process: COMMITTER_PROCESS_BASE + index,
        bootstrap: Session::new(format!("committer-{index}")),
        coordinator: None,
        next: (0..state.plan.partitions).map(|partition| (partition, 0)).collect(),
    };
    let mut commits = 0;
    while !state.stop_consuming.get() {
        assert!(commits < COMMITS_MAX, "committer {index} runaway");
        commits += 1;
        if !committer.find_coordinator(&state).await {
            continue;
        }
        committer.commit(&state).await;
        if madsim::rand::random::<u32>().is_multiple_of(2) {
            committer.fetch(&state).await;
        }
        madsim::time::sleep(COMMIT_INTERVAL).await;
    }
    // After healing: every offset acknowledged must still be there, and answered.
    let deadline_ns = now_ns() + FINAL_FETCH_BOUND.as_nanos() as u64;
    let mut answered = false;
    while !answered && now_ns() < deadline_ns {
        answered = committer.find_coordinator(&state).await && committer.fetch(&state).await;
        if !answered {
            madsim::time::sleep(RETRY_BACKOFF).await;
        }
    }
    if !answered {
        let bound_ms = FINAL_FETCH_BOUND.as_millis();
        state.flag(
            "liveness",
            format!("group {index}: no OffsetFetch answered within {bound_ms} ms after healing"),
        );
    }
    state.clients_running.set(state.clients_running.get() - 1);
}

impl Committer {
    /// Makes sure the coordinator is known; `false` after a failed lookup (already paused).
    async fn find_coordinator(&mut self, state: &RunState) -> bool {
        if self.coordinator.is_some() {
            return true;
        }
        let group = group_name(self.group);
        let answer = match self.bootstrap.connection(state).await {
            None => return false,
            Some(connection) => client::find_coordinator(connection, &group, FETCH_TIMEOUT).await,
        };
        let address = match answer {
            Ok((0, host, port)) => format!("{host}:{port}").parse::<SocketAddr>().ok(),
            Ok(_) => None,
            Err(_) => {
                self.bootstrap.fail();
                None
            }
        };
        let Some(address) = address else {
            madsim::time::sleep(RETRY_BACKOFF).await;
            return false;
        };
        let name = format!("committer-{}-coordinator", self.group);
        self.coordinator = Some(Session::to(name, address));
        true
    }

    /// One OffsetCommit, or two pipelined on the connection (the Java consumer's
    /// `commitAsync` keeps several in flight), each of a random non-empty subset of
    /// partitions, each a little higher than any offset committed before. The second commit
    /// is recorded as its own process (`PIPELINED_PROCESS_OFFSET` higher).
    async fn commit(&mut self, state: &RunState) {
        let pipelined = 1 + (madsim::rand::random::<u32>() % 2) as usize;
        let commits: Vec<Vec<(Partition, Offset)>> =
            (0..pipelined).map(|_| self.next_offsets()).collect();
        let (first_process, group) = (self.process, self.group);
        let process = |index: usize| first_process + PIPELINED_PROCESS_OFFSET * index as Process;
        let body = |offsets: &[(Partition, Offset)], codes: Option<&Vec<(Partition, i16)>>| {
            let code_of = |partition: Partition| match codes {
                None => 0,
                // A partition the answer left out was not stored.
                Some(codes) => codes.iter().find(|(p, _)| *p == partition).map_or(-1, |c| c.1),
            };
            let offsets = offsets.iter().map(|(p, o)| (*p, *o, code_of(*p))).collect();
            Body::Commit { group, offsets }
        };
        for (index, offsets) in commits.iter().enumerate() {
            self.record(state, process(index), OpType::Invoke, body(offsets, None));
        }
        let name = group_name(group);
        let session = self.coordinator.as_mut().expect("found before committing");
        let answer = match session.connection(state).await {
            None => None,
            Some(connection) => Some(
                client::offset_commits(connection, &name, TOPIC, &commits, COMMIT_TIMEOUT).await,
            ),
        };
        let Some(Ok(answers)) = answer else {
            // Unknown outcome (or never sent: recorded as unknown all the same).
            for (index, offsets) in commits.iter().enumerate() {
                self.record(state, process(index), OpType::Info, body(offsets, None));
            }
            self.coordinator = None;
            madsim::time::sleep(RETRY_BACKOFF).await;
            return;
        };
        for (index, (offsets, codes)) in commits.iter().zip(&answers).enumerate() {
            self.record(state, process(index), OpType::Ok, body(offsets, Some(codes)));
        }
        if answers.iter().flatten().any(|(_, code)| COORDINATOR_ERRORS.contains(code)) {
            self.coordinator = None;
        }
    }

    /// A random non-empty subset of partitions at their next offsets, which then grow.
    fn next_offsets(&mut self) -> Vec<(Partition, Offset)> {
        let mut offsets = Vec::new();
        for (partition, next) in &mut self.next {
            if madsim::rand::random::<u32>().is_multiple_of(2) || offsets.is_empty() {
                offsets.push((*partition, *next));
                *next += 1 + (madsim::rand::random::<u64>() % OFFSET_STEP_MAX) as Offset;
            }
        }
        offsets
    }

    /// One OffsetFetch of every partition; `true` if the coordinator answered without error.
    async fn fetch(&mut self, state: &RunState) -> bool {
        if self.coordinator.is_none() {
            return false;
        }
        let partitions: Vec<Partition> = self.next.keys().copied().collect();
        let invoke = Body::FetchOffsets { group: self.group, offsets: Vec::new() };
        self.record(state, self.process, OpType::Invoke, invoke);
        let session = self.coordinator.as_mut().expect("checked above");
        let answer = match session.connection(state).await {
            None => None,
            Some(connection) => {
                let group = group_name(self.group);
                Some(
                    client::offset_fetch(connection, &group, TOPIC, &partitions, FETCH_TIMEOUT)
                        .await,
                )
            }
        };
        let Some(Ok((group_error, mut offsets))) = answer else {
            let body = Body::FetchOffsets { group: self.group, offsets: Vec::new() };
            self.record(state, self.process, OpType::Info, body);
            self.coordinator = None;
            madsim::time::sleep(RETRY_BACKOFF).await;
            return false;
        };
        if group_error != 0 {
            offsets = partitions.iter().map(|partition| (*partition, -1, group_error)).collect();
        }
        let answered = offsets.iter().all(|(_, _, code)| *code == 0);
        if !answered {
            self.coordinator = None;
        }
        let body = Body::FetchOffsets { group: self.group, offsets };
        self.record(state, self.process, OpType::Ok, body);
        answered
    }

    fn record(&self, state: &RunState, process: Process, op_type: OpType, body: Body) {
        state.record(Op { process, op_type, time_ns: now_ns(), body });
    }
}
