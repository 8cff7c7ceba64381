//! Leadership transfer (Raft thesis §3.10), for controlled shutdown and preferred leaders: the
//! leader stops taking writes, brings the target up to its log end, then tells it to campaign
//! at once ([`TimeoutNow`]). The target skips the pre-vote and flags its vote request as a
//! transfer, so voters that still hear from the leader grant it (they refuse other
//! candidates while they do: check-quorum).
//!
//! Those voters break their promise not to vote for anyone else for an election timeout
//! (what the leader's read lease stands on), so the leader gives the lease up for good when
//! it sends TimeoutNow: it serves no reads in this epoch again, and if the target has not
//! taken over within an election timeout it steps down rather than lead on without reads. A
//! transfer that never got as far as TimeoutNow (the target did not catch up in time) is
//! abandoned and the leader takes writes again.
//!
//! A follower may ask its leader for the leadership ([`LeadershipRequest`]): the preferred
//! leader (the first voter) does so every `leader_rebalance_interval_ms` while it follows
//! another (Kafka's automatic preferred-leader election), and so does a replica an operator
//! elects (ElectLeaders). The leader grants it only to a follower that reached its log end
//! within two heartbeat intervals, so that writes stop for a round trip, not for long.
//!
//! A retiring replica (its broker is shutting down) hands its leadership to the follower
//! furthest along, tries again with another if a transfer fails, and never campaigns. With
//! no follower to hand to (none answered lately), it leads on until its process exits.

use super::{Message, NodeId, Replica, Role};
use crate::replication::message::{LeadershipRequest, TimeoutNow};

/// A hand-over under way, while leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transfer {
    pub(super) target: NodeId,
    /// Given up (or, once TimeoutNow is out, stepped down from) at this time.
    pub(super) deadline_ms: i64,
    pub(super) timeout_now_sent: bool,
}

impl<P> Replica<P> {
    /// Starts handing leadership to `target`. False, changing nothing, unless this replica
    /// leads, `target` is another voter and no transfer is under way.
    pub fn transfer_leadership(&mut self, target: NodeId, now_ms: i64) -> bool {
        self.advance_clock(now_ms);
        let startable = self.role == Role::Leader
            && self.transfer.is_none()
            && target != self.config.node_id
            && self.config.replicas.contains(&target)
            && self.is_voter_peer(target);
        if startable {
            let deadline_ms = now_ms + self.config.election_timeout_ms;
            self.transfer = Some(Transfer { target, deadline_ms, timeout_now_sent: false });
            self.continue_transfer();
        }
        self.check_invariants();
        startable
    }

    /// This replica is going away: it never campaigns again and, while it leads, hands its
    /// leadership to the follower furthest along (again on each tick until one takes it).
    pub fn retire(&mut self, now_ms: i64) {
        self.advance_clock(now_ms);
        self.retiring = true;
        if self.role == Role::Leader && self.transfer.is_none() {
            self.retire_leadership(now_ms);
        }
        self.check_invariants();
    }

    /// Asks our leader to hand its leadership to us. False, sending nothing, unless this
    /// replica follows a known leader and is not retiring.
    pub fn request_leadership(&mut self, now_ms: i64) -> bool {
        self.advance_clock(now_ms);
        let Some(leader) = self.leader.filter(|_| self.role == Role::Follower && !self.retiring)
        else {
            return false;
        };
        let request = LeadershipRequest { epoch: self.epoch, candidate: self.config.node_id };
        self.send(leader, Message::LeadershipRequest(request));
        true
    }

    /// Whether this replica is the partition's preferred leader (its first voter).
    pub fn is_preferred_leader(&self) -> bool {
        self.config.replicas.first() == Some(&self.config.node_id) && self.is_voter()
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring
    }

    /// Whether the driver may append clients' batches: this replica leads and is not handing
    /// its leadership over (the target must catch up with a log end that stands still).
    pub fn accepts_writes(&self) -> bool {
        self.role == Role::Leader && self.transfer.is_none()
    }

