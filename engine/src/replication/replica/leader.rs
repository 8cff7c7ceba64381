//! The leader's side: it appends (through its driver), keeps per follower the next offset to
//! send and the durable matched end, sends appends one at a time per follower (re-sent as
//! the heartbeat), backs up on a rejection in one step from the follower's hint, and moves
//! the high watermark to the largest offset a majority holds durably, provided the entry
//! below it is of its own epoch (Raft §5.4.2: earlier epochs commit only by implication).
//! Its own durable end counts; an unsynced entry of its own does not.
//!
//! Check-quorum: a leader that has not heard from a majority (itself included) within an
//! election timeout steps down, so a partitioned leader stops accepting writes.

use super::{LogOp, Message, NodeId, PeerRead, Replica, Role};
use crate::replication::message::{
    AppendHeader, AppendRequest, AppendResponse, EntryMeta, NO_EPOCH,
};

impl<P> Replica<P> {
    /// The driver appended a batch (a client's or the leader-change batch) to the leader's
    /// log. Call it right after the append, before stepping the replica with anything else.
    pub fn handle_appended(&mut self, base_offset: i64, next_offset: i64, epoch: i32) {
        assert_eq!(self.role, Role::Leader, "only a leader appends on its own");
        assert_eq!(epoch, self.epoch, "a leader appends in its own epoch");
        assert!(self.transfer.is_none(), "no appends while handing leadership over");
        self.log.append(EntryMeta { base_offset, next_offset, epoch });
        let idle: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, progress)| !progress.awaiting_response)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in idle {
            self.send_append(peer, self.now_ms);
        }
        assert_eq!(self.log.log_end_offset, next_offset);
        self.check_invariants();
    }

    /// Leader: how far `peer`'s log is durable, as it last acknowledged. None unless leader
    /// (or for a node that is not a peer).
    pub fn peer_durable_end_offset(&self, peer: NodeId) -> Option<i64> {
        if self.role != Role::Leader {
            return None;
        }
        self.progress.get(&peer).map(|progress| progress.durable_end_offset)
    }

    /// Kafka's in-sync replicas: the leader, and every follower that reached the leader's
    /// log end within `replica_lag_time_max_ms`. Empty unless leader.
    pub fn in_sync_replicas(&self, now_ms: i64) -> Vec<NodeId> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let mut in_sync: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(peer, _)| self.is_voter_peer(**peer))
            .filter(|(_, progress)| {
                progress.caught_up_ms.is_some_and(|at| now_ms - at <= lag_max_ms)
            })
            .map(|(peer, _)| *peer)
            .collect();
        in_sync.push(self.config.node_id);
        in_sync.sort();
        // A planted wiped replica leads without being a voter.
        let planted = self.config.planted_wiped_replica_votes;
        assert!(in_sync.len() <= self.voters().len() || planted);
        in_sync
    }

    /// Builds the append request for a [`LogOp::ReadForPeer`] from the batches the driver
    /// read: whole batches starting with the one holding `read.start_offset` (none if it is
    /// the log end). `None` if this replica no longer leads `read.epoch`: drop the read.
    pub fn build_append(
        &self,
        read: &PeerRead,
        entries: Vec<EntryMeta>,
        payload: P,
    ) -> Option<Message<P>> {
        if self.role != Role::Leader || self.epoch != read.epoch {
            return None;
        }
        let start_offset = entries.first().map_or(read.start_offset, |entry| entry.base_offset);
        assert!(start_offset <= read.start_offset, "{read:?} {entries:?}");
        assert!(entries.first().is_none_or(|entry| read.start_offset < entry.next_offset));
        let mut expected_base = start_offset;
        for entry in &entries {
            assert_eq!(entry.base_offset, expected_base, "contiguous: {entries:?}");
            assert!(entry.base_offset < entry.next_offset);
            assert!(entry.next_offset <= self.log.log_end_offset, "{entry:?} past the log end");
            assert_eq!(self.log.epoch_at(entry.base_offset), Some(entry.epoch), "{entry:?}");
            expected_base = entry.next_offset;
        }
        let end_offset = entries.last().map_or(start_offset, |entry| entry.next_offset);
        let voter_changes = self.voters.changes_within(start_offset, end_offset);
        let prev_offset = start_offset - 1;
        let prev_epoch = if prev_offset < 0 {
            NO_EPOCH
        } else {
            let epoch = self.log.epoch_at(prev_offset);
            epoch.unwrap_or_else(|| panic!("the leader's log holds {prev_offset}"))
        };
        // The latest send decision for this peer: at or before this message leaves.
        let progress = self.progress.get(&read.peer)?;
        let header = AppendHeader {
            epoch: self.epoch,
            leader: self.config.node_id,
            prev_offset,
            prev_epoch,
            leader_commit: self.high_watermark,
            leader_clock_ms: progress.last_sent_ms,
        };
        Some(Message::AppendRequest(AppendRequest { header, entries, payload, voter_changes }))
    }

    /// Asks the driver to send `peer` batches from its next offset (or a heartbeat).
    pub(super) fn send_append(&mut self, peer: NodeId, now_ms: i64) {
        assert_eq!(self.role, Role::Leader);
        let log_end_offset = self.log.log_end_offset;
        let Some(progress) = self.progress.get_mut(&peer) else {
            panic!("{peer:?} has no progress");
        };
        assert!(progress.next_offset <= log_end_offset);
        progress.awaiting_response = true;
        progress.last_sent_ms = now_ms;
        progress.high_watermark_sent = self.high_watermark;
        progress.log_end_at_send_offset = log_end_offset;
        let read = PeerRead {
            peer,
            epoch: self.epoch,
            start_offset: progress.next_offset,
            max_bytes: self.config.max_append_bytes,
        };
        self.log_ops.push(LogOp::ReadForPeer(read));
    }

    /// Whether this leader may still serve reads: a majority (itself included) answered
    /// appends it sent within the last half election timeout. A follower refuses votes for a
    /// whole election timeout after an append reaches it (`in_lease`, also right after a
    /// restart), so no other leader can have been elected since; the half leaves room for
    /// clock-rate drift. The lease counts from when the answered append was *sent*
    /// (`leader_clock_ms`, echoed), never from when its answer arrived: answers queued
    /// while this leader was paused arrive fresh and prove nothing about now. A leader that
    /// was paused or cut off (its high watermark stale) stops serving before it learns it
    /// was deposed. Found by the simulator: `three-broker-partition` seed 96, a leader
    /// paused for 2.6 s served a lower high watermark on resuming.
    pub fn has_read_lease(&self, now_ms: i64) -> bool {
        let given_up = self.transfer_sent() && !self.config.planted_lease_through_transfer;
        if self.role != Role::Leader || given_up {
            return false;
        }
        let lease_ms = self.config.election_timeout_ms / 2;
        let promised = self.progress.iter().filter(|(peer, progress)| {
            let voter = self.is_voter_peer(**peer);
            voter && progress.lease_from_ms.is_some_and(|from_ms| now_ms - from_ms < lease_ms)
        });
        1 + promised.count() >= self.quorum()
    }

    /// Heartbeats and check-quorum.
    pub(super) fn tick_leader(&mut self, now_ms: i64) {
        assert_eq!(self.role, Role::Leader);
        let timeout_ms = self.config.election_timeout_ms;
        let heard = self.progress.iter().filter(|(peer, progress)| {
            self.is_voter_peer(**peer) && now_ms - progress.last_heard_ms < timeout_ms
        });
        let active = 1 + heard.count();
        if self.config.check_quorum && active < self.quorum() {
            self.become_follower(self.epoch, None, now_ms);
            return;
        }
        self.tick_transfer(now_ms);
        if self.role != Role::Leader {
            return;
        }
        let interval_ms = self.config.heartbeat_interval_ms;
        let due: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, progress)| now_ms - progress.last_sent_ms >= interval_ms)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            self.send_append(peer, now_ms);
        }
        self.change_voters();
    }

    /// A follower's answer in our epoch.
    pub(super) fn handle_append_response(
        &mut self,
        from: NodeId,
        response: AppendResponse,
        now_ms: i64,
    ) {
        assert_eq!(response.epoch, self.epoch);
        let log_end_offset = self.log.log_end_offset;
        if self.role != Role::Leader || response.matched_end_offset > log_end_offset {
            return;
        }
        let next_offset = if response.success { 0 } else { self.next_after_rejection(&response) };
        let Some(progress) = self.progress.get_mut(&from) else {
            panic!("every peer has progress while leader");
        };
        progress.last_heard_ms = now_ms;
        // A hostile echo from the future must not stretch the lease.
        let echoed_ms = response.leader_clock_ms.min(now_ms);
        progress.lease_from_ms =
            Some(progress.lease_from_ms.map_or(echoed_ms, |from_ms| from_ms.max(echoed_ms)));
        progress.awaiting_response = false;
        if response.success {
            progress.next_offset = progress.next_offset.max(response.matched_end_offset);
            let durable = progress.durable_end_offset.max(response.durable_end_offset);
            progress.durable_end_offset = durable;
            if response.matched_end_offset >= log_end_offset {
                progress.caught_up_ms = Some(now_ms);
            } else if response.matched_end_offset >= progress.log_end_at_send_offset {
                let at = progress.caught_up_ms.unwrap_or(i64::MIN).max(progress.last_sent_ms);
                progress.caught_up_ms = Some(at);
            }
        } else {
            progress.next_offset = progress.next_offset.min(next_offset);
        }
        let behind = progress.next_offset < log_end_offset;
        if !response.success || behind {
            self.send_append(from, now_ms);
        }
        self.advance_leader_commit();
        // This answer may have committed what it acknowledged (or an earlier one did while
        // this append was out): tell the follower now, so that it serves and applies it.
        if self.role == Role::Leader {
            self.send_high_watermark(from, now_ms);
        }
        self.continue_transfer();
    }

    /// Sends `peer` an append (a heartbeat if it has everything) when it is idle and was last
    /// told a lower high watermark than ours. Followers learn a commit one round trip after
    /// it, instead of at the next heartbeat; a busy follower learns it from its next append.
    fn send_high_watermark(&mut self, peer: NodeId, now_ms: i64) {
        let Some(progress) = self.progress.get(&peer) else { return };
        let stale = progress.high_watermark_sent < self.high_watermark;
        if stale && !progress.awaiting_response && self.transfer.is_none() {
            self.send_append(peer, now_ms);
        }
    }

    /// Where to send from after a rejection of `prev_offset`, from the follower's hint. It is
    /// below `prev_offset + 1`, so a follower's rejections always move the leader back.
    fn next_after_rejection(&self, response: &AppendResponse) -> i64 {
        assert!(!response.success);
        let prev_offset = response.rejected_prev_offset.min(self.log.log_end_offset - 1);
        // The last offset the follower compared: the prev, or its last entry if shorter.
        let compared = prev_offset.min(response.log_end_offset - 1);
        let next_offset = match response.divergence {
            _ if compared < 0 => 0,
            None => compared,
            // Same epoch at the same offset: the logs match up to there.
            Some(divergence) if self.log.epoch_at(compared) == Some(divergence.epoch) => {
                compared + 1
            }
            Some(divergence) => {
                let end = self.log.end_offset_of(divergence.epoch);
                if end <= compared {
                    // Our entries from `end` on have epochs above the follower's there.
                    end
                } else {
                    // Our epoch at `compared` is below the follower's: its whole run of that
                    // epoch diverges.
                    divergence.epoch_start_offset
                }
            }
        };
        let next_offset = next_offset.clamp(0, prev_offset.max(0));
        assert!(next_offset <= self.log.log_end_offset);
        next_offset
    }

    /// Moves the high watermark to what a majority holds durably, if that entry is ours.
    pub(super) fn advance_leader_commit(&mut self) {
        assert_eq!(self.role, Role::Leader);
        // Per voter: a learner's copy counts for nothing, a voter not running (its node is on
        // another directory now) holds nothing.
        let voters = self.voters().voters();
        let mut durable_ends: Vec<i64> = voters
            .iter()
            .map(|voter| match voter.node == self.config.node_id {
                true => self.log.durable_end_offset,
                false if !self.is_voter_peer(voter.node) => 0,
                false => self.progress.get(&voter.node).map_or(0, |p| p.durable_end_offset),
            })
            .collect();
        assert!(self.is_voter(), "a leader is a voter");
        assert_eq!(durable_ends.len(), self.voters().len());
        durable_ends.sort_unstable_by(|left, right| right.cmp(left));
        let quorum = if self.config.planted_commit_without_majority { 1 } else { self.quorum() };
        let quorum_end_offset = durable_ends[quorum - 1];
        let own_epoch = self.log.epoch_at(quorum_end_offset - 1) == Some(self.epoch);
        if quorum_end_offset > self.high_watermark && own_epoch {
            self.push_commit(quorum_end_offset);
            let peers: Vec<NodeId> = self.peers().collect();
            for peer in peers {
                self.send_high_watermark(peer, self.now_ms);
            }
            self.change_voters();
        }
    }
}
