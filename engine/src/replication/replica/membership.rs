//! Voters and learners (`replication/membership.rs` says why): who this replica counts, and
//! the leader's changes of the voter set, one voter at a time (Raft thesis §4.1):
//! - a voter pinned to a directory its node no longer runs on (the broker came back wiped)
//!   is removed at once: that pair can never answer again;
//! - a replica that is not a voter is added, pinned to its current directory, once its
//!   durable log reaches the high watermark;
//! - an unpinned voter is pinned to the directory its node runs on (quorums do not change).
//!
//! A change is proposed only by a leader whose own epoch has a committed entry (its
//! leader-change batch: a change proposed earlier could race one of a previous leader that
//! this leader never saw committed, Ongaro's 2015 single-server-change bug) and only once the
//! previous change is committed. A set takes effect as soon as it is in a replica's log.

use super::{LogOp, Message, NodeId, Replica, Role};
use crate::replication::membership::{DirectoryId, Voter, VoterChange, VoterSet};

impl<P> Replica<P> {
    /// The voters in force (the latest voters batch of the log, or the assignment's).
    pub fn voters(&self) -> &VoterSet {
        self.voters.latest()
    }

    /// Whether this replica votes: its own (node, directory) pair is a voter.
    pub fn is_voter(&self) -> bool {
        let own = self.voters().contains(self.config.node_id, self.config.directory);
        own || self.config.planted_wiped_replica_votes
    }

    /// Whether `peer`, on the directory it was last reported on, is a voter.
    pub(super) fn is_voter_peer(&self, peer: NodeId) -> bool {
        let directory = match self.config.planted_wiped_replica_votes {
            true => None,
            false => self.peer_directories.get(&peer).copied(),
        };
        self.voters().contains(peer, directory)
    }

    /// The driver learned which data directory `peer` runs on (its registration, or its
    /// hello). A leader forgets what it knew of a peer that changed directory: the new one
    /// holds none of what the old one acknowledged.
    pub fn handle_peer_directory(&mut self, peer: NodeId, directory: DirectoryId, now_ms: i64) {
        self.advance_clock(now_ms);
        let known = peer != self.config.node_id && self.config.replicas.contains(&peer);
        let previous = if known { self.peer_directories.insert(peer, directory) } else { None };
        let changed = previous.is_some_and(|previous| previous != directory);
        if changed && self.role == Role::Leader {
            let log_end_offset = self.log.log_end_offset;
            if let Some(progress) = self.progress.get_mut(&peer) {
                progress.next_offset = log_end_offset;
                progress.durable_end_offset = 0;
                progress.caught_up_ms = None;
                progress.lease_from_ms = None;
            }
        }
        if changed && matches!(self.role, Role::PreCandidate | Role::Candidate) {
            // A vote from the old directory is not the new one's.
            self.votes.remove(&peer);
        }
        if known && self.role == Role::Leader {
            self.change_voters();
        }
        self.check_invariants();
    }

    /// The driver appended the voters batch a [`LogOp::AppendVoters`] asked for, at
    /// `base_offset` (one offset). Call it right after the append, like
    /// [`Replica::handle_appended`].
    pub fn handle_appended_voters(&mut self, base_offset: i64, epoch: i32, voters: VoterSet) {
        assert!(self.voters_change_pending, "no voters batch was asked for");
        assert!(self.config.voters_are_replicas(&voters), "{voters:?}");
        self.voters_change_pending = false;
        self.voters.append(VoterChange { offset: base_offset, voters });
        self.handle_appended(base_offset, base_offset + 1, epoch);
        self.advance_leader_commit();
        self.check_invariants();
    }

    /// Whether the voters batch a [`LogOp::AppendVoters`] of `epoch` asked for may still be
    /// appended: this replica leads `epoch`, hands nothing over, and still waits for it. A
    /// driver that had to wait before appending (to record it first) asks.
    pub fn may_append_voters(&self, epoch: i32) -> bool {
        let leading = self.role == Role::Leader && self.epoch == epoch;
        leading && self.transfer.is_none() && self.voters_change_pending
    }

    /// The driver gives up the voters batch it was asked for (see
    /// [`Replica::may_append_voters`]); a leader proposes again when it is due.
    pub fn abandon_voters_change(&mut self) {
        self.voters_change_pending = false;
        self.check_invariants();
    }

    /// Whether every voter set an append carries names replicas only (a set naming another
    /// broker comes from a broken or hostile peer: ignore the message).
    pub(super) fn voters_fit(&self, message: &Message<P>) -> bool {
        let Message::AppendRequest(request) = message else { return true };
        let sets = request.voter_changes.iter().map(|change| &change.voters);
        sets.into_iter().all(|voters| self.config.voters_are_replicas(voters))
    }

    /// Leader: proposes the next voter change, if one is due and allowed now.
    pub(super) fn change_voters(&mut self) {
        assert_eq!(self.role, Role::Leader);
        let own_epoch_committed = self.high_watermark > self.log.end_offset_of(self.epoch - 1);
        let allowed = own_epoch_committed
            && self.voters_committed()
            && !self.voters_change_pending
            && self.transfer.is_none()
            && self.config.replicas.len() > 1;
        if !allowed {
            return;
        }
        let Some(voters) = self.next_voters() else { return };
        let leads_on = voters.contains(self.config.node_id, self.config.directory);
        assert!(leads_on || self.config.planted_wiped_replica_votes, "{voters:?}");
        assert!(self.config.voters_are_replicas(&voters));
        self.voters_change_pending = true;
        self.log_ops.push(LogOp::AppendVoters { epoch: self.epoch, voters });
    }

    /// The one change due, in order: remove a voter whose directory is gone, add a caught-up
    /// replica, pin an unpinned voter.
    fn next_voters(&self) -> Option<VoterSet> {
        let current = self.voters();
        let directory_of = |node: NodeId| match node == self.config.node_id {
            true => self.config.directory,
            false => self.peer_directories.get(&node).copied(),
        };
        let gone = current.voters().iter().find(|voter| {
            let running = directory_of(voter.node);
            // Never itself: a leader runs on its voter's directory (or it would not lead).
            let other = voter.node != self.config.node_id;
            other && voter.directory.is_some() && running.is_some() && running != voter.directory
        });
        if let Some(gone) = gone {
            return current.without(gone.node);
        }
        let caught_up = self.peers().find(|peer| {
            let progress = self.progress.get(peer);
            let durable = progress.is_some_and(|p| p.durable_end_offset >= self.high_watermark);
            current.voter(*peer).is_none() && directory_of(*peer).is_some() && durable
        });
        if let Some(peer) = caught_up {
            return Some(current.with(Voter { node: peer, directory: directory_of(peer) }));
        }
        let unpinned = current.voters().iter().find_map(|voter| {
            let running = directory_of(voter.node)?;
            voter
                .directory
                .is_none()
                .then_some(Voter { node: voter.node, directory: Some(running) })
        });
        unpinned.map(|voter| current.with(voter))
    }
}