    /// The target of the transfer under way, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|transfer| transfer.target)
    }

    /// Whether the leader gave its read lease up by sending TimeoutNow in this epoch.
    pub(super) fn transfer_sent(&self) -> bool {
        self.transfer.is_some_and(|transfer| transfer.timeout_now_sent)
    }

    /// On every leader tick: a retiring leader starts a transfer; a transfer past its
    /// deadline is abandoned, or, if TimeoutNow went out, the leader steps down.
    pub(super) fn tick_transfer(&mut self, now_ms: i64) {
        assert_eq!(self.role, Role::Leader);
        match self.transfer {
            Some(transfer) if now_ms >= transfer.deadline_ms && transfer.timeout_now_sent => {
                self.become_follower(self.epoch, None, now_ms);
            }
            Some(transfer) if now_ms >= transfer.deadline_ms => self.transfer = None,
            Some(_) => self.continue_transfer(),
            None => {}
        }
        if self.role == Role::Leader && self.transfer.is_none() && self.retiring {
            self.retire_leadership(now_ms);
        }
    }

    /// Sends TimeoutNow once the target holds our whole log (and heartbeats have it catch
    /// up until then).
    pub(super) fn continue_transfer(&mut self) {
        let Some(transfer) = self.transfer else { return };
        assert_eq!(self.role, Role::Leader);
        let Some(progress) = self.progress.get(&transfer.target) else {
            panic!("the transfer target {:?} has no progress", transfer.target);
        };
        if transfer.timeout_now_sent || progress.next_offset < self.log.log_end_offset {
            return;
        }
        self.transfer = Some(Transfer { timeout_now_sent: true, ..transfer });
        let timeout_now = TimeoutNow { epoch: self.epoch, leader: self.config.node_id };
        self.send(transfer.target, Message::TimeoutNow(timeout_now));
    }

    /// A follower asks for the leadership: granted (a transfer starts) if we lead, hand
    /// nothing over yet, are not retiring, and it reached our log end lately.
    pub(super) fn handle_leadership_request(&mut self, from: NodeId, now_ms: i64) {
        let voter = self.is_voter_peer(from);
        if self.role != Role::Leader || self.transfer.is_some() || self.retiring || !voter {
            return;
        }
        let recent_ms = 2 * self.config.heartbeat_interval_ms;
        let Some(progress) = self.progress.get(&from) else { return };
        if progress.caught_up_ms.is_some_and(|at| now_ms - at <= recent_ms) {
            let started = self.transfer_leadership(from, now_ms);
            assert!(started, "a leader with no transfer hands over to a caught-up peer");
        }
    }

    /// On a follower's tick: the preferred leader, following another, asks for the
    /// leadership back every `leader_rebalance_interval_ms`.
    pub(super) fn tick_rebalance(&mut self, now_ms: i64) {
        let Some(interval_ms) = self.config.leader_rebalance_interval_ms else { return };
        if now_ms < self.rebalance_due_ms {
            return;
        }
        self.rebalance_due_ms = now_ms + interval_ms;
        if self.is_preferred_leader() && self.leader.is_some() {
            self.request_leadership(now_ms);
        }
    }

    /// Our leader of this epoch asks us to campaign now. A retiring replica, or one that
    /// does not follow the sender in this epoch, ignores it.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId, timeout_now: TimeoutNow, now: i64) {
        assert_eq!(timeout_now.epoch, self.epoch, "observe_epoch filtered other epochs");
        let ours = self.role == Role::Follower && self.leader == Some(from) && self.is_voter();
        if ours && !self.retiring {
            self.become_candidate(now, true);
        }
    }

    /// Starts a transfer to the follower furthest along among those that answered within two
    /// heartbeat intervals (a live follower answers every heartbeat; one that went quiet may
    /// be shutting down too), if there is one.
    fn retire_leadership(&mut self, now_ms: i64) {
        let recent_ms = 2 * self.config.heartbeat_interval_ms;
        let reachable = self
            .progress
            .iter()
            .filter(|(peer, _)| self.is_voter_peer(**peer))
            .filter(|(_, progress)| now_ms - progress.last_heard_ms <= recent_ms);
        // Furthest along first, then the latest heard; among equals the lowest id, so the
        // choice is deterministic.
        let best = reachable
            .max_by_key(|(peer, progress)| {
                let along = (progress.next_offset, progress.durable_end_offset);
                (along, progress.last_heard_ms, std::cmp::Reverse(**peer))
            })
            .map(|(peer, _)| *peer);
        if let Some(target) = best {
            let deadline_ms = now_ms + self.config.election_timeout_ms;
            self.transfer = Some(Transfer { target, deadline_ms, timeout_now_sent: false });
            self.continue_transfer();
        }
    }
}
