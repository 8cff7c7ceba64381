//! Elections: pre-vote, vote, and winning. A replica whose election timer fires first asks
//! for pre-votes (would a majority vote for it in the next epoch, with its log, while no live
//! leader is known?) without changing any epoch; only if a majority says yes does it bump
//! its epoch, vote for itself and ask for real votes. A voter grants one real vote per
//! epoch, persisted (as hard state in the same [`super::Ready`], before the answer) so that
//! a restart cannot vote twice. Logs are compared as `(last epoch, log end)`.

use super::{LogOp, Message, NodeId, Progress, Replica, Role};
use crate::replication::message::{VoteRequest, VoteResponse};

impl<P> Replica<P> {
    /// The election timer fired (or a single voter starts): pre-vote, or vote at once.
    pub(super) fn start_election(&mut self, now_ms: i64) {
        assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        assert!(self.is_voter(), "a learner never campaigns");
        if self.config.pre_vote {
            self.become_pre_candidate(now_ms);
        } else {
            self.become_candidate(now_ms, false);
        }
    }

    fn become_pre_candidate(&mut self, now_ms: i64) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leader_contact_ms = None;
        self.start_round(self.epoch + 1, true, false, now_ms);
        let alone = self.quorum() == 1;
        assert!(self.role == Role::PreCandidate || alone, "only a single voter wins at once");
    }

    /// Bumps the epoch and asks for votes; `transfer`: the leader handed over to us.
    pub(super) fn become_candidate(&mut self, now_ms: i64, transfer: bool) {
        self.epoch += 1;
        self.voted_for = Some(self.config.node_id);
        self.role = Role::Candidate;
        self.leader = None;
        self.leader_contact_ms = None;
        self.start_round(self.epoch, false, transfer, now_ms);
        assert!(matches!(self.role, Role::Candidate | Role::Leader));
    }

    /// Votes for itself and asks every peer about `epoch`.
    fn start_round(&mut self, epoch: i32, pre_vote: bool, transfer: bool, now_ms: i64) {
        assert!(!(pre_vote && transfer), "a transfer skips the pre-vote");
        self.votes.clear();
        self.votes.insert(self.config.node_id, true);
        self.reset_election_timer(now_ms);
        let request = VoteRequest {
            epoch,
            candidate: self.config.node_id,
            log_end_offset: self.log.log_end_offset,
            last_epoch: self.log.last_epoch(),
            pre_vote,
            transfer,
        };
        // Learners have no vote to give.
        let voters: Vec<NodeId> = self.peers().filter(|peer| self.is_voter_peer(*peer)).collect();
        for voter in voters {
            self.send(voter, Message::VoteRequest(request));
        }
        self.count_votes(now_ms);
    }

    /// A (pre-)vote request whose epoch is at least ours.
    pub(super) fn handle_vote_request(&mut self, request: VoteRequest, now_ms: i64) {
        assert!(request.epoch >= self.epoch);
        let ours = (self.log.last_epoch(), self.log.log_end_offset);
        // The planted bug skips the log comparison: a candidate missing committed entries
        // can win and overwrite them.
        let up_to_date = (request.last_epoch, request.log_end_offset) >= ours
            || self.config.planted_vote_without_log_check;
        // A learner grants nothing (`membership.rs`): it may have forgotten a vote it gave.
        let up_to_date = up_to_date && self.is_voter();
        let candidate = request.candidate;
        if request.pre_vote {
            let newer = request.epoch > self.epoch;
            let granted =
                up_to_date && !self.in_lease(now_ms) && (newer || self.can_vote_for(candidate));
            let epoch = if granted { request.epoch } else { self.epoch };
            self.send_vote_response(candidate, epoch, granted, true);
        } else {
            assert_eq!(request.epoch, self.epoch, "observe_epoch adopted it");
            let granted = up_to_date && self.can_vote_for(candidate);
            if granted {
                self.voted_for = Some(candidate);
                self.reset_election_timer(now_ms);
            }
            self.send_vote_response(candidate, self.epoch, granted, false);
        }
    }

    /// Whether our vote in the current epoch is free for (or already given to) `candidate`.
    fn can_vote_for(&self, candidate: NodeId) -> bool {
        let planted = self.config.planted_vote_twice && self.role == Role::Follower;
        let voted = self.voted_for.is_some() && !planted;
        let free = !voted && self.leader.is_none();
        free || self.voted_for == Some(candidate)
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, response: VoteResponse) {
        let counts = match self.role {
            Role::PreCandidate if response.pre_vote => {
                let asked = if response.granted { self.epoch + 1 } else { self.epoch };
                response.epoch == asked
            }
            Role::Candidate => !response.pre_vote && response.epoch == self.epoch,
            Role::Follower | Role::Leader | Role::PreCandidate => false,
        };
        if counts && self.is_voter_peer(from) {
            // The first answer of each voter counts; a duplicate changes nothing.
            self.votes.entry(from).or_insert(response.granted);
            self.count_votes(self.now_ms);
        }
    }

    /// Wins (next stage), loses (back to follower) or keeps waiting.
    fn count_votes(&mut self, now_ms: i64) {
        assert!(matches!(self.role, Role::PreCandidate | Role::Candidate));
        let granted = self.votes.values().filter(|granted| **granted).count();
        let rejected = self.votes.len() - granted;
        let voters = self.voters().len();
        assert!(self.votes.len() <= voters);
        if granted >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.become_candidate(now_ms, false),
                _ => self.become_leader(now_ms),
            }
        } else if rejected > voters - self.quorum() {
            self.become_follower(self.epoch, None, now_ms);
        }
    }

    /// Won the epoch: append the leader-change batch, then tell every follower at once.
    fn become_leader(&mut self, now_ms: i64) {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(self.voted_for, Some(self.config.node_id));
        self.role = Role::Leader;
        self.leader = Some(self.config.node_id);
        self.votes.clear();
        self.following = super::Following::new(self.high_watermark);
        let log_end_offset = self.log.log_end_offset;
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in &peers {
            let progress = Progress {
                next_offset: log_end_offset,
                durable_end_offset: 0,
                awaiting_response: false,
                last_sent_ms: now_ms,
                log_end_at_send_offset: log_end_offset,
                last_heard_ms: now_ms,
                lease_from_ms: None,
                caught_up_ms: None,
                high_watermark_sent: 0,
            };
            self.progress.insert(*peer, progress);
        }
        self.log_ops.push(LogOp::AppendLeaderChange { epoch: self.epoch });
        for peer in peers {
            self.send_append(peer, now_ms);
        }
    }
}
